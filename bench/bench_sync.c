/*
 * Synchronisation benchmarks: uncontended lock acquire+release (mproc, a
 * process-shared robust pthread mutex), lock hand-off between two
 * processes, the wake-up round trip of a sleeping Event waiter against a
 * pipe round trip, and Value atomic add. Every case checks its data.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mproc.h"

static void *shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        bench_die("mmap failed");
    return p;
}

static void check(int rc, const char *what)
{
    if (rc != 0)
        bench_die("%s: %s", what, mproc_strerror(rc));
}

static int reap(pid_t p)
{
    int st;
    if (waitpid(p, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ------------------------------------------------ uncontended lock */

#define BATCH 100000

static double median_ns_per_op(double (*round)(void *), void *arg)
{
    int n = bench_repeats();
    double v[16];
    for (int i = 0; i < n; i++)
        v[i] = round(arg);
    return bench_percentile(v, (size_t)n, 50);
}

static double lock_round(void *arg)
{
    mproc_lock *l = arg;
    volatile long counter = 0;
    long ops = 0;
    double until = bench_now_s() + bench_seconds() / 4;
    int64_t t0 = bench_now_ns();
    do {
        for (int i = 0; i < BATCH; i++) {
            if (mproc_lock_acquire(l, MPROC_FOREVER) != 0)
                bench_die("mproc_lock_acquire");
            counter = counter + 1;
            mproc_lock_release(l);
        }
        ops += BATCH;
    } while (bench_now_s() < until);
    int64_t t1 = bench_now_ns();
    if (counter != ops)
        bench_die("lock counter %ld != %ld", (long)counter, ops);
    return (double)(t1 - t0) / (double)ops;
}

static double pthread_round(void *arg)
{
    pthread_mutex_t *m = arg;
    volatile long counter = 0;
    long ops = 0;
    double until = bench_now_s() + bench_seconds() / 4;
    int64_t t0 = bench_now_ns();
    do {
        for (int i = 0; i < BATCH; i++) {
            if (pthread_mutex_lock(m) != 0)
                bench_die("pthread_mutex_lock");
            counter = counter + 1;
            pthread_mutex_unlock(m);
        }
        ops += BATCH;
    } while (bench_now_s() < until);
    int64_t t1 = bench_now_ns();
    if (counter != ops)
        bench_die("pthread counter mismatch");
    return (double)(t1 - t0) / (double)ops;
}

static pthread_mutex_t *shared_robust_mutex(void)
{
    pthread_mutex_t *m = shared(sizeof *m);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return m;
}

static void bench_uncontended(void)
{
    if (bench_impl_enabled("mproc_lock")) {
        mproc_lock *l;
        check(mproc_lock_create(&l, NULL, NULL), "lock");
        bench_result("sync.lock_uncontended", "mproc_lock", "ns_per_op",
                     median_ns_per_op(lock_round, l));
        mproc_lock_close(l);
    }
    if (bench_impl_enabled("pthread_mutex")) {
        pthread_mutex_t *m = shared_robust_mutex();
        bench_result("sync.lock_uncontended", "pthread_mutex", "ns_per_op",
                     median_ns_per_op(pthread_round, m));
        pthread_mutex_destroy(m);
        munmap(m, sizeof *m);
    }
}

/* ------------------------------------------------ lock hand-off */

/* Two processes take turns: each acquires, and if it is its turn, flips
 * the turn and counts a hand-off; if not, it yields (so the figure means
 * something when both share one CPU). */
struct handoff {
    volatile int turn;
    volatile long count[2];
    _Atomic int stop;
};

typedef int (*lock_fn)(void *);

static void handoff_side(struct handoff *h, int me, lock_fn lk, lock_fn ul,
                         void *l)
{
    while (!atomic_load(&h->stop)) {
        if (lk(l) != 0)
            bench_die("hand-off lock");
        int mine = h->turn == me;
        if (mine) {
            h->turn = 1 - me;
            h->count[me]++;
        }
        ul(l);
        if (!mine)
            sched_yield();
    }
}

static int m_lock(void *l)
{
    return mproc_lock_acquire(l, MPROC_FOREVER);
}
static int m_unlock(void *l)
{
    return mproc_lock_release(l);
}
static int p_lock(void *l)
{
    return pthread_mutex_lock(l);
}
static int p_unlock(void *l)
{
    return pthread_mutex_unlock(l);
}

