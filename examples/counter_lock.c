/*
 * A counter in shared memory incremented by 4 processes: once under a Lock
 * (the Value's own lock, as Python's `with v.get_lock(): v.value += 1`),
 * once with lock-free atomic add. Both must end at exactly 4 * N.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

#define WORKERS 4
#define N 10000

static int run(mproc_value *v, int atomic)
{
    mproc_lock *lock = mproc_value_get_lock(v);
    for (int i = 0; i < N; i++) {
        if (atomic) {
            if (mproc_value_add_int64(v, 1, NULL) != 0)
                return 1;
            continue;
        }
        int64_t x;
        if (mproc_lock_acquire(lock, MPROC_FOREVER) != 0)
            return 1;
        int rc = mproc_value_get_int64(v, &x, MPROC_FOREVER);
        if (rc == 0)
            rc = mproc_value_set_int64(v, x + 1, MPROC_FOREVER);
        mproc_lock_release(lock);
        if (rc != 0)
            return 1;
    }
    return 0;
}

static int count(int atomic)
{
    mproc_value *v;
    int rc = mproc_value_create(&v, NULL, MPROC_TYPE_INT64, NULL);
    if (rc != 0) {
        fprintf(stderr, "counter_lock: %s\n", mproc_strerror(rc));
        return 1;
    }
    pid_t pids[WORKERS];
    for (int w = 0; w < WORKERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0)
            _exit(run(v, atomic));
    }
    int failed = 0;
    for (int w = 0; w < WORKERS; w++) {
        int st;
        waitpid(pids[w], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    int64_t total = 0;
    failed |= mproc_value_get_int64(v, &total, MPROC_FOREVER) != 0;
    mproc_value_close(v);
    printf("%-12s %d processes x %d increments = %lld\n",
           atomic ? "atomic add:" : "under lock:", WORKERS, N,
           (long long)total);
    return failed || total != (int64_t)WORKERS * N;
}

int main(void)
{
    return count(0) || count(1);
}
