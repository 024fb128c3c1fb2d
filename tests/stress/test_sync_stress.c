/* Kill -9 at random points, in a loop: a Lock's holder, Barrier
 * participants, Semaphore/Event/Condition waiters. The survivors must go on,
 * and every owner death must be reported, never a silent success. Each case
 * is bounded in time. Forked helpers only _exit. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal/region.h"
#include "mproc.h"
#include "testlib.h"

#define ROUNDS 30

static void *shared_page(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(fn(arg));
    return p;
}

static void random_delay_us(unsigned max)
{
    usleep((useconds_t)(rand() % (int)max));
}

/* ------------------------------------------------------------------ Lock */

static mproc_lock *g_lock;
static volatile long *g_pair; /* [0] and [1] equal whenever the lock is free */

/* Changes the pair in two steps under the lock, forever, until killed. A
 * kill between the steps leaves them unequal: the next owner must get
 * MPROC_EOWNERDEAD and repair them. */
static int child_churn(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = mproc_lock_acquire(g_lock, MPROC_FOREVER);
        if (rc == MPROC_EOWNERDEAD) {
            g_pair[1] = g_pair[0];
            mproc_lock_consistent(g_lock);
        } else if (rc != 0) {
            return 1;
        }
        if (g_pair[0] != g_pair[1])
            return 2; /* torn state behind a plain success */
        g_pair[0]++;
        for (volatile int i = 0; i < 50; i++)
            ;
        g_pair[1]++;
        if (mproc_lock_release(g_lock) != 0)
            return 3;
    }
}

START_TEST(lock_holders_killed_at_random_points)
{
    g_pair = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    srand((unsigned)getpid());
    int deaths = 0;
    for (int r = 0; r < ROUNDS; r++) {
        pid_t a = spawn(child_churn, NULL);
        pid_t b = spawn(child_churn, NULL);
        random_delay_us(20000);
        kill(a, SIGKILL);
        random_delay_us(5000);
        kill(b, SIGKILL);
        ck_assert_int_eq(test_wait_status(a), 128 + SIGKILL);
        ck_assert_int_eq(test_wait_status(b), 128 + SIGKILL);
        int rc = mproc_lock_acquire(g_lock, test_ms(5000));
        ck_assert(rc == 0 || rc == MPROC_EOWNERDEAD);
        if (rc == MPROC_EOWNERDEAD) {
            deaths++;
            g_pair[1] = g_pair[0];
            ck_assert_int_eq(mproc_lock_consistent(g_lock), 0);
        }
        /* Never a silent success over torn state. */
        ck_assert_int_eq(g_pair[0], g_pair[1]);
        ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    }
    /* Not asserted (timing), but expected: many kills land inside. */
    fprintf(stderr, "lock stress: %d of %d rounds saw an owner die\n", deaths,
            ROUNDS);
    mproc_lock_close(g_lock);
    munmap((void *)g_pair, 4096);
}
END_TEST

/* --------------------------------------------------------------- Barrier */

static mproc_barrier *g_barrier;
static _Atomic int *g_rounds;

static int child_barrier_loop(void *arg)
{
    (void)arg;
    for (;;) {
        int rc = mproc_barrier_wait(g_barrier, MPROC_FOREVER, NULL);
        if (rc == MPROC_EBROKEN)
            return 0;
        if (rc != 0)
            return 1;
        atomic_fetch_add(g_rounds, 1);
    }
}

START_TEST(barrier_participants_killed_at_random_points)
{
    srand((unsigned)getpid() * 7u);
    g_rounds = shared_page();
    for (int r = 0; r < ROUNDS; r++) {
        atomic_store(g_rounds, 0);
        ck_assert_int_eq(mproc_barrier_create(&g_barrier, NULL, 3, NULL), 0);
        pid_t p[3];
        for (int i = 0; i < 3; i++)
            p[i] = spawn(child_barrier_loop, NULL);
        /* A process that never arrived is unknown to the barrier: kill
         * only once every child has passed it once. */
        int64_t until = test_now_ms() + test_ms(5000);
        while (atomic_load(g_rounds) < 3 && test_now_ms() < until)
            usleep(100);
        random_delay_us(20000);
        int victim = rand() % 3;
        kill(p[victim], SIGKILL);
        int64_t t0 = test_now_ms();
        for (int i = 0; i < 3; i++) {
            int st = test_wait_status(p[i]);
            if (i == victim)
                ck_assert_int_eq(st, 128 + SIGKILL);
            else
                ck_assert_int_eq(st, 0);
        }
        /* Survivors waited forever; only the death released them. */
        ck_assert_int_lt(test_now_ms() - t0, test_ms(5000));
        ck_assert_int_eq(mproc_barrier_broken(g_barrier), 1);
        mproc_barrier_close(g_barrier);
    }
    munmap(g_rounds, 4096);
}
END_TEST