static double handoff_round(lock_fn lk, lock_fn ul, void *l)
{
    struct handoff *h = shared(sizeof *h);
    pid_t p = fork();
    if (p == 0) {
        bench_pin_cpu(1);
        handoff_side(h, 1, lk, ul, l);
        _exit(0);
    }
    bench_pin_cpu(0);
    double secs = bench_seconds() / 2;
    int64_t t0 = bench_now_ns();
    double until = bench_now_s() + secs;
    while (bench_now_s() < until) {
        if (lk(l) != 0)
            bench_die("hand-off lock");
        int mine = h->turn == 0;
        if (mine) {
            h->turn = 1;
            h->count[0]++;
        }
        ul(l);
        if (!mine)
            sched_yield();
    }
    atomic_store(&h->stop, 1);
    int64_t t1 = bench_now_ns();
    if (reap(p) != 0)
        bench_die("hand-off child failed");
    long total = h->count[0] + h->count[1];
    /* Strict alternation: the counts differ by at most one. */
    if (total == 0 || labs(h->count[0] - h->count[1]) > 1)
        bench_die("hand-off counts %ld/%ld", h->count[0], h->count[1]);
    munmap(h, sizeof *h);
    return (double)(t1 - t0) / (double)total;
}

static void bench_handoff(void)
{
    int n = bench_repeats();
    double v[16];
    if (bench_impl_enabled("mproc_lock")) {
        mproc_lock *l;
        check(mproc_lock_create(&l, NULL, NULL), "lock");
        for (int i = 0; i < n; i++)
            v[i] = handoff_round(m_lock, m_unlock, l);
        bench_result("sync.lock_handoff", "mproc_lock", "ns_per_handoff",
                     bench_percentile(v, (size_t)n, 50));
        mproc_lock_close(l);
    }
    if (bench_impl_enabled("pthread_mutex")) {
        pthread_mutex_t *m = shared_robust_mutex();
        for (int i = 0; i < n; i++)
            v[i] = handoff_round(p_lock, p_unlock, m);
        bench_result("sync.lock_handoff", "pthread_mutex", "ns_per_handoff",
                     bench_percentile(v, (size_t)n, 50));
        munmap(m, sizeof *m);
    }
    bench_pin_cpu(0);
}

/* ------------------------------------------------ sleeping waiter wake */

/* The waker pauses before each round so the other side is asleep in the
 * kernel, then times set -> the other side wakes -> it answers. */
#define GAP_US 200

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static double event_rtt_p50(void)
{
    mproc_event *ping, *pong;
    check(mproc_event_create(&ping, NULL, NULL), "event");
    check(mproc_event_create(&pong, NULL, NULL), "event");
    volatile uint64_t *seq = shared(4096);
    pid_t p = fork();
    if (p == 0) {
        bench_pin_cpu(1);
        for (;;) {
            if (mproc_event_wait(ping, MPROC_FOREVER) != 0)
                _exit(1);
            mproc_event_clear(ping);
            uint64_t s = seq[0];
            seq[1] = s; /* echo */
            mproc_event_set(pong);
            if (s == UINT64_MAX)
                _exit(0);
        }
    }
    size_t cap = 200000, n = 0;
    double *v = malloc(cap * sizeof *v);
    double until = bench_now_s() + bench_seconds();
    for (uint64_t i = 1; bench_now_s() < until && n < cap; i++) {
        nap_us(GAP_US);
        seq[0] = i;
        int64_t t0 = bench_now_ns();
        mproc_event_set(ping);
        if (mproc_event_wait(pong, MPROC_FOREVER) != 0)
            bench_die("event pong timed out");
        int64_t t1 = bench_now_ns();
        mproc_event_clear(pong);
        if (seq[1] != i)
            bench_die("event echo %llu != %llu", (unsigned long long)seq[1],
                      (unsigned long long)i);
        v[n++] = (double)(t1 - t0) / 1000.0;
    }
    seq[0] = UINT64_MAX;
    mproc_event_set(ping);
    if (reap(p) != 0)
        bench_die("event child failed");
    double r = bench_percentile(v, n, 50);
    free(v);
    munmap((void *)seq, 4096);
    mproc_event_close(ping);
    mproc_event_close(pong);
    return r;
}

