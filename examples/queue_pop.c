/*
 * A parent fills a JoinableQueue with 2, 3 and 4; three processes, started
 * one after another, each pop one value, print it with their pid and mark
 * it done; the parent then joins the queue (every task is done).
 */
#include <stdio.h>
#include <stdint.h>

#include "mproc.h"

static int pop_one(void *arg)
{
    mproc_queue *q = arg;
    int32_t value;
    size_t len;
    int rc = mproc_queue_get(q, &value, sizeof value, &len, 5000);
    if (rc != 0)
        mproc_fail(rc, "get");
    printf("Process %d Popped %d from the shared Queue\n",
           (int)mproc_current_pid(), (int)value);
    return mproc_queue_task_done(q);
}

int main(void)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.joinable = true;
    mproc_queue *q;
    int rc = mproc_queue_create(&q, NULL, &o);
    if (rc != 0) {
        fprintf(stderr, "create: %s\n", mproc_strerror(rc));
        return 1;
    }
    for (int32_t v = 2; v <= 4; v++)
        if ((rc = mproc_queue_put(q, &v, sizeof v, 1000)) != 0) {
            fprintf(stderr, "put: %s\n", mproc_strerror(rc));
            return 1;
        }
    for (int i = 0; i < 3; i++) {
        mproc_process *p;
        if ((rc = mproc_process_start(&p, pop_one, q, NULL)) != 0 ||
            (rc = mproc_process_join(p, 10000)) != 0) {
            fprintf(stderr, "process: %s\n", mproc_strerror(rc));
            return 1;
        }
        int code = -1;
        mproc_process_exitcode(p, &code);
        mproc_process_destroy(p);
        if (code != 0)
            return 1;
    }
    rc = mproc_queue_join(q, 5000);
    printf("join: %s\n", rc == 0 ? "every task is done" : mproc_strerror(rc));
    mproc_queue_close(q);
    return rc == 0 ? 0 : 1;
}
