/* The pool under fire: workers SIGKILLed in a loop, by their own tasks
 * (mid-task for sure) and by a thread that kills a random worker every few
 * milliseconds (anywhere: in a task, between tasks, inside the queues).
 * Every task ends exactly once: it succeeds with the right output, or it
 * fails with MPROC_ECHILD and SIGKILL because its worker died holding it;
 * no task runs twice, nothing hangs, and the pool goes on. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

#define N 3000
#define PIDS 64
#define VICTIM 499

struct shared {
    _Atomic int runs[N];
    _Atomic int pids[PIDS]; /* workers seen running tasks */
};

static struct shared *sh;

/* A round kills workers thousands of times, each a fork: seconds here,
 * many times that under a sanitizer. The short form (CTest) stops after
 * the round that passes this much wall time, once it has run `least`
 * rounds; MPROC_STRESS_LONG=1 (`make stress`) runs every round. */
#define SHORT_BUDGET_MS 25000

static bool more_rounds(int round, int rounds, int least, int64_t started)
{
    if (round >= rounds)
        return false;
    const char *e = getenv("MPROC_STRESS_LONG");
    return round < least || (e != NULL && *e == '1') ||
           test_now_ms() - started < SHORT_BUDGET_MS;
}

static struct shared *map_shared(void)
{
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

/* Counts its run, spins some 20 us (so that kills land inside tasks), and,
 * for one input in VICTIM, kills its own worker on its first run. */
static int t_work(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    (void)len;
    int64_t x;
    memcpy(&x, in, sizeof x);
    pid_t me = getpid();
    atomic_store(&sh->pids[me % PIDS], me);
    int runs = atomic_fetch_add(&sh->runs[x], 1);
    if (x % VICTIM == 5 && runs == 0)
        raise(SIGKILL);
    volatile uint64_t acc = (uint64_t)x;
    for (int i = 0; i < 8000; i++)
        acc = acc * 6364136223846793005u + 1442695040888963407u;
    int64_t y = x * 3 + 1;
    return mproc_pool_out_write(out, &y, sizeof y);
}

/* The killer: SIGKILLs a random worker every 1-4 ms. Through a pidfd, after
 * checking that the pid is a child of ours (a pool worker, not a process
 * that reused a dead worker's pid). */
struct killer {
    _Atomic int stop;
    _Atomic int kills;
    unsigned seed;
};

static int is_my_child(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    char state;
    int ppid;
    if (p == NULL || sscanf(p + 1, " %c %d", &state, &ppid) != 2)
        return 0;
    return ppid == getpid() && state != 'Z';
}

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    while (!atomic_load(&k->stop)) {
        usleep(1000 + rand_r(&k->seed) % 3000);
        /* A live worker, from a random place in the table. */
        pid_t pid = 0;
        for (unsigned i = 0, at = (unsigned)rand_r(&k->seed); i < PIDS; i++) {
            pid_t c = atomic_load(&sh->pids[(at + i) % PIDS]);
            if (c > 0 && is_my_child(c)) {
                pid = c;
                break;
            }
        }
        if (pid <= 0)
            continue;
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (fd < 0)
            continue;
        if (is_my_child(pid) &&
            syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0) == 0)
            k->kills++;
        close(fd);
    }
    return NULL;
}

/* Checks every task of a finished result; returns how many failed. */
static int check_all(mproc_pool_result *r, const int64_t *out)
{
    int failed = 0;
    for (size_t i = 0; i < N; i++) {
        const mproc_failure *f = mproc_pool_result_error(r, i);
        int runs = atomic_load(&sh->runs[i]);
        if (f == NULL) {
            ck_assert_msg(runs == 1, "task %zu ran %d times", i, runs);
            ck_assert_int_eq(out[i], (int64_t)i * 3 + 1);
            continue;
        }
        /* Killed holding it: it began (cur stored) but may have died
         * before counting its run. */
        ck_assert_msg(runs <= 1, "failed task %zu ran %d times", i, runs);
        ck_assert_int_eq(f->error, MPROC_ECHILD);
        ck_assert_int_eq(f->signal, SIGKILL);
        failed++;
    }
    return failed;
}

