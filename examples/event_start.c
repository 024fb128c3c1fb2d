/*
 * An Event that starts workers: four processes get ready and wait on the
 * event; the parent sets it once, and they all start at the same moment.
 * A Semaphore counts the workers that are ready.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

#define WORKERS 4

int main(void)
{
    mproc_event *go;
    mproc_semaphore *ready;
    if (mproc_event_create(&go, NULL, NULL) != 0 ||
        mproc_semaphore_create(&ready, NULL, 0, NULL) != 0)
        return 1;
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            mproc_semaphore_release(ready, 1);
            if (mproc_event_wait(go, 5000) != 0)
                _exit(1);
            printf("worker %d: started\n", w);
            fflush(stdout);
            _exit(0);
        }
    }
    for (int w = 0; w < WORKERS; w++)
        if (mproc_semaphore_acquire(ready, 5000) != 0)
            return 1;
    printf("all %d workers ready; setting the event\n", WORKERS);
    fflush(stdout);
    mproc_event_set(go);
    int failed = 0;
    for (int w = 0; w < WORKERS; w++) {
        int st;
        waitpid(pids[w], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    mproc_semaphore_close(ready);
    mproc_event_close(go);
    return failed;
}
