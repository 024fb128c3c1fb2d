/*
 * The seed's Pool example: Pool(4).map(myTask, [2, 3, 4, 5, 6]) whose
 * workers log "n being processed" and "Final Result" to a file with their
 * process name, as Python's logging.basicConfig(filename=..., format=
 * "%(processName)-10s %(asctime)s:%(levelname)s:%(message)s") would. The
 * logger is made before the pool, so every worker inherits it; each record
 * is one write(2), so lines from the four workers never mix. The parent
 * then prints the results and the log.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

static mproc_log *lg;

static int my_task(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    int32_t n;
    if (len != sizeof n)
        return mproc_pool_fail(MPROC_EINVAL, "a task takes one int32");
    memcpy(&n, in, sizeof n);
    mproc_log_info(lg, "%d being processed", (int)n);
    int32_t r = n * 2;
    mproc_log_info(lg, "Final Result: %d", (int)r);
    return mproc_pool_out_write(out, &r, sizeof r);
}

int main(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/myapp-%d.log", (int)getpid());
    mproc_log_opts lo = MPROC_LOG_OPTS_INIT;
    lo.level = MPROC_LOG_INFO;
    lo.format = "%(processName)-10s %(asctime)s:%(levelname)s:%(message)s";
    int rc = mproc_log_create(&lg, &lo);
    if (rc == 0)
        rc = mproc_log_add_file(lg, path, NULL);
    if (rc != 0) {
        fprintf(stderr, "log: %s\n", mproc_strerror(rc));
        return 1;
    }

    mproc_pool_opts po = MPROC_POOL_OPTS_INIT;
    po.workers = 4;
    mproc_pool *pool;
    if ((rc = mproc_pool_create(&pool, &po)) != 0) {
        fprintf(stderr, "pool: %s\n", mproc_strerror(rc));
        return 1;
    }
    int32_t in[] = {2, 3, 4, 5, 6}, out[5];
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1; /* spread five tiny tasks over the four workers */
    rc = mproc_pool_map(pool, my_task, NULL, in, sizeof in[0], 5, out,
                        sizeof out[0], &co, 10000);
    mproc_pool_close(pool);
    mproc_pool_join(pool, 10000);
    mproc_pool_destroy(pool);
    mproc_log_destroy(lg);
    if (rc != 0) {
        fprintf(stderr, "map: %s\n", mproc_strerror(rc));
        return 1;
    }
    printf("results:");
    for (int i = 0; i < 5; i++)
        printf(" %d", (int)out[i]);
    printf("\n%s:\n", path);
    FILE *f = fopen(path, "r");
    char line[256];
    int lines = 0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        fputs(line, stdout);
        lines++;
    }
    if (f != NULL)
        fclose(f);
    unlink(path);
    return lines == 10 ? 0 : 1;
}