static void run_rounds(const size_t *chunks, size_t nchunks, int rounds)
{
    sh = map_shared();
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = 3;
    mproc_pool *p;
    ck_assert_int_eq(mproc_pool_create(&p, &o), 0);
    struct killer k = {0, 0, 12345};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, killer_main, &k), 0);
    static int64_t in[N], out[N];
    for (size_t i = 0; i < N; i++)
        in[i] = (int64_t)i;
    int total_failed = 0, round;
    int64_t started = test_now_ms();
    /* At least one round of each chunk size. */
    for (round = 0; more_rounds(round, rounds, (int)nchunks, started);
         round++) {
        memset((void *)sh->runs, 0, sizeof sh->runs);
        memset(out, 0, sizeof out);
        mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
        co.chunksize = chunks[(size_t)round % nchunks];
        mproc_pool_result *r;
        int kills0 = k.kills;
        ck_assert_int_eq(
            mproc_pool_map_async(&r, p, t_work, NULL, in, 8, N, out, 8, &co),
            0);
        int rc = mproc_pool_result_get(r, test_ms(60000));
        ck_assert_msg(rc == 0 || rc == MPROC_ECHILD, "get: %s",
                      mproc_errname(rc));
        int failed = check_all(r, out);
        /* Each failure is one death: a self-kill (at most N/97 + 1) or one
         * of the killer's. */
        ck_assert_int_le(failed, N / VICTIM + 1 + (k.kills - kills0));
        ck_assert_int_ge(failed, 1); /* the self-kills hit tasks */
        total_failed += failed;
        mproc_pool_result_destroy(r);
    }
    atomic_store(&k.stop, 1);
    pthread_join(t, NULL);
    fprintf(stderr, "%d rounds, %d killer kills, %d tasks failed\n", round,
            (int)k.kills, total_failed);
    /* The pool still works, then ends. */
    int64_t x = 7, y = 0;
    memset((void *)sh->runs, 0, sizeof sh->runs);
    ck_assert_int_eq(
        mproc_pool_apply(p, t_work, NULL, &x, 8, &y, 8, NULL, test_ms(10000)),
        0);
    ck_assert_int_eq(y, 22);
    ck_assert_int_eq(mproc_pool_close(p), 0);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(20000)), 0);
    mproc_pool_destroy(p);
    munmap(sh, sizeof *sh);
}

START_TEST(map_survives_workers_killed_in_a_loop)
{
    const size_t chunks[] = {1, 7, 0};
    run_rounds(chunks, 3, 12);
}
END_TEST

static int feed_next(void *ctx, size_t index, const void **data, size_t *len)
{
    int64_t *v = ctx;
    if (index >= N)
        return 0;
    *v = (int64_t)index;
    *data = v;
    *len = sizeof *v;
    return 1;
}

/* imap_unordered while workers die: every input comes back exactly once. */
START_TEST(imap_unordered_survives_workers_killed_in_a_loop)
{
    sh = map_shared();
    mproc_pool *p;
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = 2;
    ck_assert_int_eq(mproc_pool_create(&p, &o), 0);
    struct killer k = {0, 0, 777};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, killer_main, &k), 0);
    int64_t started = test_now_ms();
    int round;
    for (round = 0; more_rounds(round, 6, 2, started); round++) {
        memset((void *)sh->runs, 0, sizeof sh->runs);
        static char seen[N];
        memset(seen, 0, sizeof seen);
        int64_t feed;
        mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
        co.chunksize = (size_t)round * 3 + 1;
        co.max_in_flight = 64;
        mproc_pool_iter *it;
        ck_assert_int_eq(mproc_pool_imap_unordered(&it, p, t_work, NULL,
                                                   feed_next, &feed, &co),
                         0);
        for (int i = 0; i < N; i++) {
            size_t idx = N;
            const void *d = NULL;
            size_t len = 0;
            int rc = mproc_pool_iter_next(it, &idx, &d, &len, test_ms(20000));
            ck_assert_msg(rc == 0 || rc == MPROC_ECHILD, "next: %s",
                          mproc_errname(rc));
            ck_assert_uint_lt(idx, N);
            ck_assert(!seen[idx]);
            seen[idx] = 1;
            if (rc == 0) {
                int64_t y;
                memcpy(&y, d, sizeof y);
                ck_assert_int_eq(y, (int64_t)idx * 3 + 1);
                ck_assert_int_eq(atomic_load(&sh->runs[idx]), 1);
            } else {
                ck_assert_int_eq(mproc_pool_iter_error(it)->signal, SIGKILL);
                ck_assert_int_le(atomic_load(&sh->runs[idx]), 1);
            }
        }
        ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0),
                         MPROC_ECLOSED);
        mproc_pool_iter_destroy(it);
    }
    atomic_store(&k.stop, 1);
    pthread_join(t, NULL);
    fprintf(stderr, "imap: %d rounds, %d killer kills\n", round, (int)k.kills);
    ck_assert_int_eq(mproc_pool_close(p), 0);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(20000)), 0);
    mproc_pool_destroy(p);
    munmap(sh, sizeof *sh);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("pool_stress");
    TEST_ADD(s, map_survives_workers_killed_in_a_loop);
    TEST_ADD(s, imap_unordered_survives_workers_killed_in_a_loop);
    return s;
}
