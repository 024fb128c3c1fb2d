/*
 * A producer and a consumer that are unrelated programs and share only a
 * queue's name: this program creates a named queue, then starts a second
 * program (itself, with "consumer NAME") that opens it by name. The
 * producer puts five lines and shuts the queue down; the consumer prints
 * what it gets until the queue is shut down and empty.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

static int consumer(const char *name)
{
    mproc_queue *q;
    int rc = mproc_queue_open(&q, name, NULL);
    if (rc != 0) {
        fprintf(stderr, "consumer: open %s: %s\n", name, mproc_strerror(rc));
        return 1;
    }
    for (;;) {
        char line[128];
        size_t len;
        rc = mproc_queue_get(q, line, sizeof line - 1, &len, 10000);
        if (rc != 0)
            break;
        line[len] = '\0';
        printf("consumer (pid %d) got: %s\n", (int)getpid(), line);
    }
    mproc_queue_close(q);
    return rc == MPROC_ECLOSED ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "consumer") == 0)
        return consumer(argv[2]);
    char name[64];
    snprintf(name, sizeof name, "/mproc-example-queue-%d", (int)getpid());
    mproc_queue *q;
    int rc = mproc_queue_create(&q, name, NULL);
    if (rc != 0) {
        fprintf(stderr, "create %s: %s\n", name, mproc_strerror(rc));
        return 1;
    }
    /* The consumer is a program of its own: it knows only the name. */
    char *args[] = {argv[0], "consumer", name, NULL};
    mproc_process *p;
    rc = mproc_process_spawn(&p, argv[0], args, NULL);
    if (rc == 0) {
        for (int i = 1; i <= 5 && rc == 0; i++) {
            char line[64];
            int n = snprintf(line, sizeof line, "line %d from pid %d", i,
                             (int)getpid());
            rc = mproc_queue_put(q, line, (size_t)n, 5000);
        }
        mproc_queue_shutdown(q); /* the consumer drains, then stops */
        int jr = mproc_process_join(p, 15000);
        int code = -1;
        if (jr == 0)
            mproc_process_exitcode(p, &code);
        if (code != 0)
            rc = rc != 0 ? rc : MPROC_ECHILD;
        mproc_process_destroy(p);
    }
    mproc_queue_close(q);
    mproc_queue_unlink(name);
    if (rc != 0)
        fprintf(stderr, "producer: %s\n", mproc_strerror(rc));
    return rc == 0 ? 0 : 1;
}
