/*
 * A duplex exchange (Python: a, b = Pipe()): the parent says "hello" on
 * one end, the child answers "hi" on the other.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

int main(void)
{
    mproc_conn *a, *b;
    if (mproc_pipe(&a, &b, true, NULL) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        mproc_conn_close(a);
        char buf[16];
        size_t n;
        if (mproc_conn_recv(b, buf, sizeof buf - 1, &n, 5000) != 0)
            _exit(1);
        buf[n] = '\0';
        printf("child got: %s\n", buf);
        fflush(stdout);
        int rc = mproc_conn_send(b, "hi", 2, 5000);
        mproc_conn_close(b);
        _exit(rc == 0 ? 0 : 1);
    }
    mproc_conn_close(b);
    if (mproc_conn_send(a, "hello", 5, 5000) != 0)
        return 1;
    char *reply;
    size_t n;
    /* A buffer the library allocates, at most 1 KiB. */
    int rc = mproc_conn_recv_alloc(a, (void **)&reply, &n, 1024, 5000);
    if (rc != 0) {
        fprintf(stderr, "recv: %s\n", mproc_strerror(rc));
        return 1;
    }
    printf("parent got: %s\n", reply); /* NUL-terminated by the library */
    free(reply);
    mproc_conn_close(a);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
