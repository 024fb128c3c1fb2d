/*
 * Two unrelated processes over a named pipe: this program makes a FIFO,
 * then starts a second program (itself, with "writer PATH") that knows only
 * the path. The writer sends three messages; the reader prints them.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

static int writer(const char *path)
{
    mproc_conn *w;
    /* Waits (at most 5 s) until a reader has the FIFO open. */
    int rc = mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 5000);
    if (rc != 0) {
        fprintf(stderr, "writer: open: %s\n", mproc_strerror(rc));
        return 1;
    }
    const char *msgs[] = {"first", "second", "third"};
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = mproc_conn_send(w, msgs[i], strlen(msgs[i]), 5000);
    mproc_conn_close(w);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "writer") == 0)
        return writer(argv[2]);
    char dir[] = "/tmp/mproc-fifo-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char path[64];
    snprintf(path, sizeof path, "%s/fifo", dir);
    int rc = mproc_fifo_create(path, 0600);
    if (rc != 0) {
        fprintf(stderr, "create: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_conn *r;
    rc = mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 5000);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "writer", path, (char *)NULL);
        _exit(127);
    }
    int got = 0;
    char buf[64];
    size_t n;
    while (rc == 0 &&
           (rc = mproc_conn_recv(r, buf, sizeof buf - 1, &n, 5000)) == 0) {
        buf[n] = '\0';
        printf("reader got: %s\n", buf);
        got++;
    }
    printf("reader: %s after %d messages\n", mproc_errname(rc), got);
    mproc_conn_close(r);
    mproc_fifo_unlink(path);
    rmdir(dir);
    int st;
    waitpid(pid, &st, 0);
    return got == 3 && rc == MPROC_ECLOSED && WIFEXITED(st) &&
                   WEXITSTATUS(st) == 0
               ? 0
               : 1;
}
