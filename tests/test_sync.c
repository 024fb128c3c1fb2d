/* Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition and Barrier:
 * semantics across processes, bad input, and processes killed while holding
 * or waiting. Forked helpers only _exit. */
#include <poll.h>
#include <pthread.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "internal/eventtest.h"
#include "internal/lockcore.h"
#include "internal/region.h"
#include "mproc.h"
#include "testlib.h"

/* ------------------------------------------------------------ helpers */

#if defined(__SANITIZE_THREAD__)
#define MPROC_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MPROC_TEST_TSAN 1
#endif
#endif

/* A page shared with forked children, for counters and flags. */
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

/* Waits until *flag >= want or ms pass; true when reached. */
static int wait_flag(_Atomic int *flag, int want, int64_t ms)
{
    int64_t until = test_now_ms() + test_ms(ms);
    while (atomic_load(flag) < want) {
        if (test_now_ms() > until)
            return 0;
        usleep(1000);
    }
    return 1;
}

/* Forks a child whose pid is `want`, by writing want - 1 to
 * /proc/sys/kernel/ns_last_pid under an flock on it (root only), and runs
 * fn in it. Returns the child's pid, or -1 when that is not permitted or
 * other processes keep taking the pid first (the caller skips). */
static pid_t spawn_with_pid(pid_t want, int (*fn)(void *), void *arg)
{
    int fd = open("/proc/sys/kernel/ns_last_pid", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    pid_t got = -1;
    for (int i = 0; i < 50 && got < 0; i++) {
        if (flock(fd, LOCK_EX) != 0)
            break;
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d", (int)want - 1);
        if (pwrite(fd, buf, (size_t)n, 0) != n) {
            flock(fd, LOCK_UN);
            break;
        }
        pid_t p = fork();
        if (p == 0) {
            if (getpid() != want)
                _exit(99);
            _exit(fn(arg));
        }
        flock(fd, LOCK_UN);
        if (p < 0)
            break;
        if (p == want)
            got = p;
        else
            test_wait_status(p);
    }
    close(fd);
    return got;
}

/* Waits until process pid sleeps in a futex wait, or ms pass. */
static int wait_asleep(pid_t pid, int64_t ms)
{
    return test_wait_asleep(pid, "futex", ms);
}

static void kill_and_reap(pid_t p)
{
    kill(p, SIGKILL);
    ck_assert_int_eq(test_wait_status(p), 128 + SIGKILL);
}

/* A wake-up must be seen to wake: waiters that give up only after 10 s are
 * expected back within this (test_ms) of the release, set, notify or trip,
 * so that a wake that reached nobody fails the test instead of being
 * rescued by the waiter's own timeout. */
#define WOKEN_WITHIN_MS 2000

/* The exit status of pid (as test_wait_status) when it ends by the
 * monotonic instant until_ms; else -2, after killing and reaping it. */
static int status_by(pid_t p, int64_t until_ms)
{
    for (;;) {
        int st;
        pid_t r = waitpid(p, &st, WNOHANG);
        if (r == p)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0)
            return -1;
        if (test_now_ms() > until_ms) {
            kill(p, SIGKILL);
            test_wait_status(p);
            return -2;
        }
        usleep(1000);
    }
}

/* The instant by which a wake-up made now must have been seen. */
static int64_t woken_by(void)
{
    return test_now_ms() + test_ms(WOKEN_WITHIN_MS);
}

/* ------------------------------------------------------------------ Lock */

static mproc_lock *g_lock;
static _Atomic int *g_flag;
static long *g_counter;

START_TEST(lock_acquire_release_uncontended)
{
    mproc_lock *l;
    ck_assert_int_eq(mproc_lock_create(&l, NULL, NULL), 0);
    ck_assert_int_eq(mproc_lock_is_owned(l), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_lock_is_owned(l), 1);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    mproc_lock_close(l);
}
END_TEST

static int child_release(void *arg)
{
    (void)arg;
    return mproc_lock_release(g_lock) == MPROC_ENOTOWNER ? 0 : 1;
}

START_TEST(lock_release_unheld_is_enotowner)
{
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), 0);
    /* Another process cannot release it either, and nothing changes. */
    ck_assert_int_eq(test_wait_status(spawn(child_release, NULL)), 0);
    ck_assert_int_eq(mproc_lock_is_owned(g_lock), 1);
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), MPROC_ENOTOWNER);
    mproc_lock_close(g_lock);
}
END_TEST

START_TEST(lock_reacquire_by_holder_is_edeadlk)
{
    mproc_lock *l;
    ck_assert_int_eq(mproc_lock_create(&l, NULL, NULL), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, 100), MPROC_EDEADLK);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    mproc_lock_close(l);
}
END_TEST

START_TEST(lock_bad_input_is_einval)
{
    mproc_lock *l = (mproc_lock *)1;
    ck_assert_int_eq(mproc_lock_create(NULL, NULL, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_lock_create(&l, "noslash", NULL), MPROC_EINVAL);
    ck_assert_ptr_eq(l, (mproc_lock *)1);
    ck_assert_int_eq(mproc_lock_acquire(NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_lock_release(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_lock_consistent(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_lock_is_owned(NULL), MPROC_EINVAL);
    mproc_lock_close(NULL);
    ck_assert_int_eq(mproc_lock_create(&l, NULL, NULL), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, -5), MPROC_EINVAL);
    ck_assert_int_eq(mproc_lock_consistent(l), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    /* Not in the owner-died state: nothing to mark. */
    ck_assert_int_eq(mproc_lock_consistent(l), MPROC_EINVAL);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    mproc_lock_close(l);
}
END_TEST

static int child_hold(void *arg)
{
    int64_t hold_ms = (int64_t)(intptr_t)arg;
    int rc = mproc_lock_acquire(g_lock, MPROC_FOREVER);
    if (rc != 0 && rc != MPROC_EOWNERDEAD)
        return 1;
    atomic_fetch_add(g_flag, 1);
    if (hold_ms < 0)
        for (;;)
            pause();
    usleep((useconds_t)(hold_ms * 1000));
    return mproc_lock_release(g_lock) == 0 ? 0 : 2;
}

START_TEST(lock_times_out_while_another_process_holds_it)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t p = spawn(child_hold, (void *)(intptr_t)test_ms(1500));
    ck_assert(wait_flag(g_flag, 1, 5000));
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 100), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 95);
    /* Then the holder lets go and we get it. */
    ck_assert_int_eq(mproc_lock_acquire(g_lock, test_ms(10000)), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(test_wait_status(p), 0);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

#define INCS 20000

static int child_increment(void *arg)
{
    (void)arg;
    for (int i = 0; i < INCS; i++) {
        if (mproc_lock_acquire(g_lock, MPROC_FOREVER) != 0)
            return 1;
        long v = *(volatile long *)g_counter;
        *(volatile long *)g_counter = v + 1;
        if (mproc_lock_release(g_lock) != 0)
            return 2;
    }
    return 0;
}

START_TEST(lock_excludes_other_processes)
{
    g_counter = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t p[4];
    for (int i = 0; i < 4; i++)
        p[i] = spawn(child_increment, NULL);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(test_wait_status(p[i]), 0);
    ck_assert_int_eq(*g_counter, 4 * INCS);
    mproc_lock_close(g_lock);
    munmap(g_counter, 4096);
}
END_TEST

START_TEST(lock_reports_owner_death)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t p = spawn(child_hold, (void *)(intptr_t)-1);
    ck_assert(wait_flag(g_flag, 1, 5000));
    kill(p, SIGKILL);
    /* Not reaped yet: a zombie owner is a dead owner. */
    usleep(20000);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, test_ms(5000)),
                     MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_lock_is_owned(g_lock), 1);
    ck_assert_int_eq(mproc_lock_consistent(g_lock), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(test_wait_status(p), 128 + SIGKILL);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

static int child_kill_later(void *arg)
{
    pid_t victim = (pid_t)(intptr_t)arg;
    usleep((useconds_t)test_ms(200) * 1000);
    return kill(victim, SIGKILL) == 0 ? 0 : 1;
}

START_TEST(lock_owner_death_wakes_a_sleeping_waiter)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t holder = spawn(child_hold, (void *)(intptr_t)-1);
    ck_assert(wait_flag(g_flag, 1, 5000));
    pid_t killer = spawn(child_kill_later, (void *)(intptr_t)holder);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_lock_acquire(g_lock, MPROC_FOREVER),
                     MPROC_EOWNERDEAD);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    ck_assert_int_eq(mproc_lock_consistent(g_lock), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(test_wait_status(killer), 0);
    ck_assert_int_eq(test_wait_status(holder), 128 + SIGKILL);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

static int child_acquire_code(void *arg)
{
    (void)arg;
    int rc = mproc_lock_acquire(g_lock, test_ms(5000));
    if (rc == MPROC_ENOTRECOVERABLE)
        return 0;
    return 1;
}

START_TEST(lock_left_inconsistent_becomes_unrecoverable)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t p = spawn(child_hold, (void *)(intptr_t)-1);
    ck_assert(wait_flag(g_flag, 1, 5000));
    kill_and_reap(p);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), MPROC_EOWNERDEAD);
    /* Released without mproc_lock_consistent: never a silent success. */
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), MPROC_ENOTRECOVERABLE);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 100), MPROC_ENOTRECOVERABLE);
    ck_assert_int_eq(test_wait_status(spawn(child_acquire_code, NULL)), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), MPROC_ENOTOWNER);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

static int child_wait_forever_code(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_flag[1], 1);
    int rc = mproc_lock_acquire(g_lock, MPROC_FOREVER);
    return rc == MPROC_ENOTRECOVERABLE ? 0 : 1;
}

START_TEST(lock_unrecoverable_wakes_sleeping_waiters)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t p = spawn(child_hold, (void *)(intptr_t)-1);
    ck_assert(wait_flag(g_flag, 1, 5000));
    kill_and_reap(p);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), MPROC_EOWNERDEAD);
    pid_t w[2];
    for (int i = 0; i < 2; i++)
        w[i] = spawn(child_wait_forever_code, NULL);
    ck_assert(wait_flag(&g_flag[1], 2, 5000));
    for (int i = 0; i < 2; i++)
        ck_assert(wait_asleep(w[i], 5000));
    /* Released unrepaired: the sleepers learn it at once. */
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    int64_t until = woken_by();
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(status_by(w[i], until), 0);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