/* Generation 0, or a newcomer: the victim has never passed the barrier, so
 * only what it did inside this wait (the internal lock taken, its slot
 * stored) can make it known. Killed at a random point of its first wait:
 * once it holds the internal lock or has a slot, the survivors must get
 * MPROC_EBROKEN long before their timeout; killed before that, it never
 * arrived (unknowable, as documented) and the test aborts the barrier. */
static _Atomic int *g_entering;

static int child_barrier_first_wait(void *arg)
{
    (void)arg;
    atomic_store(g_entering, 1);
    return mproc_barrier_wait(g_barrier, test_ms(10000), NULL) == 0 ? 0 : 1;
}

static int child_barrier_survivor(void *arg)
{
    (void)arg;
    int rc = mproc_barrier_wait(g_barrier, test_ms(10000), NULL);
    return rc == MPROC_EBROKEN ? 0 : rc == MPROC_ETIMEDOUT ? 1 : 2;
}

static void busy_us(int64_t us)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do
        clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000 <
           us);
}

/* Layout (docs/shared-memory.md): broken at 20, the internal lock word at
 * 32, slots (tid first, 16 bytes each) at 64. */
static bool victim_known(const char *payload, pid_t victim, uint32_t parties)
{
    const _Atomic uint32_t *broken = (const void *)(payload + 20);
    const _Atomic uint32_t *lock = (const void *)(payload + 32);
    if (atomic_load(broken) ||
        (atomic_load(lock) & 0x3fffffffu) == (uint32_t)victim)
        return true;
    for (uint32_t i = 0; i < parties; i++) {
        const _Atomic uint32_t *tid = (const void *)(payload + 64 + 16 * i);
        if (atomic_load(tid) == (uint32_t)victim)
            return true;
    }
    return false;
}

START_TEST(barrier_newcomers_killed_at_random_points_of_their_first_wait)
{
    srand((unsigned)getpid() * 11u);
    g_entering = shared_page();
    char name[64];
    test_shm_name(name, sizeof name, "barrier");
    int known = 0;
    for (int r = 0; r < ROUNDS; r++) {
        atomic_store(g_entering, 0);
        ck_assert_int_eq(mproc_barrier_create(&g_barrier, name, 4, NULL), 0);
        mproc__region reg;
        ck_assert_int_eq(mproc__region_open(&reg, name, MPROC__KIND_ANY, NULL),
                         0);
        pid_t s[2];
        for (int i = 0; i < 2; i++)
            s[i] = spawn(child_barrier_survivor, NULL);
        int64_t until = test_now_ms() + test_ms(5000);
        while (mproc_barrier_n_waiting(g_barrier) < 2 && test_now_ms() < until)
            usleep(100);
        pid_t victim = spawn(child_barrier_first_wait, NULL);
        while (!atomic_load(g_entering) && test_now_ms() < until)
            ;
        busy_us(rand() % 400);
        kill(victim, SIGKILL);
        ck_assert_int_eq(test_wait_status(victim), 128 + SIGKILL);
        bool k = victim_known(reg.payload, victim, 4);
        known += k;
        if (!k)
            ck_assert_int_eq(mproc_barrier_abort(g_barrier), 0);
        for (int i = 0; i < 2; i++) /* EBROKEN, not a timeout */
            ck_assert_int_eq(test_wait_status(s[i]), 0);
        mproc__region_close(&reg);
        mproc_barrier_close(g_barrier);
        ck_assert_int_eq(mproc_barrier_unlink(name), 0);
    }
    fprintf(stderr, "newcomer victims known to the barrier: %d of %d\n", known,
            ROUNDS);
    munmap(g_entering, 4096);
}
END_TEST

