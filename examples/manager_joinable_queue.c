/*
 * The seed's managed queue: a manager holds a joinable queue filled with 2,
 * 3 and 4; three worker processes each take one item, print their pid and
 * what they took, and call task_done; the parent's join returns once all
 * three are done.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

static int my_task(void *arg)
{
    mproc_mqueue *q = arg; /* inherited: the child connects on its own */
    void *item;
    size_t len;
    int rc = mproc_mqueue_get(q, &item, &len, 5000);
    if (rc != 0)
        return rc;
    printf("Process %d popped %s from the shared queue\n",
           (int)mproc_current_pid(), (char *)item);
    free(item);
    return mproc_mqueue_task_done(q, 5000);
}

int main(void)
{
    mproc_manager *m;
    int rc = mproc_manager_start(&m, NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "manager: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_mclient *c;
    mproc_mqueue *q = NULL;
    rc = mproc_mclient_open(&c, mproc_manager_address(m), NULL, 5000);
    if (rc == 0)
        rc = mproc_mqueue_open(&q, c, "shared", NULL, 5000);
    for (int v = 2; v <= 4 && rc == 0; v++) {
        char item[4];
        snprintf(item, sizeof item, "%d", v);
        rc = mproc_mqueue_put(q, item, MPROC_MSTR, 5000);
    }
    mproc_process *p[3];
    int started = 0;
    for (; started < 3 && rc == 0; started++)
        rc = mproc_process_start(&p[started], my_task, q, NULL);
    if (rc == 0)
        rc = mproc_mqueue_join(q, 10000);
    if (rc == 0)
        printf("all tasks done\n");
    for (int i = 0; i < started; i++) {
        int code = -1;
        mproc_process_join(p[i], 10000);
        mproc_process_exitcode(p[i], &code);
        if (code != 0)
            rc = 1;
        mproc_process_destroy(p[i]);
    }
    if (rc != 0)
        fprintf(stderr, "joinable queue: %s\n", mproc_strerror(rc));
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
    return rc == 0 ? 0 : 1;
}
