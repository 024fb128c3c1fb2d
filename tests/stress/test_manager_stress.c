/* The manager under kill -9 at random points, in a loop: lock holders and
 * waiters, clients parked in a blocking get, clients in the middle of
 * large pipelines. The server and the survivors must go on, a lock whose
 * holder died must reach the next owner with MPROC_EOWNERDEAD, and no
 * queue item may go to a dead waiter. Each case is bounded in time; forked
 * helpers only _exit. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

#define ROUNDS 20
#define T 10000

static pid_t spawn(int (*fn)(void *), void *arg)
{
    fflush(stdout);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(fn(arg));
    return p;
}

static void kill_and_reap(pid_t p)
{
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

/* In memory the children share: who holds the lock now (set after an
 * acquire, cleared before the release), and how many acquires were told
 * that the previous holder died. */
typedef struct lock_shared {
    volatile pid_t holder;
    int reports;
} lock_shared;

typedef struct lock_arg {
    mproc_mclient *c;
    mproc_mlock *l;
    mproc_mvalue *v;
    lock_shared *sh;
} lock_arg;

/* Increments the value under the lock for ever (read, then write: a
 * holder killed between the two is what EOWNERDEAD reports). */
static int locker(void *arg)
{
    lock_arg *a = arg;
    for (;;) {
        int rc = mproc_mlock_acquire(a->l, T);
        if (rc != 0 && rc != MPROC_EOWNERDEAD)
            return 2;
        if (rc == MPROC_EOWNERDEAD)
            __atomic_add_fetch(&a->sh->reports, 1, __ATOMIC_SEQ_CST);
        a->sh->holder = getpid();
        int64_t n = 0;
        mproc_mvalue_get_i64(a->v, &n, T);
        if (mproc_mvalue_set_i64(a->v, n + 1, T) != 0)
            return 3;
        a->sh->holder = 0;
        if (mproc_mlock_release(a->l, T) != 0)
            return 4;
    }
}

START_TEST(lock_holders_killed_at_random_never_wedge_the_lock)
{
    srand((unsigned)getpid());
    mproc_manager *m;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, NULL), 0);
    lock_arg a;
    ck_assert_int_eq(
        mproc_mclient_open(&a.c, mproc_manager_address(m), NULL, T), 0);
    ck_assert_int_eq(mproc_mlock_open(&a.l, a.c, "L", NULL, T), 0);
    ck_assert_int_eq(mproc_mvalue_open(&a.v, a.c, "n"), 0);
    ck_assert_int_eq(mproc_mvalue_set_i64(a.v, 0, T), 0);
    a.sh = mmap(NULL, sizeof *a.sh, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(a.sh, MAP_FAILED);
    pid_t kids[3];
    for (int i = 0; i < 3; i++)
        kids[i] = spawn(locker, &a);
    int held_deaths = 0;
    int64_t last = -1;
    for (int r = 0; r < ROUNDS; r++) {
        usleep((useconds_t)(rand() % 20000));
        int k = rand() % 3;
        int before = __atomic_load_n(&a.sh->reports, __ATOMIC_SEQ_CST);
        kill_and_reap(kids[k]);
        bool held = a.sh->holder == kids[k]; /* it died holding the lock */
        if (held)
            a.sh->holder = 0;
        held_deaths += held;
        /* The lock always comes back. */
        int rc = mproc_mlock_acquire(a.l, test_ms(T));
        ck_assert_msg(rc == 0 || rc == MPROC_EOWNERDEAD, "acquire: %s",
                      mproc_errname(rc));
        /* A death while holding was told to exactly the next owner: this
         * acquire or a child's before it. */
        int after = __atomic_load_n(&a.sh->reports, __ATOMIC_SEQ_CST);
        if (held)
            ck_assert_msg(rc == MPROC_EOWNERDEAD || after > before,
                          "round %d: a holder's death went unreported", r);
        int64_t n;
        ck_assert_int_eq(mproc_mvalue_get_i64(a.v, &n, T), 0);
        ck_assert_int_ge(n, last); /* the count never goes back */
        last = n;
        ck_assert_int_eq(mproc_mlock_release(a.l, T), 0);
        kids[k] = spawn(locker, &a);
    }
    for (int i = 0; i < 3; i++)
        kill_and_reap(kids[i]);
    ck_assert_int_eq(mproc_mlock_acquire(a.l, test_ms(T)) <= 0, 1);
    ck_assert_int_gt(last, 0);
    fprintf(stderr, "lock stress: %d of %d kills held the lock\n", held_deaths,
            ROUNDS);
    munmap(a.sh, sizeof *a.sh);
    mproc_mlock_close(a.l);
    mproc_mvalue_close(a.v);
    mproc_mclient_close(a.c);
    mproc_manager_destroy(m);
}
END_TEST

static int parked_getter(void *arg)
{
    mproc_mqueue *q = arg;
    void *p;
    size_t n;
    if (mproc_mqueue_get(q, &p, &n, MPROC_FOREVER) == 0)
        return 9; /* nothing is put while these wait */
    return 0;
}

/* Sends big pipelines of pushes and gets, not reading the replies. */
static int flooder(void *arg)
{
    const char *addr = arg;
    mproc_mclient *c;
    mproc_mclient_opts o = MPROC_MCLIENT_OPTS_INIT;
    o.no_rings = rand() % 2;
    if (mproc_mclient_open(&c, addr, &o, T) != 0)
        return 2;
    mproc_mbatch *b;
    mproc_mbatch_create(&b, c);
    for (int i = 0; i < 2000; i++) {
        const char *argv[] = {"HSET", "flood", "f", "a value of some size"};
        mproc_mbatch_add(b, 4, argv, NULL);
    }
    for (;;)
        if (mproc_mbatch_run(b, T) != 0)
            return 3;
}

START_TEST(clients_killed_parked_or_mid_pipeline_leave_the_queue_whole)
{
    srand((unsigned)getpid());
    mproc_manager *m;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, NULL), 0);
    const char *addr = mproc_manager_address(m);
    mproc_mclient *c;
    ck_assert_int_eq(mproc_mclient_open(&c, addr, NULL, T), 0);
    mproc_mqueue *q;
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "q", NULL, T), 0);
    for (int r = 0; r < ROUNDS; r++) {
        pid_t w[4], f[2];
        for (int i = 0; i < 4; i++)
            w[i] = spawn(parked_getter, q);
        for (int i = 0; i < 2; i++)
            f[i] = spawn(flooder, (void *)addr);
        usleep((useconds_t)(rand() % 30000));
        for (int i = 0; i < 4; i++)
            kill_and_reap(w[i]);
        for (int i = 0; i < 2; i++)
            kill_and_reap(f[i]);
        /* Dead waiters take nothing: what is put now comes back here. */
        char item[32];
        snprintf(item, sizeof item, "round-%d", r);
        ck_assert_int_eq(mproc_mqueue_put(q, item, MPROC_MSTR, T), 0);
        void *p;
        size_t n;
        ck_assert_int_eq(mproc_mqueue_get(q, &p, &n, test_ms(T)), 0);
        ck_assert_str_eq(p, item);
        free(p);
        ck_assert_int_eq(mproc_mclient_ping(c, T), 0);
    }
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("manager_stress");
    TEST_ADD(s, lock_holders_killed_at_random_never_wedge_the_lock);
    TEST_ADD(s, clients_killed_parked_or_mid_pipeline_leave_the_queue_whole);
    return s;
}
