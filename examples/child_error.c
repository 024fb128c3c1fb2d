/*
 * child_error: a child's failure reaches its parent as data. The child
 * calls mproc_fail(); after join the parent reads the failure record (name,
 * exit code, error, message, file and line) instead of a traceback lost on
 * the child's stderr.
 */
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int parse_port(void *arg)
{
    const char *text = arg;
    int port = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            mproc_fail(MPROC_EINVAL, "port \"%s\" is not a number", text);
        port = port * 10 + (*c - '0');
    }
    return port > 65535 ? MPROC_ERANGE : 0;
}

int main(void)
{
    mproc_process_opts opts = MPROC_PROCESS_OPTS_INIT;
    opts.name = "config-reader";
    mproc_process *p;
    int rc = mproc_process_start(&p, parse_port, "80x", &opts);
    if (rc < 0) {
        fprintf(stderr, "start: %s\n", mproc_strerror(rc));
        return 1;
    }
    rc = mproc_process_join(p, 5000);
    if (rc < 0) {
        fprintf(stderr, "join: %s\n", mproc_strerror(rc));
        mproc_process_kill(p);
        mproc_process_join(p, MPROC_FOREVER);
        mproc_process_destroy(p);
        return 1;
    }

    const mproc_failure *f = mproc_process_error(p);
    if (f == NULL) {
        fprintf(stderr, "the child was expected to fail\n");
        mproc_process_destroy(p);
        return 1;
    }
    printf("child %s failed\n", f->name);
    printf("  exit code: %d\n", f->exitcode);
    printf("  error:     %s (%s)\n", mproc_errname(f->error),
           mproc_strerror(f->error));
    printf("  message:   %s\n", f->message);
    printf("  at:        %s:%d\n", f->file, f->line);
    int ok = f->error == MPROC_EINVAL && f->exitcode == 1 && f->line > 0;

    char text[4096];
    mproc_failure_format(f, text, sizeof text);
    printf("\nformatted:\n%s\n", text);
    mproc_process_destroy(p);
    return ok ? 0 : 1;
}
