/*
 * Several workers report into one pipe: four processes started with
 * mproc_process_start send results of different sizes (some larger than
 * the pipe's ring, made small here: 64 KiB) on the same send end; the parent
 * receives them all, whole and never interleaved, and learns the end of the
 * stream once every worker has exited and it closed its own copy of the send
 * end. The workers are started with inherit_only: each keeps the send end only,
 * so no worker holds a copy of the parent's receiving end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"

#define WORKERS 4
#define RESULTS 50

static mproc_conn *r, *w;

static int worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    static unsigned char buf[100000];
    for (int i = 0; i < RESULTS; i++) {
        /* A result: its worker, its number, then a body of one letter. */
        size_t len = 8 + (size_t)((i * 7919 + id * 104729) % 99000);
        buf[0] = (unsigned char)id;
        memcpy(buf + 1, &i, sizeof i);
        memset(buf + 8, 'a' + id, len - 8);
        int rc = mproc_conn_send(w, buf, len, 5000);
        if (rc != 0)
            mproc_fail(rc, "send result %d", i);
    }
    mproc_conn_close(w);
    return 0;
}

int main(void)
{
    /* A small ring, so that the larger results stream through it. */
    mproc_pipe_opts po = MPROC_PIPE_OPTS_INIT;
    po.ring_size = 64 * 1024;
    int rc = mproc_pipe(&r, &w, false, &po);
    if (rc != 0) {
        fprintf(stderr, "mproc_pipe: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_process *p[WORKERS];
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.inherit_only = true; /* a worker only sends */
    o.keep = &w;
    o.n_keep = 1;
    for (int k = 0; k < WORKERS; k++)
        if ((rc = mproc_process_start(&p[k], worker, (void *)(intptr_t)k,
                                      &o)) != 0) {
            fprintf(stderr, "start: %s\n", mproc_strerror(rc));
            return 1;
        }
    mproc_conn_close(w); /* the parent only receives */
    int next[WORKERS] = {0}, bad = 0, total = 0;
    size_t bytes = 0;
    for (;;) {
        void *m;
        size_t n;
        rc = mproc_conn_recv_alloc(r, &m, &n, 1 << 20, 10000);
        if (rc != 0)
            break;
        unsigned char *b = m;
        int id = b[0], i;
        memcpy(&i, b + 1, sizeof i);
        /* Whole, from one worker, in that worker's order. */
        int whole = n >= 8 && id < WORKERS && i == next[id]++;
        for (size_t k = 8; whole && k < n; k++)
            whole = b[k] == 'a' + id;
        if (!whole)
            bad++;
        total++;
        bytes += n;
        free(m);
    }
    printf("parent: %d results, %zu bytes, %d bad; then %s\n", total, bytes,
           bad, mproc_errname(rc));
    int ok = rc == MPROC_ECLOSED && bad == 0 && total == WORKERS * RESULTS;
    for (int k = 0; k < WORKERS; k++) {
        int code = -1;
        if (mproc_process_join(p[k], 5000) != 0 ||
            mproc_process_exitcode(p[k], &code) != 0 || code != 0)
            ok = 0;
        mproc_process_destroy(p[k]);
    }
    mproc_conn_close(r);
    return ok ? 0 : 1;
}
