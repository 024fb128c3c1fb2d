/*
 * log_many_processes: a few worker processes log through one logger to
 * stderr and to a file. Each record is one write(2), so the file holds every
 * record whole, whatever the interleaving of the processes. The workers are
 * started with inherit_only: every fd of the parent from 3 up is closed in
 * them, but the logger's sinks stay open, as mproc keeps the fds of its own
 * objects.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

#define WORKERS 3
#define RECORDS 4

static int worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    mproc_log *lg = mproc_log_default(); /* inherited with its sinks */
    for (int i = 0; i < RECORDS; i++)
        mproc_log_info(lg, "worker %d: step %d of %d", w, i + 1, RECORDS);
    mproc_log_debug(lg, "below the threshold: never written");
    return 0;
}

int main(void)
{
    /* The one-line start, as multiprocessing.log_to_stderr(logging.INFO). */
    int rc = mproc_log_to_stderr(MPROC_LOG_INFO);
    mproc_log *lg = mproc_log_default();
    if (rc == 0)
        rc = mproc_log_set_format(
            lg,
            "%(asctime)s %(process)d %(levelname)-8s %(funcName)s: "
            "%(message)s",
            NULL);

    /* The same records also go to a file, appended with O_APPEND. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/mproc-log-example-%d.log", (int)getpid());
    if (rc == 0)
        rc = mproc_log_add_file(lg, path, NULL);
    if (rc != 0) {
        fprintf(stderr, "log_many_processes: %s\n", mproc_strerror(rc));
        return 1;
    }

    mproc_log_info(lg, "starting %d workers", WORKERS);
    mproc_process *p[WORKERS];
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.inherit_only = true;
    for (int w = 0; w < WORKERS; w++) {
        rc = mproc_process_start(&p[w], worker, (void *)(intptr_t)w, &o);
        if (rc != 0) {
            mproc_log_error(lg, "start: %s", mproc_strerror(rc));
            return 1;
        }
    }
    int failed = 0;
    for (int w = 0; w < WORKERS; w++) {
        int code = -1;
        if (mproc_process_join(p[w], 10000) != 0 ||
            mproc_process_exitcode(p[w], &code) != 0 || code != 0)
            failed++;
        mproc_process_destroy(p[w]);
    }
    mproc_log_warning(lg, "all workers done, %d failed", failed);

    /* Count the file's lines: 1 + WORKERS * RECORDS + 1, each whole. */
    FILE *fp = fopen(path, "r");
    int lines = 0;
    char line[512];
    while (fp != NULL && fgets(line, sizeof line, fp) != NULL)
        if (strchr(line, '\n') != NULL)
            lines++;
    if (fp != NULL)
        fclose(fp);
    unlink(path);
    int want = 1 + WORKERS * RECORDS + 1;
    printf("%s held %d records (expected %d)\n", path, lines, want);
    return failed == 0 && lines == want ? 0 : 1;
}
