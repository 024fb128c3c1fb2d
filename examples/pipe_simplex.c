/*
 * Parent and child over a simplex pipe: the child sends, the parent
 * receives (Python: r, w = Pipe(duplex=False)). Each side closes the end
 * it does not use, so the parent sees the end of the stream when the child
 * is done.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

int main(void)
{
    mproc_conn *r, *w;
    int rc = mproc_pipe(&r, &w, false, NULL);
    if (rc != 0) {
        fprintf(stderr, "mproc_pipe: %s\n", mproc_strerror(rc));
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        mproc_conn_close(r); /* the child only sends */
        printf("child: sending into the pipe\n");
        fflush(stdout);
        const char *msg = "My name is Elliot";
        rc = mproc_conn_send(w, msg, strlen(msg), 5000);
        mproc_conn_close(w);
        _exit(rc == 0 ? 0 : 1);
    }
    mproc_conn_close(w); /* the parent only receives */
    char buf[64];
    size_t n;
    rc = mproc_conn_recv(r, buf, sizeof buf - 1, &n, 5000);
    if (rc != 0) {
        fprintf(stderr, "recv: %s\n", mproc_strerror(rc));
        return 1;
    }
    buf[n] = '\0';
    printf("parent: Pipe: %s\n", buf);
    /* The child closed its end: the next recv reports it. */
    rc = mproc_conn_recv(r, buf, sizeof buf, &n, 5000);
    printf("parent: next recv: %s\n", mproc_errname(rc));
    mproc_conn_close(r);
    int st;
    waitpid(pid, &st, 0);
    return rc == MPROC_ECLOSED && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
