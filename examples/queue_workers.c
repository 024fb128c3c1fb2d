/*
 * A JoinableQueue feeding three workers that run until the queue is shut
 * down. The parent puts 30 tasks and waits for them with join; one worker
 * is killed (SIGKILL) in the middle of a task, and join still returns:
 * MPROC_EOWNERDEAD says a task was written off with its dead worker, so
 * the parent knows to do it again. Then the parent shuts the queue down and
 * the workers leave.
 */
#define _DEFAULT_SOURCE

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "mproc.h"

#define TASKS 30
#define WORKERS 3

static mproc_queue *tasks;

static int worker(void *arg)
{
    int victim = (int)(intptr_t)arg;
    int done = 0;
    for (;;) {
        int32_t t;
        size_t len;
        int rc = mproc_queue_get(tasks, &t, sizeof t, &len, MPROC_FOREVER);
        if (rc == MPROC_ECLOSED)
            break; /* shut down and empty */
        if (rc != 0)
            mproc_fail(rc, "get");
        if (victim && t == 7) /* dies holding task 7 */
            raise(SIGKILL);
        usleep(1000); /* the work */
        mproc_queue_task_done(tasks);
        done++;
    }
    printf("%s did %d tasks\n", mproc_current_name(), done);
    return 0;
}

int main(void)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.joinable = true;
    int rc = mproc_queue_create(&tasks, NULL, &o);
    if (rc != 0)
        return 1;
    mproc_process *w[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        if (mproc_process_start(&w[i], worker, (void *)(intptr_t)(i == 0),
                                NULL) != 0)
            return 1;
    for (int32_t t = 0; t < TASKS; t++)
        if (mproc_queue_put(tasks, &t, sizeof t, 5000) != 0)
            return 1;
    rc = mproc_queue_join(tasks, 20000);
    if (rc == MPROC_EOWNERDEAD) {
        printf("join: a worker died holding a task; it was written off\n");
        rc = mproc_queue_join(tasks, 20000); /* told once: now 0 */
    }
    printf("join: %s\n",
           rc == 0 ? "all tasks accounted for" : mproc_strerror(rc));
    mproc_queue_shutdown(tasks);
    for (int i = 0; i < WORKERS; i++) {
        mproc_process_join(w[i], 10000);
        int code = 0;
        mproc_process_exitcode(w[i], &code);
        if (code < 0)
            printf("%s was killed by signal %d\n", mproc_process_name(w[i]),
                   -code);
        mproc_process_destroy(w[i]);
    }
    mproc_queue_close(tasks);
    return rc == 0 ? 0 : 1;
}
