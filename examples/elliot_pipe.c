/*
 * elliot_pipe: the seed's first pipe example. A child process writes
 * "My name is Elliot" into a raw pipe; the parent joins it and prints what
 * the pipe held. The child is started with inherit_only and keeps the
 * pipe's write end (keep_fds): every other fd of the parent from 3 up,
 * the read end among them, is closed in the child before it runs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

struct pipe_ends {
    int read_end;
    int write_end;
};

static int child(void *arg)
{
    struct pipe_ends *p = arg;
    printf("%s: attempting to write into the pipe\n", mproc_current_name());
    const char *msg = "My name is Elliot";
    if (write(p->write_end, msg, strlen(msg)) != (ssize_t)strlen(msg))
        mproc_fail(MPROC_EIO, "write to the pipe failed");
    close(p->write_end);
    return 0;
}

int main(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        perror("pipe2");
        return 1;
    }
    struct pipe_ends ends = {fds[0], fds[1]};

    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.inherit_only = true;
    o.keep_fds = &ends.write_end;
    o.n_keep_fds = 1;
    mproc_process *p;
    int rc = mproc_process_start(&p, child, &ends, &o);
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", mproc_strerror(rc));
        return 1;
    }
    rc = mproc_process_join(p, 5000);
    int code = -1;
    if (rc == 0)
        mproc_process_exitcode(p, &code);
    mproc_process_destroy(p);
    if (rc < 0 || code != 0) {
        fprintf(stderr, "join: %s, exit code %d\n", mproc_strerror(rc), code);
        return 1;
    }

    /* Close our write end, so the read below ends at the child's EOF. */
    close(ends.write_end);
    char buf[128];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof buf - 1 &&
           (n = read(ends.read_end, buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(ends.read_end);

    printf("Pipe: %s\n", buf);
    return strcmp(buf, "My name is Elliot") == 0 ? 0 : 1;
}
