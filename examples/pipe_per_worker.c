/*
 * pipe_per_worker: a parent starts three workers, each with a pipe of its
 * own, and ends each worker by closing that worker's pipe. A worker
 * forked later would inherit the send ends of the pipes made before it, so
 * closing worker 0's end in the parent would not be the last close and
 * worker 0 would wait for EOF for ever; started with inherit_only, each
 * worker keeps only the receiving end it is given, and closing a pipe in
 * the parent ends exactly its worker.
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

#define WORKERS 3

/* Sums the numbers it receives until its pipe is closed. */
static int worker(void *arg)
{
    mproc_conn *r = arg;
    long sum = 0;
    int n, rc;
    size_t len;
    while ((rc = mproc_conn_recv(r, &n, sizeof n, &len, 10000)) == 0)
        sum += n;
    if (rc != MPROC_ECLOSED)
        mproc_fail(rc, "recv");
    printf("%s: pipe closed, sum %ld\n", mproc_current_name(), sum);
    return 0;
}

int main(void)
{
    mproc_conn *r[WORKERS], *w[WORKERS];
    mproc_process *p[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        int rc = mproc_pipe(&r[i], &w[i], false, NULL);
        mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
        o.inherit_only = true; /* the worker keeps r[i] and nothing else */
        o.keep = &r[i];
        o.n_keep = 1;
        if (rc == 0)
            rc = mproc_process_start(&p[i], worker, r[i], &o);
        if (rc != 0) {
            fprintf(stderr, "pipe_per_worker: %s\n", mproc_strerror(rc));
            return 1;
        }
        mproc_conn_close(r[i]); /* the parent only sends */
    }
    int ok = 1;
    for (int i = 0; i < WORKERS; i++) {
        for (int n = 1; n <= 10 * (i + 1); n++)
            if (mproc_conn_send(w[i], &n, sizeof n, 5000) != 0)
                ok = 0;
        /* The last copy of this send end: the worker sees EOF and ends,
         * while the workers after it still run. */
        mproc_conn_close(w[i]);
        int code = -1;
        if (mproc_process_join(p[i], 5000) != 0 ||
            mproc_process_exitcode(p[i], &code) != 0 || code != 0)
            ok = 0;
        for (int j = i + 1; j < WORKERS; j++)
            if (mproc_process_is_alive(p[j]) != 1)
                ok = 0;
        printf("parent: %s joined\n", mproc_process_name(p[i]));
    }
    for (int i = 0; i < WORKERS; i++)
        mproc_process_destroy(p[i]);
    return ok ? 0 : 1;
}