START_TEST(lock_owner_dead_twice_reports_twice)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, NULL), 0);
    pid_t p = spawn(child_hold, (void *)(intptr_t)-1);
    ck_assert(wait_flag(g_flag, 1, 5000));
    kill_and_reap(p);
    /* The second holder also dies before repairing: still owner-dead. */
    p = spawn(child_hold, (void *)(intptr_t)-1);
    ck_assert(wait_flag(g_flag, 2, 5000));
    kill_and_reap(p);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_lock_consistent(g_lock), 0);
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

static void *thread_hold_exit(void *arg)
{
    return (void *)(intptr_t)mproc_lock_acquire(arg, 0);
}

START_TEST(lock_held_by_exited_thread_reports_owner_death)
{
    mproc_lock *l;
    ck_assert_int_eq(mproc_lock_create(&l, NULL, NULL), 0);
    pthread_t t;
    void *res;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_hold_exit, l), 0);
    ck_assert_int_eq(pthread_join(t, &res), 0);
    ck_assert_int_eq((int)(intptr_t)res, 0);
    ck_assert_int_eq(mproc_lock_acquire(l, test_ms(2000)), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_lock_consistent(l), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    mproc_lock_close(l);
}
END_TEST

static int child_hold_and_exit(void *arg)
{
    (void)arg;
    return mproc_lock_acquire(g_lock, 0) == 0 ? 0 : 1;
}

/* In a process that got the dead owner's pid (so its tid): the lock is not
 * its own, and even a try finds the owner dead. */
static int child_reused_tid_acquires(void *arg)
{
    (void)arg;
    if (mproc_lock_is_owned(g_lock) != 0)
        return 1;
    if (mproc_lock_release(g_lock) != MPROC_ENOTOWNER)
        return 2;
    int rc = mproc_lock_acquire(g_lock, 0);
    if (rc != MPROC_EOWNERDEAD)
        return rc == 0 ? 3 : rc == MPROC_EDEADLK ? 4 : 5;
    if (mproc_lock_is_owned(g_lock) != 1 || mproc_lock_consistent(g_lock) != 0)
        return 6;
    if (mproc_lock_release(g_lock) != 0 || mproc_lock_is_owned(g_lock) != 0)
        return 7;
    return 0;
}

static void owner_death_with_reused_tid(bool recursive)
{
    mproc_lock_opts o = MPROC_LOCK_OPTS_INIT;
    o.recursive = recursive;
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, &o), 0);
    pid_t first = spawn(child_hold_and_exit, NULL);
    ck_assert_int_eq(test_wait_status(first), 0);
    /* Start times count clock ticks: let one pass. */
    usleep(30000);
    pid_t second = spawn_with_pid(first, child_reused_tid_acquires, NULL);
    if (second < 0) {
        test_skip("cannot choose the next pid (not root?)");
        mproc_lock_close(g_lock);
        return;
    }
    ck_assert_int_eq(test_wait_status(second), 0);
    mproc_lock_close(g_lock);
}

/* They move the machine-wide pid counter: CTest runs them alone. */
/* RUN_SERIAL lock_owner_death_is_found_by_a_thread_reusing_its_tid */
START_TEST(lock_owner_death_is_found_by_a_thread_reusing_its_tid)
{
    owner_death_with_reused_tid(false);
}
END_TEST

/* They move the machine-wide pid counter: CTest runs them alone. */
/* RUN_SERIAL rlock_owner_death_is_found_by_a_thread_reusing_its_tid */
START_TEST(rlock_owner_death_is_found_by_a_thread_reusing_its_tid)
{
    owner_death_with_reused_tid(true);
}
END_TEST