static double pipe_rtt_p50(void)
{
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) != 0 || pipe2(b, O_CLOEXEC) != 0)
        bench_die("pipe");
    pid_t p = fork();
    if (p == 0) {
        uint64_t s;
        bench_pin_cpu(1);
        close(a[1]);
        close(b[0]);
        while (read(a[0], &s, sizeof s) == (ssize_t)sizeof s) {
            if (write(b[1], &s, sizeof s) != (ssize_t)sizeof s)
                _exit(1);
        }
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    size_t cap = 200000, n = 0;
    double *v = malloc(cap * sizeof *v);
    double until = bench_now_s() + bench_seconds();
    for (uint64_t i = 1; bench_now_s() < until && n < cap; i++) {
        nap_us(GAP_US);
        uint64_t s = 0;
        int64_t t0 = bench_now_ns();
        if (write(a[1], &i, sizeof i) != (ssize_t)sizeof i ||
            read(b[0], &s, sizeof s) != (ssize_t)sizeof s)
            bench_die("pipe round trip");
        int64_t t1 = bench_now_ns();
        if (s != i)
            bench_die("pipe echo mismatch");
        v[n++] = (double)(t1 - t0) / 1000.0;
    }
    close(a[1]);
    close(b[0]);
    if (reap(p) != 0)
        bench_die("pipe child failed");
    double r = bench_percentile(v, n, 50);
    free(v);
    return r;
}

static void bench_wake(void)
{
    if (bench_impl_enabled("mproc_event"))
        bench_result("sync.event_wake", "mproc_event", "rtt_p50_us",
                     event_rtt_p50());
    if (bench_impl_enabled("pipe"))
        bench_result("sync.event_wake", "pipe", "rtt_p50_us", pipe_rtt_p50());
}

/* ------------------------------------------------ Value atomic add */

static double value_round(void *arg)
{
    mproc_value *v = arg;
    int64_t got;
    check(mproc_value_set_int64(v, 0, MPROC_FOREVER), "value set");
    long ops = 0;
    double until = bench_now_s() + bench_seconds() / 4;
    int64_t t0 = bench_now_ns();
    do {
        for (int i = 0; i < BATCH; i++)
            mproc_value_add_int64(v, 1, NULL);
        ops += BATCH;
    } while (bench_now_s() < until);
    int64_t t1 = bench_now_ns();
    check(mproc_value_get_int64(v, &got, MPROC_FOREVER), "value get");
    if (got != ops)
        bench_die("value %lld != %ld", (long long)got, ops);
    return (double)(t1 - t0) / (double)ops;
}

static double value_locked_round(void *arg)
{
    mproc_value *v = arg;
    mproc_lock *l = mproc_value_get_lock(v);
    int64_t x;
    check(mproc_value_set_int64(v, 0, MPROC_FOREVER), "value set");
    long ops = 0;
    double until = bench_now_s() + bench_seconds() / 4;
    int64_t t0 = bench_now_ns();
    do {
        for (int i = 0; i < BATCH; i++) {
            mproc_lock_acquire(l, MPROC_FOREVER);
            mproc_value_get_int64(v, &x, MPROC_FOREVER);
            mproc_value_set_int64(v, x + 1, MPROC_FOREVER);
            mproc_lock_release(l);
        }
        ops += BATCH;
    } while (bench_now_s() < until);
    int64_t t1 = bench_now_ns();
    check(mproc_value_get_int64(v, &x, MPROC_FOREVER), "value get");
    if (x != ops)
        bench_die("locked value %lld != %ld", (long long)x, ops);
    return (double)(t1 - t0) / (double)ops;
}

static void bench_value(void)
{
    mproc_value *v;
    check(mproc_value_create(&v, NULL, MPROC_TYPE_INT64, NULL), "value");
    if (bench_impl_enabled("mproc_value_atomic"))
        bench_result("sync.value_add", "mproc_value_atomic", "ns_per_op",
                     median_ns_per_op(value_round, v));
    if (bench_impl_enabled("mproc_value_locked"))
        bench_result("sync.value_add", "mproc_value_locked", "ns_per_op",
                     median_ns_per_op(value_locked_round, v));
    mproc_value_close(v);
}

int main(void)
{
    bench_pin_cpu(0);
    bench_uncontended();
    bench_handoff();
    bench_wake();
    bench_value();
    return 0;
}