/* ------------------------------------- Semaphore, Event, Condition waiters */

static mproc_semaphore *g_sem;
static mproc_event *g_event;
static mproc_condition *g_cond;
static _Atomic int *g_done;

static int child_sem_waiter(void *arg)
{
    (void)arg;
    if (mproc_semaphore_acquire(g_sem, test_ms(10000)) != 0)
        return 1;
    atomic_fetch_add(g_done, 1);
    return 0;
}

static int child_event_waiter(void *arg)
{
    (void)arg;
    return mproc_event_wait(g_event, test_ms(10000)) == 0 ? 0 : 1;
}

static int child_cond_waiter(void *arg)
{
    (void)arg;
    mproc_lock *l = mproc_condition_lock(g_cond);
    int rc = mproc_lock_acquire(l, MPROC_FOREVER);
    if (rc == MPROC_EOWNERDEAD)
        mproc_lock_consistent(l);
    else if (rc != 0)
        return 1;
    while (atomic_load(&g_done[1]) == 0) {
        rc = mproc_condition_wait(g_cond, test_ms(10000));
        if (rc == MPROC_EOWNERDEAD)
            mproc_lock_consistent(l);
        else if (rc != 0)
            return 2;
    }
    mproc_lock_release(l);
    return 0;
}

START_TEST(waiters_killed_at_random_points_wedge_no_one)
{
    g_done = shared_page();
    srand((unsigned)getpid() * 13u);
    for (int r = 0; r < ROUNDS / 2; r++) {
        atomic_store(&g_done[0], 0);
        atomic_store(&g_done[1], 0);
        ck_assert_int_eq(mproc_semaphore_create(&g_sem, NULL, 0, NULL), 0);
        ck_assert_int_eq(mproc_event_create(&g_event, NULL, NULL), 0);
        ck_assert_int_eq(mproc_condition_create(&g_cond, NULL, NULL, NULL), 0);
        pid_t p[6];
        for (int i = 0; i < 2; i++) {
            p[i] = spawn(child_sem_waiter, NULL);
            p[2 + i] = spawn(child_event_waiter, NULL);
            p[4 + i] = spawn(child_cond_waiter, NULL);
        }
        /* One of each pair dies at a random point of its wait: from
         * before it starts (just forked) to well after it fell asleep. */
        random_delay_us(60000);
        kill(p[0], SIGKILL);
        kill(p[2], SIGKILL);
        kill(p[4], SIGKILL);
        for (int i = 0; i < 6; i += 2)
            test_wait_status(p[i]);
        /* The victim may have taken a count before dying: give two. */
        ck_assert_int_eq(mproc_semaphore_release(g_sem, 2), 0);
        ck_assert_int_eq(mproc_event_set(g_event), 0);
        mproc_lock *l = mproc_condition_lock(g_cond);
        int rc = mproc_lock_acquire(l, test_ms(5000));
        if (rc == MPROC_EOWNERDEAD)
            ck_assert_int_eq(mproc_lock_consistent(l), 0);
        else
            ck_assert_int_eq(rc, 0);
        atomic_store(&g_done[1], 1);
        ck_assert_int_eq(mproc_condition_notify_all(g_cond), 0);
        ck_assert_int_eq(mproc_lock_release(l), 0);
        int64_t t0 = test_now_ms();
        for (int i = 1; i < 6; i += 2)
            ck_assert_int_eq(test_wait_status(p[i]), 0);
        /* Woken by the release, set and notify, not by their own 10 s
         * timeouts. */
        ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
        mproc_condition_close(g_cond);
        mproc_event_close(g_event);
        mproc_semaphore_close(g_sem);
    }
    munmap(g_done, 4096);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("sync_stress");
    TEST_ADD(s, lock_holders_killed_at_random_points);
    TEST_ADD(s, barrier_participants_killed_at_random_points);
    TEST_ADD(s, barrier_newcomers_killed_at_random_points_of_their_first_wait);
    TEST_ADD(s, waiters_killed_at_random_points_wedge_no_one);
    return s;
}