static int child_pause(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

/* A new owner stopped between its CAS and its store of owner_start (SIGSTOP,
 * a frozen cgroup) is alive: sleepers must not take the lock from it. */
START_TEST(lock_is_not_taken_from_an_owner_stalled_before_storing_its_start)
{
    mproc__lockword *lw = shared_page();
    mproc__lockword_init(lw, false);
    mproc__deadline d;
    mproc__deadline_init(&d, 0);
    ck_assert_int_eq(mproc__lockword_acquire(lw, &d), 0);
    ck_assert_int_eq(mproc__lockword_release(lw), 0);
    usleep(30000); /* a start time other than ours (clock ticks) */
    pid_t stalled = spawn(child_pause, NULL);
    /* What its CAS would leave: its tid, its start not stored yet. */
    uint32_t zero = 0;
    ck_assert(
        atomic_compare_exchange_strong(&lw->word, &zero, (uint32_t)stalled));
    mproc__deadline_init(&d, test_ms(400));
    ck_assert_int_eq(mproc__lockword_acquire(lw, &d), MPROC_ETIMEDOUT);
    mproc__deadline_init(&d, 0);
    ck_assert_int_eq(mproc__lockword_acquire(lw, &d), MPROC_ETIMEDOUT);
    kill_and_reap(stalled);
    /* Dead now: found by a try, start time known or not. */
    ck_assert_int_eq(mproc__lockword_acquire(lw, &d), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc__lockword_consistent(lw), 0);
    ck_assert_int_eq(mproc__lockword_release(lw), 0);
    munmap(lw, 4096);
}
END_TEST

/* A bystander (a ring's receiver, a queue's consumer owed an ABORT) takes
 * the lock from a holder whose thread id a live task reuses: the start
 * time tells them apart. It leaves alone a live holder that has not yet
 * stored its start time, and one whose start time matches. */
START_TEST(bystander_takes_a_lock_whose_holders_id_is_reused)
{
    mproc__lockword *lw = shared_page();
    mproc__lockword_init(lw, false);
    pid_t live = spawn(child_pause, NULL);
    uint64_t real = 0;
    ck_assert_int_eq(mproc__os_task_start(live, &real), 0);
    ck_assert_uint_ne(real, 0);
    atomic_store(&lw->word, (uint32_t)live | MPROC__LOCK_WAITERS);
    /* Its own start time, or none stored yet: alive, nothing taken. */
    atomic_store(&lw->owner_start, real);
    ck_assert_int_eq(mproc__lockword_take_if_gone(lw), 0);
    atomic_store(&lw->owner_start, 0);
    ck_assert_int_eq(mproc__lockword_take_if_gone(lw), 0);
    ck_assert_uint_eq(atomic_load(&lw->word),
                      (uint32_t)live | MPROC__LOCK_WAITERS);
    /* A taker that has not yet stored its start time (the word marked
     * PENDING) beside the dead one's: alive. */
    atomic_store(&lw->owner_start, real + 7);
    atomic_store(&lw->word,
                 (uint32_t)live | MPROC__LOCK_WAITERS | MPROC__LOCK_PENDING);
    ck_assert_int_eq(mproc__lockword_take_if_gone(lw), 0);
    ck_assert(!mproc__lockword_owner_dead(lw));
    atomic_store(&lw->word, (uint32_t)live | MPROC__LOCK_WAITERS);
    /* The holder that started at another time is dead; live reuses its
     * id. */
    atomic_store(&lw->owner_start, real + 7);
    ck_assert_int_eq(mproc__lockword_take_if_gone(lw), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc__lockword_owned(lw), 1);
    ck_assert_int_eq(mproc__lockword_consistent(lw), 0);
    ck_assert_int_eq(mproc__lockword_release(lw), 0);
    ck_assert_uint_eq(atomic_load(&lw->word), 0);
    kill_and_reap(live);
    munmap(lw, 4096);
}
END_TEST

/* A thread id no task has: pid_max itself (ids run below it). */
static pid_t unused_tid(void)
{
    FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
    ck_assert_ptr_nonnull(f);
    long max = 0;
    ck_assert_int_eq(fscanf(f, "%ld", &max), 1);
    fclose(f);
    ck_assert_int_gt(max, 0);
    ck_assert_int_le(max, (long)MPROC__LOCK_TIDMASK);
    return (pid_t)max;
}

static mproc__lockword *g_race;

/* Before the stop: the child's identity and the calls of a look at /proc
 * made once, so that the steps go to the lock's code. */
static int warm_up(void *arg)
{
    (void)arg;
    (void)mproc__os_self_start();
    (void)mproc__os_task_alive(unused_tid(), 0);
    (void)mproc__os_task_alive(getppid(), 1);
    return 0;
}

/* The other one taking the dead holder's lock: 1 when it took it (and
 * gave it back), 0 when it found it taken, 2 on anything else. */
static int child_takes_if_gone(void *arg)
{
    (void)arg;
    int rc = mproc__lockword_take_if_gone(g_race);
    if (rc == 0)
        return 0;
    if (rc != MPROC_EOWNERDEAD || mproc__lockword_consistent(g_race) != 0 ||
        mproc__lockword_release(g_race) != 0)
        return 2;
    return 1;
}

/* The parent takes the dead holder's lock while the child, stopped after n
 * instructions of its own take-over, has not finished; then the child
 * goes on. 1 when the parent's hold survived it (or the child took the
 * lock first), 0 when the child spoiled it, -1 when ptrace is refused;
 * *changed_at (when not NULL, n being LONG_MAX) gets the step at which the
 * child changed the word. */
static int take_over_race_at(long n, long *changed_at)
{
    mproc__lockword_init(g_race, false);
    atomic_store(&g_race->word, (uint32_t)unused_tid() | MPROC__LOCK_WAITERS);
    /* The dead holder started in the same clock tick as the parent. */
    atomic_store(&g_race->owner_start, mproc__os_self_start());
    uint32_t before = atomic_load(&g_race->word);
    int code = 0;
    pid_t pid = test_traced_start(warm_up, child_takes_if_gone, NULL, &code);
    if (pid < 0) {
        ck_assert_int_eq(code, 77);
        return -1;
    }
    /* Steps count from its look at the dead holder's /proc entry, which
     * its take-over follows. */
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d/stat", (int)unused_tid());
    int r = test_traced_until_open(pid, proc, &code);
    if (r == -2) {
        kill(pid, SIGKILL);
        test_wait_status(pid);
        return -1;
    }
    ck_assert_int_eq(r, 0);
    long steps = 0;
    bool ended = false;
    while (steps < n) {
        if (test_traced_step(pid, 1, &code) == 0) {
            ended = true;
            break;
        }
        steps++;
        if (changed_at != NULL && *changed_at < 0 &&
            atomic_load(&g_race->word) != before)
            *changed_at = steps;
    }
    int rc = mproc__lockword_take_if_gone(g_race);
    if (!ended)
        code = test_traced_finish(pid);
    if (rc == 0) {
        /* The child took it first and gave it back. */
        ck_assert_int_eq(code, 1);
        ck_assert_uint_eq(atomic_load(&g_race->word), 0);
        return 1;
    }
    ck_assert_int_eq(rc, MPROC_EOWNERDEAD);
    ck_assert_int_eq(code, 0);
    if (mproc__lockword_owned(g_race) != 1)
        return 0;
    ck_assert_int_eq(mproc__lockword_consistent(g_race), 0);
    ck_assert_int_eq(mproc__lockword_release(g_race), 0);
    ck_assert_uint_eq(atomic_load(&g_race->word), 0);
    return 1;
}

/* Two take a dead holder's lock over at once, and the dead one's start
 * time equals the winner's (start times count clock ticks of 10 ms, so a
 * process and a child it forks often share one): the loser, stopped at
 * any instruction of its take-over, never spoils the winner's hold (it
 * once cleared the winner's start time, taking it for the dead one's, so
 * that the winner could no longer release the lock and every waiter on it
 * waited for ever). */
START_TEST(lock_taken_over_at_once_by_two_stays_the_winners)
{
    g_race = shared_page();
    long changed = -1;
    int r = take_over_race_at(LONG_MAX, &changed);
    if (r < 0) {
        test_skip("ptrace or tracing system calls not permitted here");
        munmap(g_race, 4096);
        return;
    }
    ck_assert_int_eq(r, 1);
    ck_assert_int_gt(changed, 0);
    /* Every instruction around the child's compare-and-swap of the word,
     * from before it reads what it compares to after it has stored its
     * start time (under ThreadSanitizer, whose atomics are calls, 64 steps
     * back do not reach that far: the other builds cover it). */
    long from = changed > 64 ? changed - 64 : 0;
    int spoiled = 0, points = 0;
    for (long n = from; n <= changed + 16; n++, points++)
        spoiled += take_over_race_at(n, NULL) == 0;
    ck_assert_msg(spoiled == 0,
                  "the loser spoiled the winner's hold at %d of %d points",
                  spoiled, points);
    fprintf(stderr, "take-over race: stopped at %d points in steps %ld..%ld\n",
            points, from, changed + 16);
    munmap(g_race, 4096);
}
END_TEST

/* A bystander's look at a lock the parent holds: 0 when it left it
 * alone, 1 when it took it, 2 on anything else. */
static int child_looks(void *arg)
{
    (void)arg;
    int rc = mproc__lockword_take_if_gone(g_race);
    return rc == 0 ? 0 : rc == MPROC_EOWNERDEAD ? 1 : 2;
}

/* The parent holds the lock; the child looks at it, and after n of its
 * instructions the lock goes to another live task for one instruction of
 * the child and comes back to the parent. The child's exit code. */
static int lock_comes_back_at(long n, pid_t other, uint64_t other_start)
{
    pid_t self = mproc__os_self_tid();
    uint64_t start = mproc__os_self_start();
    mproc__lockword_init(g_race, false);
    atomic_store(&g_race->word, (uint32_t)self);
    atomic_store(&g_race->owner_start, start);
    int code = 0;
    pid_t pid = test_traced_start(warm_up, child_looks, NULL, &code);
    if (pid < 0) {
        ck_assert_int_eq(code, 77);
        return -1;
    }
    if (test_traced_step(pid, n, &code) < n)
        return code;
    /* Released and held by the other (as release and acquire write it)... */
    atomic_store(&g_race->owner_start, 0);
    atomic_store(&g_race->word, (uint32_t)other);
    atomic_store(&g_race->owner_start, other_start);
    if (test_traced_step(pid, 1, &code) < 1)
        return code;
    /* ...and back. */
    atomic_store(&g_race->owner_start, 0);
    atomic_store(&g_race->word, (uint32_t)self);
    atomic_store(&g_race->owner_start, start);
    return test_traced_finish(pid);
}

/* A bystander that reads the word, then the start time while the lock is
 * another's for a moment, then the word again (the same: the holder took
 * it back) must not take the live holder's lock for a dead one's: it
 * reads the start time again. The lock changes hands for one instruction
 * at each of the first instructions of its look. */
START_TEST(bystander_leaves_a_lock_that_went_away_and_came_back)
{
    g_race = shared_page();
    usleep(30000); /* a start time other than ours (clock ticks) */
    pid_t other = spawn(child_pause, NULL);
    uint64_t other_start = 0;
    ck_assert_int_eq(mproc__os_task_start(other, &other_start), 0);
    ck_assert_uint_ne(other_start, mproc__os_self_start());
    int took = 0, points = 0;
    for (long n = 0; n <= 80; n++, points++) {
        int code = lock_comes_back_at(n, other, other_start);
        if (code < 0) {
            test_skip("ptrace not permitted here");
            break;
        }
        ck_assert_int_ne(code, 2);
        took += code == 1 ||
                atomic_load(&g_race->word) != (uint32_t)mproc__os_self_tid();
    }
    ck_assert_msg(took == 0,
                  "a live holder's lock was taken at %d of %d points", took,
                  points);
    kill_and_reap(other);
    munmap(g_race, 4096);
}
END_TEST

static mproc__lockword *g_lw;

static int child_hold_lockword(void *arg)
{
    (void)arg;
    mproc__deadline d;
    mproc__deadline_init(&d, 0);
    if (mproc__lockword_acquire(g_lw, &d) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    for (;;)
        pause();
}

/* A try that fails leaves the word as it found it: the holder's release
 * then makes no FUTEX_WAKE for a sleeper that never was. */
START_TEST(lock_failed_try_sets_no_waiters_bit)
{
    g_flag = shared_page();
    g_lw = shared_page();
    mproc__lockword_init(g_lw, false);
    pid_t p = spawn(child_hold_lockword, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    mproc__deadline d;
    mproc__deadline_init(&d, 0);
    ck_assert_int_eq(mproc__lockword_acquire(g_lw, &d), MPROC_ETIMEDOUT);
    ck_assert_uint_eq(atomic_load(&g_lw->word), (uint32_t)p);
    kill_and_reap(p);
    munmap(g_lw, 4096);
    munmap(g_flag, 4096);
}
END_TEST

START_TEST(rlock_counts_depth)
{
    mproc_lock *l;
    mproc_lock_opts o = MPROC_LOCK_OPTS_INIT;
    o.recursive = true;
    ck_assert_int_eq(mproc_lock_create(&l, NULL, &o), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(mproc_lock_is_owned(l), 1);
        ck_assert_int_eq(mproc_lock_release(l), 0);
    }
    ck_assert_int_eq(mproc_lock_is_owned(l), 0);
    ck_assert_int_eq(mproc_lock_release(l), MPROC_ENOTOWNER);
    mproc_lock_close(l);
}
END_TEST

START_TEST(named_rlock_open_reads_its_kind_from_the_object)
{
    char name[64];
    test_shm_name(name, sizeof name, "rlock");
    mproc_lock *l, *l2;
    mproc_lock_opts o = MPROC_LOCK_OPTS_INIT;
    o.recursive = true;
    ck_assert_int_eq(mproc_lock_create(&l, name, &o), 0);
    /* The opener says nothing about the kind, and gets an RLock. */
    ck_assert_int_eq(mproc_lock_open(&l2, name, NULL), 0);
    ck_assert_int_eq(mproc_lock_is_recursive(l2), 1);
    ck_assert_int_eq(mproc_lock_acquire(l2, 0), 0);
    ck_assert_int_eq(mproc_lock_acquire(l2, 0), 0); /* a second level */
    ck_assert_int_eq(mproc_lock_release(l2), 0);
    ck_assert_int_eq(mproc_lock_release(l2), 0);
    ck_assert_int_eq(mproc_lock_is_recursive(NULL), MPROC_EINVAL);
    mproc_lock_close(l2);
    mproc_lock_close(l);
    ck_assert_int_eq(mproc_lock_unlink(name), 0);
}
END_TEST

static int child_hold_twice(void *arg)
{
    (void)arg;
    if (mproc_lock_acquire(g_lock, 0) != 0 ||
        mproc_lock_acquire(g_lock, 0) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    for (;;)
        pause();
}

START_TEST(rlock_reports_owner_death)
{
    g_flag = shared_page();
    mproc_lock_opts o = MPROC_LOCK_OPTS_INIT;
    o.recursive = true;
    ck_assert_int_eq(mproc_lock_create(&g_lock, NULL, &o), 0);
    pid_t p = spawn(child_hold_twice, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    kill_and_reap(p);
    ck_assert_int_eq(mproc_lock_acquire(g_lock, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_lock_consistent(g_lock), 0);
    /* The new owner starts at depth one. */
    ck_assert_int_eq(mproc_lock_release(g_lock), 0);
    ck_assert_int_eq(mproc_lock_is_owned(g_lock), 0);
    mproc_lock_close(g_lock);
    munmap(g_flag, 4096);
}
END_TEST

static const char *g_name;

static int child_open_and_hold(void *arg)
{
    (void)arg;
    mproc_lock *l;
    if (mproc_lock_open(&l, g_name, NULL) != 0)
        return 1;
    if (mproc_lock_acquire(l, 0) != 0)
        return 2;
    atomic_fetch_add(g_flag, 1);
    for (;;)
        pause();
}

START_TEST(named_lock_is_shared_by_name)
{
    char name[64];
    g_name = test_shm_name(name, sizeof name, "lock");
    g_flag = shared_page();
    mproc_lock *l, *l2;
    ck_assert_int_eq(mproc_lock_create(&l, name, NULL), 0);
    ck_assert_int_eq(mproc_lock_create(&l2, name, NULL), MPROC_EEXIST);
    pid_t p = spawn(child_open_and_hold, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    ck_assert_int_eq(mproc_lock_acquire(l, 0), MPROC_ETIMEDOUT);
    kill_and_reap(p);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_lock_consistent(l), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    /* Open reads the kind from the object; other kinds are told apart. */
    ck_assert_int_eq(mproc_lock_open(&l2, name, NULL), 0);
    ck_assert_int_eq(mproc_lock_is_recursive(l2), 0);
    ck_assert_int_eq(mproc_lock_is_recursive(l), 0);
    mproc_lock_close(l2);
    mproc_semaphore *s;
    ck_assert_int_eq(mproc_semaphore_open(&s, name, NULL), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_semaphore_unlink(name), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_lock_unlink(name), 0);
    ck_assert_int_eq(mproc_lock_unlink(name), MPROC_ENOENT);
    ck_assert_int_eq(mproc_lock_open(&l2, name, NULL), MPROC_ENOENT);
    mproc_lock_close(l);
    munmap(g_flag, 4096);
}
END_TEST

/* ------------------------------------------------------------- Semaphore */

static mproc_semaphore *g_sem;

START_TEST(semaphore_counts_and_times_out)
{
    mproc_semaphore *s;
    uint32_t v;
    ck_assert_int_eq(mproc_semaphore_create(&s, NULL, 2, NULL), 0);
    ck_assert_int_eq(mproc_semaphore_acquire(s, 0), 0);
    ck_assert_int_eq(mproc_semaphore_acquire(s, 0), 0);
    ck_assert_int_eq(mproc_semaphore_acquire(s, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_semaphore_acquire(s, 50), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 45);
    ck_assert_int_eq(mproc_semaphore_release(s, 3), 0);
    ck_assert_int_eq(mproc_semaphore_value(s, &v), 0);
    ck_assert_uint_eq(v, 3);
    ck_assert_int_eq(mproc_semaphore_release(s, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_semaphore_release(NULL, 1), MPROC_EINVAL);
    ck_assert_int_eq(mproc_semaphore_acquire(NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_semaphore_release(s, INT32_MAX), MPROC_EOVERFLOW);
    mproc_semaphore_close(s);
    ck_assert_int_eq(mproc_semaphore_create(&s, NULL, 0x80000000u, NULL),
                     MPROC_EINVAL);
}
END_TEST

START_TEST(bounded_semaphore_refuses_over_release)
{
    mproc_semaphore *s;
    mproc_semaphore_opts o = MPROC_SEMAPHORE_OPTS_INIT;
    o.bounded = true;
    uint32_t v;
    ck_assert_int_eq(mproc_semaphore_create(&s, NULL, 2, &o), 0);
    ck_assert_int_eq(mproc_semaphore_release(s, 1), MPROC_EOVERRELEASE);
    ck_assert_int_eq(mproc_semaphore_acquire(s, 0), 0);
    ck_assert_int_eq(mproc_semaphore_release(s, 2), MPROC_EOVERRELEASE);
    ck_assert_int_eq(mproc_semaphore_value(s, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(mproc_semaphore_release(s, 1), 0);
    mproc_semaphore_close(s);
}
END_TEST

static int child_sem_acquire(void *arg)
{
    (void)arg;
    atomic_fetch_add(g_flag, 1);
    return mproc_semaphore_acquire(g_sem, test_ms(10000)) == 0 ? 0 : 1;
}

START_TEST(semaphore_release_wakes_waiting_processes)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_semaphore_create(&g_sem, NULL, 0, NULL), 0);
    pid_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = spawn(child_sem_acquire, NULL);
    ck_assert(wait_flag(g_flag, 3, 5000));
    /* All three asleep, so that the release has sleepers to wake. */
    for (int i = 0; i < 3; i++)
        ck_assert(wait_asleep(p[i], 5000));
    ck_assert_int_eq(mproc_semaphore_release(g_sem, 3), 0);
    int64_t until = woken_by();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(status_by(p[i], until), 0);
    uint32_t v;
    ck_assert_int_eq(mproc_semaphore_value(g_sem, &v), 0);
    ck_assert_uint_eq(v, 0);
    mproc_semaphore_close(g_sem);
    munmap(g_flag, 4096);
}
END_TEST

static int child_sem_hold(void *arg)
{
    (void)arg;
    if (mproc_semaphore_acquire(g_sem, 0) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    for (;;)
        pause();
}

START_TEST(semaphore_count_held_by_killed_process_is_not_returned)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_semaphore_create(&g_sem, NULL, 2, NULL), 0);
    pid_t p = spawn(child_sem_hold, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    kill_and_reap(p);
    /* As documented: the dead process's count stays taken. */
    uint32_t v;
    ck_assert_int_eq(mproc_semaphore_value(g_sem, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(mproc_semaphore_acquire(g_sem, 0), 0);
    ck_assert_int_eq(mproc_semaphore_acquire(g_sem, 20), MPROC_ETIMEDOUT);
    /* Anyone may give it back. */
    ck_assert_int_eq(mproc_semaphore_release(g_sem, 2), 0);
    mproc_semaphore_close(g_sem);
    munmap(g_flag, 4096);
}
END_TEST

START_TEST(semaphore_killed_waiter_does_not_wedge_others)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_semaphore_create(&g_sem, NULL, 0, NULL), 0);
    pid_t victim = spawn(child_sem_acquire, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    ck_assert(wait_asleep(victim, 5000)); /* killed while asleep */
    kill_and_reap(victim);
    pid_t p = spawn(child_sem_acquire, NULL);
    ck_assert(wait_flag(g_flag, 2, 5000));
    ck_assert(wait_asleep(p, 5000));
    ck_assert_int_eq(mproc_semaphore_release(g_sem, 1), 0);
    ck_assert_int_eq(status_by(p, woken_by()), 0);
    mproc_semaphore_close(g_sem);
    munmap(g_flag, 4096);
}
END_TEST

/* Creates the named BoundedSemaphore(1) `name` as *s and opens it as *s2. */
static void named_bounded_one(const char *name, mproc_semaphore **s,
                              mproc_semaphore **s2)
{
    mproc_semaphore_opts o = MPROC_SEMAPHORE_OPTS_INIT;
    o.bounded = true;
    ck_assert_int_eq(mproc_semaphore_create(s, name, 1, &o), 0);
    ck_assert_int_eq(mproc_semaphore_open(s2, name, NULL), 0);
}

START_TEST(named_semaphore_kinds_and_names)
{
    char name[64];
    test_shm_name(name, sizeof name, "sem");
    mproc_semaphore *s, *s2;
    named_bounded_one(name, &s, &s2);
    ck_assert_int_eq(mproc_semaphore_is_bounded(s2), 1);
    ck_assert_int_eq(mproc_semaphore_is_bounded(s), 1);
    ck_assert_int_eq(mproc_semaphore_is_bounded(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_semaphore_acquire(s2, 0), 0);
    ck_assert_int_eq(mproc_semaphore_acquire(s, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_semaphore_release(s, 1), 0);
    ck_assert_int_eq(mproc_semaphore_release(s2, 1), MPROC_EOVERRELEASE);
    mproc_semaphore_close(s2);
    mproc_semaphore_close(s);
    ck_assert_int_eq(mproc_semaphore_unlink(name), 0);
    ck_assert_int_eq(mproc_semaphore_unlink(name), MPROC_ENOENT);
}
END_TEST

/* A BoundedSemaphore's limit is the one create/open saw: a process that
 * rewrites the shared layout (docs/shared-memory.md: count, nwaiters, max,
 * bounded) cannot raise it for this handle. */
START_TEST(bounded_semaphore_keeps_its_limit_when_the_shared_one_is_rewritten)
{
    char name[64];
    test_shm_name(name, sizeof name, "bsem");
    mproc_semaphore *s, *s2;
    named_bounded_one(name, &s, &s2);
    mproc__region r;
    ck_assert_int_eq(mproc__region_open(&r, name, MPROC__KIND_ANY, NULL), 0);
    uint32_t *shared = r.payload;
    shared[2] = 100; /* max */
    for (int k = 0; k < 2; k++) {
        mproc_semaphore *h = k == 0 ? s : s2;
        ck_assert_int_eq(mproc_semaphore_release(h, 1), MPROC_EOVERRELEASE);
        ck_assert_int_eq(mproc_semaphore_release(h, 5), MPROC_EOVERRELEASE);
    }
    shared[3] = 0; /* bounded */
    ck_assert_int_eq(mproc_semaphore_release(s, 1), MPROC_EOVERRELEASE);
    ck_assert_int_eq(mproc_semaphore_release(s2, 1), MPROC_EOVERRELEASE);
    uint32_t v;
    ck_assert_int_eq(mproc_semaphore_value(s, &v), 0);
    ck_assert_uint_eq(v, 1);
    ck_assert_int_eq(mproc_semaphore_acquire(s, 0), 0);
    ck_assert_int_eq(mproc_semaphore_release(s2, 1), 0);
    ck_assert_int_eq(mproc_semaphore_release(s2, 1), MPROC_EOVERRELEASE);
    mproc__region_close(&r);
    mproc_semaphore_close(s2);
    mproc_semaphore_close(s);
    ck_assert_int_eq(mproc_semaphore_unlink(name), 0);
}
END_TEST

/* ----------------------------------------------------------------- Event */

static mproc_event *g_event;

START_TEST(event_set_clear_and_wait)
{
    mproc_event *e;
    ck_assert_int_eq(mproc_event_create(&e, NULL, NULL), 0);
    ck_assert_int_eq(mproc_event_is_set(e), 0);
    ck_assert_int_eq(mproc_event_wait(e, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_event_wait(e, 50), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 45);
    ck_assert_int_eq(mproc_event_set(e), 0);
    ck_assert_int_eq(mproc_event_set(e), 0);
    ck_assert_int_eq(mproc_event_is_set(e), 1);
    ck_assert_int_eq(mproc_event_wait(e, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_event_clear(e), 0);
    ck_assert_int_eq(mproc_event_is_set(e), 0);
    ck_assert_int_eq(mproc_event_wait(e, -7), MPROC_EINVAL);
    ck_assert_int_eq(mproc_event_set(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_event_clear(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_event_is_set(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_event_wait(NULL, 0), MPROC_EINVAL);
    mproc_event_close(e);
    mproc_event_close(NULL);
}
END_TEST

static int child_event_wait(void *arg)
{
    (void)arg;
    atomic_fetch_add(g_flag, 1);
    return mproc_event_wait(g_event, test_ms(10000)) == 0 ? 0 : 1;
}

START_TEST(event_set_wakes_every_waiting_process)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_event_create(&g_event, NULL, NULL), 0);
    pid_t p[4];
    for (int i = 0; i < 4; i++)
        p[i] = spawn(child_event_wait, NULL);
    ck_assert(wait_flag(g_flag, 4, 5000));
    for (int i = 0; i < 4; i++)
        ck_assert(wait_asleep(p[i], 5000));
    /* One of them is killed while waiting; the rest still wake. */
    kill_and_reap(p[0]);
    ck_assert_int_eq(mproc_event_set(g_event), 0);
    int64_t until = woken_by();
    for (int i = 1; i < 4; i++)
        ck_assert_int_eq(status_by(p[i], until), 0);
    mproc_event_close(g_event);
    munmap(g_flag, 4096);
}
END_TEST

START_TEST(named_event_is_opened_by_name)
{
    char name[64];
    test_shm_name(name, sizeof name, "event");
    mproc_event *a, *b;
    ck_assert_int_eq(mproc_event_create(&a, name, NULL), 0);
    ck_assert_int_eq(mproc_event_open(&b, name, NULL), 0);
    ck_assert_int_eq(mproc_event_set(a), 0);
    ck_assert_int_eq(mproc_event_wait(b, 0), 0);
    mproc_event_close(b);
    mproc_event_close(a);
    ck_assert_int_eq(mproc_event_unlink(name), 0);
    ck_assert_int_eq(mproc_event_open(&b, name, NULL), MPROC_ENOENT);
}
END_TEST

static int readable(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, ms) == 1 && (p.revents & POLLIN);
}

START_TEST(event_fd_is_readable_while_set)
{
    mproc_event *e;
    int fd, fd2;
    ck_assert_int_eq(mproc_event_create(&e, NULL, NULL), 0);
    ck_assert_int_eq(mproc_event_fd(NULL, &fd), MPROC_EINVAL);
    ck_assert_int_eq(mproc_event_fd(e, &fd), 0);
    ck_assert_int_eq(mproc_event_fd(e, &fd2), 0);
    ck_assert_int_eq(fd, fd2);
    ck_assert(!readable(fd, 50));
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(mproc_event_set(e), 0);
        ck_assert(readable(fd, (int)test_ms(2000)));
        ck_assert(readable(fd, 0)); /* stays readable */
        ck_assert_int_eq(mproc_event_clear(e), 0);
        int64_t until = test_now_ms() + test_ms(2000);
        while (readable(fd, 0) && test_now_ms() < until)
            usleep(1000);
        ck_assert(!readable(fd, 0));
    }
    mproc_event_close(e);
}
END_TEST

static int child_event_fd(void *arg)
{
    (void)arg;
    int fd;
    if (mproc_event_fd(g_event, &fd) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    int ok = readable(fd, (int)test_ms(5000));
    mproc_event_close(g_event);
    return ok ? 0 : 2;
}

START_TEST(event_fd_works_in_a_forked_child)
{
    g_flag = shared_page();
    int fd;
    ck_assert_int_eq(mproc_event_create(&g_event, NULL, NULL), 0);
#if !defined(MPROC_TEST_TSAN)
    /* The child inherits a handle whose fd has its helper thread in the
     * parent only. (ThreadSanitizer cannot start a thread in a child forked
     * from a threaded parent, so there the parent makes its fd later.) */
    ck_assert_int_eq(mproc_event_fd(g_event, &fd), 0);
#endif
    pid_t p = spawn(child_event_fd, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    ck_assert_int_eq(mproc_event_set(g_event), 0);
    ck_assert_int_eq(test_wait_status(p), 0);
#if defined(MPROC_TEST_TSAN)
    ck_assert_int_eq(mproc_event_fd(g_event, &fd), 0);
#endif
    ck_assert(readable(fd, (int)test_ms(2000)));
    mproc_event_close(g_event);
    munmap(g_flag, 4096);
}
END_TEST

static int child_event_fd_after_fork(void *arg)
{
    (void)arg;
    alarm(10); /* a deadlock ends as SIGALRM, not a hung test */
    int fd;
    if (mproc_event_fd(g_event, &fd) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    int ok = readable(fd, (int)test_ms(5000));
    mproc_event_close(g_event);
    return ok ? 0 : 2;
}

/* Forked while another thread was inside mproc_event_fd (holding the
 * handle's mutex): the child's mproc_event_fd does not deadlock. */
START_TEST(event_fd_in_a_child_forked_while_its_mutex_was_held)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_event_create(&g_event, NULL, NULL), 0);
    mproc__event_test_hold_mutex(g_event, true);
    pid_t p = spawn(child_event_fd_after_fork, NULL);
    mproc__event_test_hold_mutex(g_event, false);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(g_flag) < 1 && test_now_ms() < until) {
        int st;
        if (waitpid(p, &st, WNOHANG) == p) { /* it died: report how */
            ck_assert_int_eq(
                WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), 0);
        }
        usleep(1000);
    }
    ck_assert_int_eq(atomic_load(g_flag), 1);
    ck_assert_int_eq(mproc_event_set(g_event), 0);
    ck_assert_int_eq(test_wait_status(p), 0);
    mproc_event_close(g_event);
    munmap(g_flag, 4096);
}
END_TEST

/* The value of a "Name:\tvalue" line of /proc/self/task/tid/status. */
static unsigned long long task_status(pid_t tid, const char *key, int base)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "r");
    unsigned long long v = ~0ull;
    size_t k = strlen(key);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, k) == 0 && line[k] == ':')
            v = strtoull(line + k + 1, NULL, base);
    if (f != NULL)
        fclose(f);
    return v;
}

/* A thread of this process not in not[0..n), or 0 (sanitizers run threads
 * of their own, so "the other thread" is found by difference). */
static pid_t new_thread(const pid_t * not, int n)
{
    DIR *d = opendir("/proc/self/task");
    pid_t found = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        pid_t t = (pid_t)atoi(e->d_name);
        bool old = t <= 0;
        for (int i = 0; i < n && !old; i++)
            old = not [i] == t;
        if (!old)
            found = t;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static void *thread_noop(void *arg)
{
    return arg;
}

/* This process's threads into t[0..max); their number. */
static int threads(pid_t *t, int max)
{
    int n = 0;
    pid_t x;
    while (n < max && (x = new_thread(t, n)) != 0)
        t[n++] = x;
    return n;
}

/* The fd helper thread blocks every signal (a process-directed signal must
 * reach the program's own threads) and sleeps until the flag changes: no
 * periodic wake-ups. */
START_TEST(event_fd_helper_blocks_signals_and_sleeps_until_needed)
{
    mproc_event *e;
    int fd;
    ck_assert_int_eq(mproc_event_create(&e, NULL, NULL), 0);
    /* A first thread makes a sanitizer start its own: before the snapshot. */
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_noop, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    pid_t tids[16];
    int ntids = threads(tids, 16);
    sigset_t none, old;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &old);
    ck_assert_int_eq(mproc_event_fd(e, &fd), 0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pid_t helper = new_thread(tids, ntids);
    ck_assert_int_gt(helper, 0);
    unsigned long long blk = task_status(helper, "SigBlk", 16);
    int sigs[] = {SIGINT,  SIGTERM, SIGHUP,  SIGUSR1,
                  SIGUSR2, SIGCHLD, SIGALRM, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        ck_assert_msg(blk & (1ull << (sigs[i] - 1)), "signal %d reaches it",
                      sigs[i]);
    usleep(20000); /* let it settle asleep */
    unsigned long long before =
        task_status(helper, "voluntary_ctxt_switches", 10);
    usleep(300000);
    unsigned long long after =
        task_status(helper, "voluntary_ctxt_switches", 10);
    ck_assert_uint_le(after - before, 1);
    /* And it still does its job, and close stops it promptly. */
    ck_assert_int_eq(mproc_event_set(e), 0);
    ck_assert(readable(fd, (int)test_ms(2000)));
    int64_t t0 = test_now_ms();
    mproc_event_close(e);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(1000));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d", (int)helper);
    ck_assert_int_ne(access(path, F_OK), 0); /* the helper has gone */
}
END_TEST

static int child_event_wait_long(void *arg)
{
    (void)arg;
    return mproc_event_wait(g_event, test_ms(20000)) == 0 ? 0 : 1;
}

/* A waiter killed while asleep leaves no mark that makes every later set
 * pay a system call: the first set clears it (layout, docs/shared-memory.md:
 * the flag word, bit 31 waiters, then 4 reserved bytes). */
START_TEST(event_waiter_killed_asleep_leaves_no_lasting_waiter_mark)
{
    char name[64];
    test_shm_name(name, sizeof name, "event");
    ck_assert_int_eq(mproc_event_create(&g_event, name, NULL), 0);
    mproc__region r;
    ck_assert_int_eq(mproc__region_open(&r, name, MPROC__KIND_ANY, NULL), 0);
    _Atomic uint32_t *word = r.payload;
    pid_t p = spawn(child_event_wait_long, NULL);
    ck_assert(wait_asleep(p, 5000));
    kill_and_reap(p);
    ck_assert_int_eq(mproc_event_set(g_event), 0);
    ck_assert_uint_eq(atomic_load(&word[0]), 1);
    ck_assert_uint_eq(atomic_load(&word[1]), 0);
    ck_assert_int_eq(mproc_event_clear(g_event), 0);
    ck_assert_uint_eq(atomic_load(&word[0]), 0);
    ck_assert_int_eq(mproc_event_wait(g_event, 20), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_event_set(g_event), 0);
    ck_assert_uint_eq(atomic_load(&word[0]), 1);
    ck_assert_int_eq(mproc_event_wait(g_event, 0), 0);
    mproc__region_close(&r);
    mproc_event_close(g_event);
    ck_assert_int_eq(mproc_event_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------- Condition */

static mproc_condition *g_cond;

START_TEST(condition_used_without_its_lock_is_enotowner)
{
    mproc_condition *c;
    ck_assert_int_eq(mproc_condition_create(&c, NULL, NULL, NULL), 0);
    ck_assert_int_eq(mproc_condition_wait(c, 10), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_condition_notify(c, 1), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_condition_notify_all(c), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_condition_notify(c, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_condition_wait(NULL, 0), MPROC_EINVAL);
    ck_assert_ptr_null(mproc_condition_lock(NULL));
    mproc_condition_close(c);
}
END_TEST

START_TEST(condition_wait_times_out_holding_the_lock)
{
    mproc_condition *c;
    mproc_lock *l;
    mproc_lock_opts o = MPROC_LOCK_OPTS_INIT;
    o.recursive = true;
    ck_assert_int_eq(mproc_lock_create(&l, NULL, &o), 0);
    ck_assert_int_eq(mproc_condition_create(&c, NULL, l, NULL), 0);
    ck_assert_ptr_eq(mproc_condition_lock(c), l);
    /* Two levels of an RLock come back after the wait. */
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_condition_wait(c, 50), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 45);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(mproc_lock_is_owned(l), 1);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(mproc_lock_is_owned(l), 0);
    mproc_condition_close(c);
    mproc_lock_close(l);
}
END_TEST

static int child_cond_wait_for(void *arg)
{
    (void)arg;
    mproc_lock *l = mproc_condition_lock(g_cond);
    if (mproc_lock_acquire(l, MPROC_FOREVER) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    int rc = mproc_condition_wait(g_cond, test_ms(10000));
    atomic_fetch_add(&g_flag[1], 1);
    mproc_lock_release(l);
    return rc == 0 ? 0 : 2;
}

START_TEST(condition_notify_wakes_n_and_notify_all_the_rest)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_condition_create(&g_cond, NULL, NULL, NULL), 0);
    mproc_lock *l = mproc_condition_lock(g_cond);
    pid_t p[3];
    for (int i = 0; i < 3; i++)
        p[i] = spawn(child_cond_wait_for, NULL);
    ck_assert(wait_flag(g_flag, 3, 5000));
    /* Each waiter counted itself with the lock held, so once we hold it
     * they all sit in wait; asleep, so that the notify must wake them. */
    ck_assert_int_eq(mproc_lock_acquire(l, MPROC_FOREVER), 0);
    for (int i = 0; i < 3; i++)
        ck_assert(wait_asleep(p[i], 5000));
    ck_assert_int_eq(mproc_condition_notify(g_cond, 1), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert(wait_flag(&g_flag[1], 1, WOKEN_WITHIN_MS));
    usleep(100000);
    ck_assert_int_eq(atomic_load(&g_flag[1]), 1);
    ck_assert_int_eq(mproc_lock_acquire(l, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_condition_notify_all(g_cond), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    int64_t until = woken_by();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(status_by(p[i], until), 0);
    mproc_condition_close(g_cond);
    munmap(g_flag, 4096);
}
END_TEST

static int ready_pred(void *arg)
{
    return atomic_load((_Atomic int *)arg) >= 5;
}

static int child_producer(void *arg)
{
    (void)arg;
    mproc_lock *l = mproc_condition_lock(g_cond);
    for (int i = 0; i < 5; i++) {
        usleep(5000);
        if (mproc_lock_acquire(l, MPROC_FOREVER) != 0)
            return 1;
        atomic_fetch_add(&g_flag[2], 1);
        mproc_condition_notify(g_cond, 1);
        mproc_lock_release(l);
    }
    return 0;
}

START_TEST(condition_wait_for_returns_when_predicate_holds)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_condition_create(&g_cond, NULL, NULL, NULL), 0);
    mproc_lock *l = mproc_condition_lock(g_cond);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    ck_assert_int_eq(
        mproc_condition_wait_for(g_cond, ready_pred, &g_flag[2], 20),
        MPROC_ETIMEDOUT);
    pid_t p = spawn(child_producer, NULL);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_condition_wait_for(g_cond, ready_pred, &g_flag[2],
                                              test_ms(10000)),
                     0);
    /* Five notifies 5 ms apart, each waking us: nowhere near the timeout. */
    ck_assert_int_lt(test_now_ms() - t0, test_ms(WOKEN_WITHIN_MS));
    ck_assert_int_eq(mproc_lock_is_owned(l), 1);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_eq(mproc_condition_wait_for(g_cond, NULL, NULL, 0),
                     MPROC_EINVAL);
    mproc_condition_close(g_cond);
    munmap(g_flag, 4096);
}
END_TEST

/* A signal handler installed without SA_RESTART, run in the middle of a
 * condition wait: the wait sleeps on (nobody notified), so 0 still means a
 * notify. A helper thread sends the signal once the waiter is asleep and,
 * when asked, notifies a while later. */
static _Atomic int g_sigs;

static void count_signal(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_sigs, 1);
}

struct interrupter {
    pthread_t waiter;
    pid_t waiter_tid;
    mproc_condition *cond;
    bool notify;
    _Atomic int notified;
};

static void *interrupt_waiter(void *arg)
{
    struct interrupter *it = arg;
    if (wait_asleep(it->waiter_tid, 5000))
        pthread_kill(it->waiter, SIGUSR1);
    if (!it->notify)
        return NULL;
    usleep((useconds_t)test_ms(100) * 1000);
    mproc_lock *l = mproc_condition_lock(it->cond);
    if (mproc_lock_acquire(l, MPROC_FOREVER) == 0) {
        atomic_store(&it->notified, 1);
        mproc_condition_notify(it->cond, 1);
        mproc_lock_release(l);
    }
    return NULL;
}

/* Waits on a fresh condition for timeout_ms while a helper thread signals
 * (and, with notify, then notifies); returns the wait's code, with the
 * number of signals handled and whether the notify came before the wait
 * returned. */
static int wait_interrupted(int64_t timeout_ms, bool notify, int *sigs,
                            int *notified)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = count_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&g_sigs, 0);
    struct interrupter it = {pthread_self(), (pid_t)syscall(SYS_gettid), NULL,
                             notify, 0};
    ck_assert_int_eq(mproc_condition_create(&it.cond, NULL, NULL, NULL), 0);
    mproc_lock *l = mproc_condition_lock(it.cond);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, interrupt_waiter, &it), 0);
    int rc = mproc_condition_wait(it.cond, timeout_ms);
    *sigs = atomic_load(&g_sigs);
    *notified = atomic_load(&it.notified);
    ck_assert_int_eq(mproc_lock_is_owned(l), 1);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    mproc_condition_close(it.cond);
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
    return rc;
}

START_TEST(condition_wait_sleeps_through_a_signal_until_its_timeout)
{
    int sigs, notified;
    int64_t timeout = test_ms(1000);
    int64_t t0 = test_now_ms();
    int rc = wait_interrupted(timeout, false, &sigs, &notified);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_eq(sigs, 1); /* the handler ran during the wait */
    ck_assert_int_eq(rc, MPROC_ETIMEDOUT);
    ck_assert_int_ge(took, timeout - 5);
}
END_TEST

START_TEST(condition_wait_interrupted_by_a_signal_returns_0_only_once_notified)
{
    int sigs, notified;
    int rc = wait_interrupted(test_ms(10000), true, &sigs, &notified);
    ck_assert_int_eq(sigs, 1);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(notified, 1);
}
END_TEST

START_TEST(condition_killed_waiter_does_not_wedge_notify)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_condition_create(&g_cond, NULL, NULL, NULL), 0);
    mproc_lock *l = mproc_condition_lock(g_cond);
    pid_t victim = spawn(child_cond_wait_for, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    ck_assert_int_eq(mproc_lock_acquire(l, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert(wait_asleep(victim, 5000)); /* killed while asleep */
    kill_and_reap(victim);
    pid_t p = spawn(child_cond_wait_for, NULL);
    ck_assert(wait_flag(g_flag, 2, 5000));
    ck_assert_int_eq(mproc_lock_acquire(l, MPROC_FOREVER), 0);
    ck_assert(wait_asleep(p, 5000));
    /* notify(1) reaches the live waiter, not the dead one. */
    ck_assert_int_eq(mproc_condition_notify(g_cond, 1), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(status_by(p, woken_by()), 0);
    mproc_condition_close(g_cond);
    munmap(g_flag, 4096);
}
END_TEST

START_TEST(named_condition_with_own_lock)
{
    char name[64];
    test_shm_name(name, sizeof name, "cond");
    mproc_condition *a, *b;
    ck_assert_int_eq(mproc_condition_create(&a, name, NULL, NULL), 0);
    ck_assert_int_eq(mproc_condition_open(&b, name, NULL, NULL), 0);
    /* Both handles see one lock. */
    ck_assert_int_eq(mproc_lock_acquire(mproc_condition_lock(a), 0), 0);
    ck_assert_int_eq(mproc_lock_is_owned(mproc_condition_lock(b)), 1);
    ck_assert_int_eq(mproc_condition_notify(b, 1), 0);
    ck_assert_int_eq(mproc_lock_release(mproc_condition_lock(b)), 0);
    mproc_condition_close(b);
    mproc_condition_close(a);
    ck_assert_int_eq(mproc_condition_unlink(name), 0);
}
END_TEST

/* Opening with a lock when the creator gave none, or without one when the
 * creator gave one, is refused: the two would use different locks. */
START_TEST(named_condition_open_refuses_a_lock_choice_unlike_the_creators)
{
    char name[64], lname[64];
    test_shm_name(name, sizeof name, "cond");
    test_shm_name(lname, sizeof lname, "condlock");
    mproc_lock *l;
    mproc_condition *a, *b = (mproc_condition *)1;
    ck_assert_int_eq(mproc_lock_create(&l, lname, NULL), 0);
    ck_assert_int_eq(mproc_condition_create(&a, name, l, NULL), 0);
    ck_assert_int_eq(mproc_condition_open(&b, name, NULL, NULL), MPROC_EINVAL);
    ck_assert_ptr_eq(b, (mproc_condition *)1);
    ck_assert_int_eq(mproc_condition_open(&b, name, l, NULL), 0);
    mproc_condition_close(b);
    mproc_condition_close(a);
    ck_assert_int_eq(mproc_condition_unlink(name), 0);
    ck_assert_int_eq(mproc_condition_create(&a, name, NULL, NULL), 0);
    b = (mproc_condition *)1;
    ck_assert_int_eq(mproc_condition_open(&b, name, l, NULL), MPROC_EINVAL);
    ck_assert_ptr_eq(b, (mproc_condition *)1);
    mproc_condition_close(a);
    ck_assert_int_eq(mproc_condition_unlink(name), 0);
    mproc_lock_close(l);
    ck_assert_int_eq(mproc_lock_unlink(lname), 0);
}
END_TEST

/* --------------------------------------------------------------- Barrier */

static mproc_barrier *g_barrier;

static int count_action(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    return 0;
}

static int child_barrier_rounds(void *arg)
{
    int rounds = (int)(intptr_t)arg;
    for (int r = 0; r < rounds; r++) {
        uint32_t idx;
        if (mproc_barrier_wait(g_barrier, test_ms(10000), &idx) != 0)
            return 1;
        atomic_fetch_or(&g_flag[8 + r], 1 << idx);
    }
    return 0;
}

START_TEST(barrier_releases_parties_with_distinct_indices)
{
    g_flag = shared_page();
    mproc_barrier_opts o = MPROC_BARRIER_OPTS_INIT;
    o.action = count_action;
    o.action_arg = &g_flag[0];
    ck_assert_int_eq(mproc_barrier_create(&g_barrier, NULL, 3, &o), 0);
    ck_assert_uint_eq(mproc_barrier_parties(g_barrier), 3);
    int rounds = 20;
    pid_t p[2];
    for (int i = 0; i < 2; i++)
        p[i] = spawn(child_barrier_rounds, (void *)(intptr_t)rounds);
    ck_assert_int_eq(child_barrier_rounds((void *)(intptr_t)rounds), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(test_wait_status(p[i]), 0);
    for (int r = 0; r < rounds; r++)
        ck_assert_int_eq(atomic_load(&g_flag[8 + r]), 7);
    ck_assert_int_eq(atomic_load(&g_flag[0]), rounds);
    ck_assert_int_eq(mproc_barrier_broken(g_barrier), 0);
    mproc_barrier_close(g_barrier);
    munmap(g_flag, 4096);
}
END_TEST

/* Waits until n parties wait at g_barrier and each of p[0..n) sleeps. */
static void barrier_sleepers(const pid_t *p, uint32_t n)
{
    int64_t until = test_now_ms() + test_ms(5000);
    while (mproc_barrier_n_waiting(g_barrier) < n && test_now_ms() < until)
        usleep(1000);
    ck_assert_uint_eq(mproc_barrier_n_waiting(g_barrier), n);
    for (uint32_t i = 0; i < n; i++)
        ck_assert(wait_asleep(p[i], 5000));
}

START_TEST(barrier_last_arrival_wakes_sleeping_waiters)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_barrier_create(&g_barrier, NULL, 3, NULL), 0);
    pid_t p[2];
    for (int i = 0; i < 2; i++)
        p[i] = spawn(child_barrier_rounds, (void *)(intptr_t)1);
    barrier_sleepers(p, 2);
    uint32_t idx = 9;
    ck_assert_int_eq(mproc_barrier_wait(g_barrier, test_ms(10000), &idx), 0);
    ck_assert_uint_eq(idx, 2);
    int64_t until = woken_by();
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(status_by(p[i], until), 0);
    ck_assert_int_eq(atomic_load(&g_flag[8]), 3); /* indices 0 and 1 */
    mproc_barrier_close(g_barrier);
    munmap(g_flag, 4096);
}
END_TEST

START_TEST(barrier_timeout_breaks_it_for_everyone)
{
    mproc_barrier *b;
    ck_assert_int_eq(mproc_barrier_create(&b, NULL, 2, NULL), 0);
    ck_assert_int_eq(mproc_barrier_wait(b, 30, NULL), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_barrier_broken(b), 1);
    ck_assert_uint_eq(mproc_barrier_n_waiting(b), 0); /* broken: none */
    ck_assert_int_eq(mproc_barrier_wait(b, 0, NULL), MPROC_EBROKEN);
    ck_assert_int_eq(mproc_barrier_reset(b), 0);
    ck_assert_int_eq(mproc_barrier_broken(b), 0);
    ck_assert_uint_eq(mproc_barrier_n_waiting(b), 0);
    mproc_barrier_close(b);
}
END_TEST

static int child_barrier_expect_broken(void *arg)
{
    (void)arg;
    atomic_fetch_add(g_flag, 1);
    return mproc_barrier_wait(g_barrier, test_ms(10000), NULL) == MPROC_EBROKEN
               ? 0
               : 1;
}

START_TEST(barrier_abort_and_reset_release_waiters_broken)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_barrier_create(&g_barrier, NULL, 3, NULL), 0);
    pid_t p = spawn(child_barrier_expect_broken, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    barrier_sleepers(&p, 1);
    ck_assert_int_eq(mproc_barrier_abort(g_barrier), 0);
    ck_assert_int_eq(status_by(p, woken_by()), 0);
    ck_assert_int_eq(mproc_barrier_wait(g_barrier, 0, NULL), MPROC_EBROKEN);
    ck_assert_int_eq(mproc_barrier_reset(g_barrier), 0);
    /* reset while someone waits: they get EBROKEN too. */
    p = spawn(child_barrier_expect_broken, NULL);
    ck_assert(wait_flag(g_flag, 2, 5000));
    barrier_sleepers(&p, 1);
    ck_assert_int_eq(mproc_barrier_reset(g_barrier), 0);
    ck_assert_int_eq(status_by(p, woken_by()), 0);
    ck_assert_int_eq(mproc_barrier_broken(g_barrier), 0);
    mproc_barrier_close(g_barrier);
    munmap(g_flag, 4096);
}
END_TEST

static int failing_action(void *arg)
{
    (void)arg;
    return -1;
}

START_TEST(barrier_failing_action_breaks_it)
{
    mproc_barrier *b;
    mproc_barrier_opts o = MPROC_BARRIER_OPTS_INIT;
    o.action = failing_action;
    ck_assert_int_eq(mproc_barrier_create(&b, NULL, 1, &o), 0);
    ck_assert_int_eq(mproc_barrier_wait(b, 0, NULL), MPROC_EBROKEN);
    ck_assert_int_eq(mproc_barrier_broken(b), 1);
    mproc_barrier_close(b);
}
END_TEST

START_TEST(barrier_bad_input_is_einval)
{
    mproc_barrier *b = (mproc_barrier *)1;
    ck_assert_int_eq(mproc_barrier_create(&b, NULL, 0, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_barrier_create(&b, NULL, 100000, NULL),
                     MPROC_EINVAL);
    ck_assert_ptr_eq(b, (mproc_barrier *)1);
    ck_assert_int_eq(mproc_barrier_wait(NULL, 0, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_barrier_abort(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_barrier_reset(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_barrier_broken(NULL), MPROC_EINVAL);
    ck_assert_uint_eq(mproc_barrier_parties(NULL), 0);
    ck_assert_int_eq(mproc_barrier_create(&b, NULL, 2, NULL), 0);
    ck_assert_int_eq(mproc_barrier_wait(b, -3, NULL), MPROC_EINVAL);
    ck_assert_uint_eq(mproc_barrier_n_waiting(b), 0);
    mproc_barrier_close(b);
}
END_TEST

static int child_barrier_wait_forever(void *arg)
{
    (void)arg;
    atomic_fetch_add(g_flag, 1);
    int rc = mproc_barrier_wait(g_barrier, MPROC_FOREVER, NULL);
    return rc == MPROC_EBROKEN ? 0 : 1;
}

START_TEST(barrier_participant_death_breaks_it_promptly)
{
    g_flag = shared_page();
    ck_assert_int_eq(mproc_barrier_create(&g_barrier, NULL, 4, NULL), 0);
    pid_t survivor = spawn(child_barrier_wait_forever, NULL);
    pid_t victim = spawn(child_barrier_wait_forever, NULL);
    ck_assert(wait_flag(g_flag, 2, 5000));
    int64_t until = test_now_ms() + test_ms(5000);
    while (mproc_barrier_n_waiting(g_barrier) < 2 && test_now_ms() < until)
        usleep(1000);
    pid_t killer = spawn(child_kill_later, (void *)(intptr_t)victim);
    int64_t t0 = test_now_ms();
    /* We wait without a timeout: only the death can release us. */
    ck_assert_int_eq(mproc_barrier_wait(g_barrier, MPROC_FOREVER, NULL),
                     MPROC_EBROKEN);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    ck_assert_int_eq(test_wait_status(survivor), 0);
    ck_assert_int_eq(test_wait_status(killer), 0);
    ck_assert_int_eq(test_wait_status(victim), 128 + SIGKILL);
    mproc_barrier_close(g_barrier);
    munmap(g_flag, 4096);
}
END_TEST

/* The barrier's shared layout (docs/shared-memory.md): count at 12, its
 * internal lock word at 32. */
#define BARRIER_COUNT_OFF 12
#define BARRIER_LOCK_OFF 32

static mproc__region g_bregion;

static int child_barrier_wait_broken_code(void *arg)
{
    (void)arg;
    int rc = mproc_barrier_wait(g_barrier, test_ms(6000), NULL);
    return rc == MPROC_EBROKEN ? 0 : rc == MPROC_ETIMEDOUT ? 1 : 2;
}

/* What a party killed inside mproc_barrier_wait just after taking the
 * internal lock leaves: the lock held by a dead thread, no slot. */
static int child_take_barrier_lock(void *arg)
{
    (void)arg;
    mproc__lockword *lw =
        (mproc__lockword *)((char *)g_bregion.payload + BARRIER_LOCK_OFF);
    mproc__deadline d = mproc__deadline_forever();
    if (mproc__lockword_acquire(lw, &d) != 0)
        return 1;
    atomic_fetch_add(g_flag, 1);
    for (;;)
        pause();
    return 0;
}

START_TEST(barrier_party_killed_holding_its_internal_lock_breaks_it)
{
    char name[64];
    test_shm_name(name, sizeof name, "barrier");
    g_flag = shared_page();
    ck_assert_int_eq(mproc_barrier_create(&g_barrier, name, 3, NULL), 0);
    ck_assert_int_eq(
        mproc__region_open(&g_bregion, name, MPROC__KIND_ANY, NULL), 0);
    pid_t waiter = spawn(child_barrier_wait_broken_code, NULL);
    int64_t until = test_now_ms() + test_ms(5000);
    while (mproc_barrier_n_waiting(g_barrier) < 1 && test_now_ms() < until)
        usleep(1000);
    ck_assert_uint_eq(mproc_barrier_n_waiting(g_barrier), 1);
    pid_t victim = spawn(child_take_barrier_lock, NULL);
    ck_assert(wait_flag(g_flag, 1, 5000));
    int64_t t0 = test_now_ms();
    kill_and_reap(victim);
    /* Within a few slices, not at the waiter's deadline. */
    ck_assert_int_eq(test_wait_status(waiter), 0);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    ck_assert_int_eq(mproc_barrier_broken(g_barrier), 1);
    mproc__region_close(&g_bregion);
    mproc_barrier_close(g_barrier);
    ck_assert_int_eq(mproc_barrier_unlink(name), 0);
    munmap(g_flag, 4096);
}
END_TEST

/* A corrupted (or malicious) named barrier file never makes a wait index
 * memory out of bounds: it breaks the barrier. */
START_TEST(barrier_with_corrupted_count_is_broken_not_a_crash)
{
    char name[64];
    test_shm_name(name, sizeof name, "barrier");
    mproc_barrier *b;
    mproc__region r;
    ck_assert_int_eq(mproc_barrier_create(&b, name, 2, NULL), 0);
    ck_assert_int_eq(mproc__region_open(&r, name, MPROC__KIND_ANY, NULL), 0);
    _Atomic uint32_t *count =
        (_Atomic uint32_t *)((char *)r.payload + BARRIER_COUNT_OFF);
    atomic_store(count, 0x7fffffff);
    ck_assert_uint_le(mproc_barrier_n_waiting(b), 2);
    ck_assert_int_eq(mproc_barrier_wait(b, 0, NULL), MPROC_EBROKEN);
    ck_assert_int_eq(mproc_barrier_broken(b), 1);
    /* parties rewritten after open: the handle keeps its own. */
    ck_assert_int_eq(mproc_barrier_reset(b), 0);
    uint32_t *parties = (uint32_t *)((char *)r.payload + 8);
    *parties = 1024;
    ck_assert_uint_eq(mproc_barrier_parties(b), 2);
    ck_assert_int_eq(mproc_barrier_wait(b, 0, NULL), MPROC_ETIMEDOUT);
    mproc__region_close(&r);
    mproc_barrier_close(b);
    ck_assert_int_eq(mproc_barrier_unlink(name), 0);
}
END_TEST

static int64_t g_action_ms;

static int sleepy_action(void *arg)
{
    (void)arg;
    usleep((useconds_t)(g_action_ms * 1000));
    return 0;
}

static int child_barrier_short_wait(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg;
    int64_t t0 = test_now_ms();
    int rc = mproc_barrier_wait(g_barrier, ms, NULL);
    int64_t took = test_now_ms() - t0;
    if (rc != MPROC_ETIMEDOUT)
        return rc == 0 ? 1 : 2;
    return took < ms + test_ms(400) ? 0 : 3;
}

/* A slow action runs outside the internal lock: a waiter whose timeout
 * passes meanwhile returns MPROC_ETIMEDOUT on time (and breaks it). */
START_TEST(barrier_waiter_times_out_on_time_during_a_slow_action)
{
    mproc_barrier_opts o = MPROC_BARRIER_OPTS_INIT;
    o.action = sleepy_action;
    int64_t wait_ms = test_ms(300);
    g_action_ms = 4 * wait_ms;
    ck_assert_int_eq(mproc_barrier_create(&g_barrier, NULL, 2, &o), 0);
    pid_t waiter = spawn(child_barrier_short_wait, (void *)(intptr_t)wait_ms);
    int64_t until = test_now_ms() + test_ms(5000);
    while (mproc_barrier_n_waiting(g_barrier) < 1 && test_now_ms() < until)
        usleep(1000);
    /* The last arrival runs the action; the waiter's timeout breaks it. */
    ck_assert_int_eq(mproc_barrier_wait(g_barrier, test_ms(10000), NULL),
                     MPROC_EBROKEN);
    ck_assert_int_eq(test_wait_status(waiter), 0);
    mproc_barrier_close(g_barrier);
}
END_TEST

START_TEST(named_barrier_is_opened_by_name)
{
    char name[64];
    test_shm_name(name, sizeof name, "barrier");
    mproc_barrier *a, *b;
    ck_assert_int_eq(mproc_barrier_create(&a, name, 1, NULL), 0);
    ck_assert_int_eq(mproc_barrier_open(&b, name, NULL), 0);
    ck_assert_uint_eq(mproc_barrier_parties(b), 1);
    uint32_t idx = 9;
    ck_assert_int_eq(mproc_barrier_wait(b, 0, &idx), 0);
    ck_assert_uint_eq(idx, 0);
    mproc_barrier_close(b);
    mproc_barrier_close(a);
    ck_assert_int_eq(mproc_lock_unlink(name), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_barrier_unlink(name), 0);
    ck_assert_int_eq(mproc_barrier_unlink(name), MPROC_ENOENT);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("sync");
    TEST_ADD(s, lock_acquire_release_uncontended);
    TEST_ADD(s, lock_release_unheld_is_enotowner);
    TEST_ADD(s, lock_reacquire_by_holder_is_edeadlk);
    TEST_ADD(s, lock_bad_input_is_einval);
    TEST_ADD(s, lock_times_out_while_another_process_holds_it);
    TEST_ADD(s, lock_excludes_other_processes);
    TEST_ADD(s, lock_reports_owner_death);
    TEST_ADD(s, lock_owner_death_wakes_a_sleeping_waiter);
    TEST_ADD(s, lock_left_inconsistent_becomes_unrecoverable);
    TEST_ADD(s, lock_unrecoverable_wakes_sleeping_waiters);
    TEST_ADD(s, lock_owner_dead_twice_reports_twice);
    TEST_ADD(s, lock_held_by_exited_thread_reports_owner_death);
    TEST_ADD(s, lock_owner_death_is_found_by_a_thread_reusing_its_tid);
    TEST_ADD(s, rlock_owner_death_is_found_by_a_thread_reusing_its_tid);
    TEST_ADD(s,
             lock_is_not_taken_from_an_owner_stalled_before_storing_its_start);
    TEST_ADD(s, bystander_takes_a_lock_whose_holders_id_is_reused);
    TEST_ADD(s, lock_taken_over_at_once_by_two_stays_the_winners);
    TEST_ADD(s, bystander_leaves_a_lock_that_went_away_and_came_back);
    TEST_ADD(s, lock_failed_try_sets_no_waiters_bit);
    TEST_ADD(s, rlock_counts_depth);
    TEST_ADD(s, rlock_reports_owner_death);
    TEST_ADD(s, named_lock_is_shared_by_name);
    TEST_ADD(s, named_rlock_open_reads_its_kind_from_the_object);
    TEST_ADD(s, semaphore_counts_and_times_out);
    TEST_ADD(s, bounded_semaphore_refuses_over_release);
    TEST_ADD(s, semaphore_release_wakes_waiting_processes);
    TEST_ADD(s, semaphore_count_held_by_killed_process_is_not_returned);
    TEST_ADD(s, semaphore_killed_waiter_does_not_wedge_others);
    TEST_ADD(s, named_semaphore_kinds_and_names);
    TEST_ADD(
        s, bounded_semaphore_keeps_its_limit_when_the_shared_one_is_rewritten);
    TEST_ADD(s, event_set_clear_and_wait);
    TEST_ADD(s, event_set_wakes_every_waiting_process);
    TEST_ADD(s, named_event_is_opened_by_name);
    TEST_ADD(s, event_fd_is_readable_while_set);
    TEST_ADD(s, event_fd_works_in_a_forked_child);
    TEST_ADD(s, event_fd_in_a_child_forked_while_its_mutex_was_held);
    TEST_ADD(s, event_fd_helper_blocks_signals_and_sleeps_until_needed);
    TEST_ADD(s, event_waiter_killed_asleep_leaves_no_lasting_waiter_mark);
    TEST_ADD(s, condition_used_without_its_lock_is_enotowner);
    TEST_ADD(s, condition_wait_times_out_holding_the_lock);
    TEST_ADD(s, condition_notify_wakes_n_and_notify_all_the_rest);
    TEST_ADD(s, condition_wait_for_returns_when_predicate_holds);
    TEST_ADD(s, condition_killed_waiter_does_not_wedge_notify);
    TEST_ADD(s, condition_wait_sleeps_through_a_signal_until_its_timeout);
    TEST_ADD(
        s, condition_wait_interrupted_by_a_signal_returns_0_only_once_notified);
    TEST_ADD(s, named_condition_with_own_lock);
    TEST_ADD(s, named_condition_open_refuses_a_lock_choice_unlike_the_creators);
    TEST_ADD(s, barrier_releases_parties_with_distinct_indices);
    TEST_ADD(s, barrier_last_arrival_wakes_sleeping_waiters);
    TEST_ADD(s, barrier_timeout_breaks_it_for_everyone);
    TEST_ADD(s, barrier_abort_and_reset_release_waiters_broken);
    TEST_ADD(s, barrier_failing_action_breaks_it);
    TEST_ADD(s, barrier_bad_input_is_einval);
    TEST_ADD(s, barrier_participant_death_breaks_it_promptly);
    TEST_ADD(s, barrier_party_killed_holding_its_internal_lock_breaks_it);
    TEST_ADD(s, barrier_with_corrupted_count_is_broken_not_a_crash);
    TEST_ADD(s, barrier_waiter_times_out_on_time_during_a_slow_action);
    TEST_ADD(s, named_barrier_is_opened_by_name);
    return s;
}
