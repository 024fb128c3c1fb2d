/* The example from README.md, kept here so that CI builds and runs it. */
#include "mproc.h"

#include <stdio.h>

static int work(void *arg)
{
    const char *who = arg;
    if (who == NULL)
        mproc_fail(MPROC_EINVAL, "nobody to greet");
    printf("%s: hello, %s\n", mproc_current_name(), who);
    return 0;
}

int main(void)
{
    char *names[] = {"world", NULL};
    for (int i = 0; i < 2; i++) {
        mproc_process *p;
        int rc = mproc_process_start(&p, work, names[i], NULL);
        if (rc < 0) {
            fprintf(stderr, "start: %s\n", mproc_strerror(rc));
            return 1;
        }
        rc = mproc_process_join(p, 5000); /* at most 5 s */
        if (rc < 0) {
            fprintf(stderr, "join: %s\n", mproc_strerror(rc));
            mproc_process_destroy(p);
            return 1;
        }
        const mproc_failure *f = mproc_process_error(p);
        if (f != NULL)
            printf("%s failed: %s: %s at %s:%d\n", f->name,
                   mproc_errname(f->error), f->message, f->file, f->line);
        mproc_process_destroy(p);
    }
    return 0;
}
