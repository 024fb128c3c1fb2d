/*
 * An exception record sent from a child through a pipe: the child's work
 * fails, it sends what went wrong (error code, message, where) as one
 * message, and the parent reports it instead of losing it on stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

struct failure {
    int32_t code;      /* an MPROC_E* code */
    char where[64];    /* function that failed */
    char message[128]; /* what the child says about it */
};

static int child_work(mproc_conn *errs)
{
    /* The work: read a file that is not there. */
    FILE *f = fopen("/nonexistent/input.txt", "r");
    if (f != NULL) {
        fclose(f);
        return 0;
    }
    struct failure rec;
    memset(&rec, 0, sizeof rec);
    rec.code = MPROC_ENOENT;
    snprintf(rec.where, sizeof rec.where, "%s", "child_work");
    snprintf(rec.message, sizeof rec.message, "cannot open %s",
             "/nonexistent/input.txt");
    mproc_conn_send(errs, &rec, sizeof rec, 5000);
    return 1;
}

int main(void)
{
    mproc_conn *r, *w;
    if (mproc_pipe(&r, &w, false, NULL) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        mproc_conn_close(r);
        int code = child_work(w);
        mproc_conn_close(w);
        _exit(code);
    }
    mproc_conn_close(w);
    struct failure rec;
    size_t n;
    int rc = mproc_conn_recv(r, &rec, sizeof rec, &n, 5000);
    int st;
    waitpid(pid, &st, 0);
    if (rc == MPROC_ECLOSED) {
        printf("child succeeded\n");
    } else if (rc == 0 && n == sizeof rec) {
        printf("child failed in %s: %s (%s: %s), exit code %d\n", rec.where,
               rec.message, mproc_errname(rec.code), mproc_strerror(rec.code),
               WEXITSTATUS(st));
    } else {
        fprintf(stderr, "recv: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_conn_close(r);
    return rc == 0 && WEXITSTATUS(st) == 1 ? 0 : 1;
}
