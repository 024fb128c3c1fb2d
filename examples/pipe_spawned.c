/*
 * A pipe to a program started with exec: mproc_pipe() ends live partly in
 * memory shared with forked children, which an exec'ed program cannot
 * see, so the pipe for it comes from mproc_pipe_kernel(). The parent
 * starts a second program (itself, with "child") whose stdout is the
 * pipe's write end; the program wraps fd 1 as a message connection and
 * sends three messages, which the parent receives.
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int child(void)
{
    mproc_conn *w;
    /* Only this program writes to the pipe: any message size may go. */
    int rc = mproc_conn_from_fd(&w, 1, MPROC_CONN_SINGLE_WRITER);
    if (rc != 0)
        return 1;
    const char *msgs[] = {"one", "two", "three"};
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = mproc_conn_send(w, msgs[i], strlen(msgs[i]), 5000);
    mproc_conn_close(w);
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "child") == 0)
        return child();
    mproc_conn *r, *w;
    int rc = mproc_pipe_kernel(&r, &w, false);
    if (rc != 0) {
        fprintf(stderr, "pipe: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_spawn_opts opts = MPROC_SPAWN_OPTS_INIT;
    opts.stdout_fd = mproc_conn_fd(w);
    char *args[] = {argv[0], "child", NULL};
    mproc_process *p;
    rc = mproc_process_spawn(&p, "/proc/self/exe", args, &opts);
    mproc_conn_close(w); /* the program has its own copy, as fd 1 */
    if (rc != 0) {
        fprintf(stderr, "spawn: %s\n", mproc_strerror(rc));
        mproc_conn_close(r);
        return 1;
    }
    int got = 0;
    char buf[64];
    size_t n;
    while ((rc = mproc_conn_recv(r, buf, sizeof buf - 1, &n, 5000)) == 0) {
        buf[n] = '\0';
        printf("parent got: %s\n", buf);
        got++;
    }
    mproc_conn_close(r);
    int jrc = mproc_process_join(p, 5000), code = -1;
    if (jrc == 0)
        jrc = mproc_process_exitcode(p, &code);
    mproc_process_destroy(p);
    printf("end: %s, program exit code %d\n", mproc_errname(rc), code);
    return rc == MPROC_ECLOSED && jrc == 0 && code == 0 && got == 3 ? 0 : 1;
}
