/*
 * A pool that goes on after a worker kills itself. Task 7 of 20 raises
 * SIGKILL in its own worker: that task alone fails, with MPROC_ECHILD and
 * the signal in its failure record; the worker is replaced; the tasks the
 * dead worker had been sent but not started run on; and the next map finds
 * the pool whole. (Python's Pool waits for ever for task 7's result.)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mproc.h"

static int task(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    (void)len;
    int32_t n;
    memcpy(&n, in, sizeof n);
    if (n == 7)
        raise(SIGKILL); /* the worker dies holding task 7 */
    int32_t r = n * n;
    return mproc_pool_out_write(out, &r, sizeof r);
}

static int on_error(void *ctx, size_t index, const mproc_failure *f)
{
    (void)ctx;
    char text[512];
    mproc_failure_format(f, text, sizeof text);
    printf("task %zu failed: %s\n", index, text);
    return 0;
}

int main(void)
{
    mproc_pool_opts po = MPROC_POOL_OPTS_INIT;
    po.workers = 3;
    mproc_pool *pool;
    int rc = mproc_pool_create(&pool, &po);
    if (rc != 0) {
        fprintf(stderr, "pool: %s\n", mproc_strerror(rc));
        return 1;
    }
    int32_t in[20], out[20];
    for (int i = 0; i < 20; i++) {
        in[i] = i;
        out[i] = -1;
    }
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 4; /* task 7 shares its chunk with 4, 5, 6 */
    co.on_error = on_error;
    rc = mproc_pool_map(pool, task, NULL, in, sizeof in[0], 20, out,
                        sizeof out[0], &co, 10000);
    printf("map: %s\n", mproc_errname(rc));
    printf("results:");
    for (int i = 0; i < 20; i++)
        printf(" %d", (int)out[i]);
    printf("\n");
    int ok = rc == MPROC_ECHILD;
    for (int i = 0; i < 20; i++)
        ok = ok && (i == 7 ? out[i] == -1 : out[i] == i * i);

    int32_t again[5] = {1, 2, 3, 4, 5}, sq[5];
    rc = mproc_pool_map(pool, task, NULL, again, sizeof again[0], 5, sq,
                        sizeof sq[0], NULL, 10000);
    printf("next map: %s, last result %d\n", mproc_errname(rc), (int)sq[4]);
    ok = ok && rc == 0 && sq[4] == 25;
    mproc_pool_close(pool);
    mproc_pool_join(pool, 10000);
    mproc_pool_destroy(pool);
    return ok ? 0 : 1;
}
