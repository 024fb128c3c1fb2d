/* Queue, JoinableQueue and SimpleQueue: every fact of mproc/queue.h, in one
 * process and across forked ones (order, sizes, bounds, timeouts, shutdown,
 * batches, zero copy, tasks, the fd, names), bad input, a queue file a peer
 * scribbled on, and processes killed at chosen points. Forked helpers only
 * _exit; the parent checks. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* Shared memory for counters and flags, inherited by forked children. */
static void *shared_mem(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

/* Runs fn in a forked child. A child that hangs (a sanitizer's runtime
 * deadlocked by a fork from a threaded parent) ends as SIGALRM, not as a
 * hung case. */
static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        alarm(90);
        _exit(fn(arg));
    }
    return p;
}

static void kill_and_reap(pid_t p)
{
    kill(p, SIGKILL);
    ck_assert_int_eq(test_wait_status(p), 128 + SIGKILL);
}

/* A child's exit code for a return code, so that the parent can say which
 * one it got. */
static int code_of(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MPROC_ETIMEDOUT:
        return 1;
    case MPROC_ECLOSED:
        return 2;
    case MPROC_EPROTO:
        return 3;
    case MPROC_EMSGSIZE:
        return 4;
    case MPROC_EINVAL:
        return 5;
    case MPROC_ESTATE:
        return 6;
    case MPROC_EOWNERDEAD:
        return 7;
    case MPROC_EAGAIN:
        return 8;
    default:
        return 9;
    }
}

static mproc_queue *new_queue(size_t capacity, size_t maxsize, bool joinable)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = capacity;
    o.maxsize = maxsize;
    o.joinable = joinable;
    mproc_queue *q = NULL;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    ck_assert_ptr_nonnull(q);
    return q;
}

/* A message of len bytes with pattern seed (a fresh buffer: free it). */
static unsigned char *msg_new(size_t len, unsigned seed)
{
    unsigned char *b = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(b);
    test_pattern(b, len, seed);
    return b;
}

static void put_pattern(mproc_queue *q, size_t len, unsigned seed)
{
    unsigned char *b = msg_new(len, seed);
    ck_assert_int_eq(mproc_queue_put(q, b, len, 0), 0);
    free(b);
}

/* Gets one message (timeout ms) and checks its size and pattern. */
static void get_pattern(mproc_queue *q, size_t len, unsigned seed, int64_t ms)
{
    unsigned char *b = malloc(len + 16);
    ck_assert_ptr_nonnull(b);
    size_t got = 0;
    int rc = mproc_queue_get(q, b, len + 16, &got, ms);
    ck_assert_msg(rc == 0, "get of %zu bytes: %s", len, mproc_errname(rc));
    ck_assert_uint_eq(got, len);
    ck_assert_msg(test_pattern_ok(b, len, seed), "message %u of %zu bytes torn",
                  seed, len);
    free(b);
}

static size_t qsize(mproc_queue *q)
{
    size_t n = 0;
    ck_assert_int_eq(mproc_queue_qsize(q, &n), 0);
    return n;
}

/* Puts one message of len bytes with pattern seed, from a child. */
typedef struct put_job {
    mproc_queue *q;
    size_t len;
    unsigned seed;
    int64_t timeout_ms;
    _Atomic int *flag; /* set to 1 just before the put, if not NULL */
} put_job;

static int child_put(void *p)
{
    put_job *j = p;
    unsigned char *b = malloc(j->len > 0 ? j->len : 1);
    if (b == NULL)
        return 20;
    test_pattern(b, j->len, j->seed);
    if (j->flag != NULL)
        atomic_store(j->flag, 1);
    int rc = mproc_queue_put(j->q, b, j->len, j->timeout_ms);
    free(b);
    return code_of(rc);
}

/* Gets one message (any size) from a child: 0 when it has len bytes of
 * pattern seed. */
typedef struct get_job {
    mproc_queue *q;
    size_t len;
    unsigned seed;
    int64_t timeout_ms;
} get_job;

static int child_get(void *p)
{
    get_job *j = p;
    void *m = NULL;
    size_t len = 0;
    int rc = mproc_queue_get_alloc(j->q, &m, &len, SIZE_MAX, j->timeout_ms);
    if (rc != 0)
        return code_of(rc);
    int ok = len == j->len && test_pattern_ok(m, len, j->seed);
    free(m);
    return ok ? 0 : 30;
}

/* Waits until the queue holds n messages, for up to ms. */
static int wait_qsize(mproc_queue *q, size_t n, int64_t ms)
{
    int64_t until = test_now_ms() + test_ms(ms);
    while (qsize(q) != n) {
        if (test_now_ms() > until)
            return 0;
        usleep(1000);
    }
    return 1;
}

/* ------------------------------------------------------- order, sizes */

START_TEST(queue_max_inplace_is_half_the_capacity_minus_a_header)
{
    mproc_queue *q = new_queue(4096, 0, false);
    ck_assert_uint_eq(mproc_queue_capacity(q), 4096);
    ck_assert_uint_eq(mproc_queue_max_inplace(q), 4096 / 2 - 8);
    ck_assert_uint_eq(mproc_queue_maxsize(q), 0);
    ck_assert_int_eq(mproc_queue_is_joinable(q), 0);
    ck_assert_ptr_null(mproc_queue_name(q));
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_capacity_is_rounded_up_to_a_power_of_two_within_bounds)
{
    static const size_t asked[] = {0,    1,    4095,     4096,
                                   4097, 6000, 1u << 20, (1u << 20) + 1};
    static const size_t got[] = {1u << 20, 4096, 4096,     4096,
                                 8192,     8192, 1u << 20, 1u << 21};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        mproc_queue *q = new_queue(asked[i], 0, false);
        ck_assert_msg(mproc_queue_capacity(q) == got[i],
                      "capacity %zu became %zu", asked[i],
                      mproc_queue_capacity(q));
        mproc_queue_close(q);
    }
    /* The largest is allowed (its memory is touched only as used). */
    mproc_queue *q = new_queue(MPROC_QUEUE_CAPACITY_MAX, 0, false);
    ck_assert_uint_eq(mproc_queue_capacity(q), MPROC_QUEUE_CAPACITY_MAX);
    put_pattern(q, 100, 1);
    get_pattern(q, 100, 1, 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_keeps_order_and_sizes_of_whole_messages)
{
    mproc_queue *q = new_queue(4096, 0, false);
    size_t max = mproc_queue_max_inplace(q);
    const size_t sizes[] = {0, 1, 7, 9, 13, 255, 1000};
    size_t n = sizeof sizes / sizeof sizes[0];
    /* Several rounds, so that records wrap around the end of the ring. */
    for (unsigned round = 0; round < 20; round++) {
        /* The largest alone: it takes half the ring. */
        put_pattern(q, max, round * 100 + 99);
        ck_assert_uint_eq(qsize(q), 1);
        get_pattern(q, max, round * 100 + 99, 0);
        for (size_t i = 0; i < n; i++)
            put_pattern(q, sizes[i], round * 100 + (unsigned)i);
        ck_assert_uint_eq(qsize(q), n);
        for (size_t i = 0; i < n; i++)
            get_pattern(q, sizes[i], round * 100 + (unsigned)i, 0);
        ck_assert_int_eq(mproc_queue_empty(q), 1);
    }
    /* A 0-byte message may come from a NULL buffer and go into one. */
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), 0);
    size_t len = 99;
    ck_assert_int_eq(mproc_queue_get(q, NULL, 0, &len, 0), 0);
    ck_assert_uint_eq(len, 0);
    mproc_queue_close(q);
}
END_TEST

/* Messages from max_inplace+1 to several times the capacity, streamed from
 * a child that puts them all, in order; the parent gets and checks them. */
typedef struct stream_job {
    mproc_queue *q;
    const size_t *sizes;
    size_t n;
} stream_job;

static int child_puts_sizes(void *p)
{
    stream_job *j = p;
    for (size_t i = 0; i < j->n; i++) {
        unsigned char *b = malloc(j->sizes[i] > 0 ? j->sizes[i] : 1);
        if (b == NULL)
            return 20;
        test_pattern(b, j->sizes[i], (unsigned)i + 1);
        int rc = mproc_queue_put(j->q, b, j->sizes[i], test_ms(10000));
        free(b);
        if (rc != 0)
            return code_of(rc);
    }
    return 0;
}

START_TEST(queue_streams_messages_larger_than_its_memory_in_order)
{
    mproc_queue *q = new_queue(4096, 0, false);
    size_t max = mproc_queue_max_inplace(q);
    const size_t sizes[] = {max,          max + 1,      3, max + 7,   4096,
                            4097,         3 * 4096 + 5, 0, 10 * 4096, 1000,
                            64 * 1024 + 3};
    size_t n = sizeof sizes / sizeof sizes[0];
    stream_job j = {q, sizes, n};
    pid_t p = spawn(child_puts_sizes, &j);
    for (size_t i = 0; i < n; i++) {
        /* get_alloc and get in turn. */
        if (i % 2 == 0) {
            void *m = NULL;
            size_t len = 0;
            ck_assert_int_eq(
                mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, test_ms(10000)),
                0);
            ck_assert_uint_eq(len, sizes[i]);
            ck_assert(test_pattern_ok(m, len, (unsigned)i + 1));
            ck_assert_int_eq(((unsigned char *)m)[len], 0);
            free(m);
        } else {
            get_pattern(q, sizes[i], (unsigned)i + 1, test_ms(10000));
        }
    }
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_message_stays_after_its_producer_exits)
{
    mproc_queue *q = new_queue(0, 0, false);
    put_job j = {q, 5000, 7, 0, NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert_int_eq(test_wait_status(p), 0);
    get_pattern(q, 5000, 7, 0);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------------------- bounds */

START_TEST(queue_stat_says_depth_waiters_holders_and_tasks)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.joinable = true;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    mproc_queue_stats st;
    ck_assert_int_eq(mproc_queue_stat(NULL, &st), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_stat(q, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_stat(q, &st), 0);
    ck_assert_uint_eq(st.depth, 0);
    ck_assert(!st.consumer_waiting && !st.producer_waiting);
    ck_assert_int_eq(st.producer_tid, 0);
    ck_assert_int_eq(st.consumer_tid, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mproc_queue_put(q, "abc", 3, 0), 0);
    char b[8];
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    /* A reservation holds the producers' lock: its holder is named. */
    void *w;
    ck_assert_int_eq(mproc_queue_reserve(q, &w, 8, 0), 0);
    ck_assert_int_eq(mproc_queue_stat(q, &st), 0);
    ck_assert_uint_eq(st.depth, 2);
    ck_assert_uint_eq(st.unfinished, 3);
    ck_assert_uint_eq(st.consumer_places, 1); /* this process got a task */
    ck_assert_int_eq(st.producer_tid, (pid_t)syscall(SYS_gettid));
    ck_assert_int_eq(mproc_queue_cancel(q), 0);
    ck_assert_int_eq(mproc_queue_stat(q, &st), 0);
    ck_assert_int_eq(st.producer_tid, 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_qsize_empty_and_full_are_exact)
{
    mproc_queue *q = new_queue(4096, 3, false);
    ck_assert_uint_eq(mproc_queue_maxsize(q), 3);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    ck_assert_int_eq(mproc_queue_full(q), 0);
    for (unsigned i = 1; i <= 3; i++) {
        put_pattern(q, i * 10, i);
        ck_assert_uint_eq(qsize(q), i);
        ck_assert_int_eq(mproc_queue_empty(q), 0);
        ck_assert_int_eq(mproc_queue_full(q), i == 3);
    }
    for (unsigned i = 1; i <= 3; i++) {
        get_pattern(q, i * 10, i, 0);
        ck_assert_uint_eq(qsize(q), 3 - i);
        ck_assert_int_eq(mproc_queue_full(q), 0);
    }
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    /* No bound in messages: never full. */
    mproc_queue *u = new_queue(4096, 0, false);
    for (unsigned i = 0; i < 100; i++)
        ck_assert_int_eq(mproc_queue_put(u, NULL, 0, 0), 0);
    ck_assert_uint_eq(qsize(u), 100);
    ck_assert_int_eq(mproc_queue_full(u), 0);
    mproc_queue_close(u);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_put_times_out_while_maxsize_messages_wait)
{
    mproc_queue *q = new_queue(0, 2, false);
    ck_assert_int_eq(mproc_queue_put(q, "a", 1, 0), 0);
    ck_assert_int_eq(mproc_queue_put(q, "b", 1, 0), 0);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_put(q, "c", 1, 0), MPROC_ETIMEDOUT);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(1000));
    t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_put(q, "c", 1, 200), MPROC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_ge(took, 190);
    ck_assert_int_lt(took, test_ms(3000));
    ck_assert_uint_eq(qsize(q), 2);
    /* A reservation waits for the same bound. */
    void *buf;
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 1, 0), MPROC_ETIMEDOUT);
    char c;
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, &c, 1, &len, 0), 0);
    ck_assert_int_eq(c, 'a');
    ck_assert_int_eq(mproc_queue_put(q, "c", 1, 0), 0);
    ck_assert_int_eq(mproc_queue_full(q), 1);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_lets_a_put_blocked_on_maxsize_go_on)
{
    mproc_queue *q = new_queue(0, 1, false);
    put_pattern(q, 10, 1);
    put_job j = {q, 20, 2, test_ms(10000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(test_wait_asleep(p, "futex", 5000));
    ck_assert_uint_eq(qsize(q), 1);
    get_pattern(q, 10, 1, 0);
    ck_assert_int_eq(test_wait_status(p), 0);
    get_pattern(q, 20, 2, test_ms(5000));
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_capacity_bounds_bytes_with_an_8_byte_header_per_message)
{
    /* 504 bytes take 512: exactly 8 in 4096. */
    mproc_queue *q = new_queue(4096, 0, false);
    for (unsigned i = 0; i < 8; i++)
        put_pattern(q, 504, i);
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), MPROC_ETIMEDOUT);
    get_pattern(q, 504, 0, 0);
    put_pattern(q, 504, 8);
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), MPROC_ETIMEDOUT);
    for (unsigned i = 1; i <= 8; i++)
        get_pattern(q, 504, i, 0);
    mproc_queue_close(q);
    /* 0 bytes take 8: 512 of them in 4096, and 1 to 8 bytes take 16. */
    q = new_queue(4096, 0, false);
    for (unsigned i = 0; i < 512; i++)
        ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), 0);
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), MPROC_ETIMEDOUT);
    ck_assert_uint_eq(qsize(q), 512);
    size_t len;
    for (unsigned i = 0; i < 512; i++)
        ck_assert_int_eq(mproc_queue_get(q, NULL, 0, &len, 0), 0);
    for (unsigned i = 0; i < 256; i++)
        ck_assert_int_eq(mproc_queue_put(q, "12345678", 1 + i % 8, 0), 0);
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), MPROC_ETIMEDOUT);
    mproc_queue_close(q);
    /* A message taken and not yet freed (consumers free lazily, an eighth
     * of the ring at a time) is room all the same, also for a put that
     * cannot wait. */
    q = new_queue(4096, 0, false);
    for (unsigned i = 0; i < 512; i++)
        ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), 0);
    ck_assert_int_eq(mproc_queue_get(q, NULL, 0, &len, 0), 0);
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), 0);
    ck_assert_uint_eq(qsize(q), 512);
    mproc_queue_close(q);
}
END_TEST

/* A producer that waits for room goes on once its message fits, even when
 * no more room than that comes. */
START_TEST(queue_put_goes_on_once_its_message_fits)
{
    mproc_queue *q = new_queue(4096, 0, false);
    /* 512 + 2048 + 1024 + 256 bytes: 256 left. */
    put_pattern(q, 504, 1);
    put_pattern(q, 2040, 2);
    put_pattern(q, 1016, 3);
    put_pattern(q, 248, 4);
    ck_assert_int_eq(mproc_queue_put(q, NULL, 504, 0), MPROC_EINVAL);
    put_job j = {q, 504, 5, test_ms(5000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(test_wait_asleep(p, "futex", 5000));
    /* Frees 512 bytes: 768, enough for the child's 512, and no more. */
    get_pattern(q, 504, 1, 0);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
    get_pattern(q, 2040, 2, 0);
    get_pattern(q, 1016, 3, 0);
    get_pattern(q, 248, 4, 0);
    get_pattern(q, 504, 5, 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_times_out_on_time)
{
    mproc_queue *q = new_queue(4096, 0, false);
    char b[8];
    size_t len;
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), MPROC_ETIMEDOUT);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(1000));
    t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 250),
                     MPROC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_ge(took, 240);
    ck_assert_int_lt(took, test_ms(3000));
    void *m = NULL;
    t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, 100),
                     MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 90);
    ck_assert_ptr_null(m);
    const void *d;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), MPROC_ETIMEDOUT);
    size_t lens[2], got = 9;
    ck_assert_int_eq(mproc_queue_get_batch(q, b, sizeof b, lens, 2, &got, 0),
                     MPROC_ETIMEDOUT);
    ck_assert_uint_eq(got, 0);
    /* Timeout 0 takes what is there. */
    ck_assert_int_eq(mproc_queue_put(q, "hi", 2, 0), 0);
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    ck_assert_uint_eq(len, 2);
    ck_assert_int_eq(memcmp(b, "hi", 2), 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_wakes_when_a_message_comes)
{
    mproc_queue *q = new_queue(4096, 0, false);
    get_job j = {q, 300, 3, test_ms(10000)};
    pid_t p = spawn(child_get, &j);
    ck_assert(test_wait_asleep(p, "futex", 5000));
    put_pattern(q, 300, 3);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
    mproc_queue_close(q);
}
END_TEST

/* ---------------------------------------------------- sizes that fail */

START_TEST(queue_get_into_a_small_buffer_keeps_a_whole_message)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 100, 1);
    put_pattern(q, 5, 2);
    unsigned char b[200];
    size_t len = 0;
    ck_assert_int_eq(mproc_queue_get(q, b, 99, &len, 0), MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 100);
    ck_assert_uint_eq(qsize(q), 2);
    ck_assert_int_eq(mproc_queue_get(q, NULL, 0, &len, 0), MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 100);
    get_pattern(q, 100, 1, 0);
    get_pattern(q, 5, 2, 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_into_a_small_buffer_keeps_a_streamed_message)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_job j = {q, 20000, 9, test_ms(10000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    unsigned char *b = malloc(20000);
    ck_assert_ptr_nonnull(b);
    size_t len = 0;
    ck_assert_int_eq(mproc_queue_get(q, b, 19999, &len, test_ms(5000)),
                     MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 20000);
    void *m = (void *)b;
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, 19999, test_ms(5000)),
                     MPROC_EMSGSIZE);
    ck_assert_ptr_eq(m, b);
    ck_assert_uint_eq(len, 20000);
    ck_assert_uint_eq(qsize(q), 1);
    ck_assert_int_eq(mproc_queue_get(q, b, 20000, &len, test_ms(5000)), 0);
    ck_assert_uint_eq(len, 20000);
    ck_assert(test_pattern_ok(b, 20000, 9));
    ck_assert_int_eq(test_wait_status(p), 0);
    free(b);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_alloc_guard_keeps_the_message)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 300, 4);
    void *m = (void *)&m;
    size_t len = 0;
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, 299, 0),
                     MPROC_EMSGSIZE);
    ck_assert_ptr_eq(m, (void *)&m);
    ck_assert_uint_eq(len, 300);
    ck_assert_uint_eq(qsize(q), 1);
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, 300, 0), 0);
    ck_assert_uint_eq(len, 300);
    ck_assert(test_pattern_ok(m, 300, 4));
    ck_assert_int_eq(((unsigned char *)m)[300], 0);
    free(m);
    /* A 0-byte message: a buffer holding just the NUL. */
    ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), 0);
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, 0, 0), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(((unsigned char *)m)[0], 0);
    free(m);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_no_stream_refuses_messages_above_max_inplace)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.no_stream = true;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    size_t max = mproc_queue_max_inplace(q);
    unsigned char *b = msg_new(max + 1, 5);
    ck_assert_int_eq(mproc_queue_put(q, b, max + 1, test_ms(1000)),
                     MPROC_EMSGSIZE);
    ck_assert_int_eq(mproc_queue_put(q, b, 100000, 0), MPROC_EMSGSIZE);
    mproc_queue_msg ms[2] = {{b, 10}, {b, max + 1}};
    size_t sent = 9;
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 2, &sent, 0), MPROC_EMSGSIZE);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    test_pattern(b, max, 5);
    ck_assert_int_eq(mproc_queue_put(q, b, max, 0), 0);
    get_pattern(q, max, 5, 0);
    free(b);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------- producers, consumers */

#define NPROD 3
#define NCONS 3
#define PER_PROD 400
#define MP_MAGIC 0x51554555u

/* Message (producer i, sequence s): a 12-byte header, then a pattern. */
static size_t mp_len(unsigned id, unsigned seq)
{
    unsigned h = (id * 7919u + seq) * 2654435761u;
    if (h % 23 == 0)
        return 12 + h % 40000; /* often streamed through 16 KiB */
    return 12 + h % 700;
}

static void mp_fill(unsigned char *b, size_t len, unsigned id, unsigned seq)
{
    uint32_t w[3] = {MP_MAGIC, id, seq};
    memcpy(b, w, 12);
    test_pattern(b + 12, len - 12, id * 100003u + seq);
}

typedef struct mp_state {
    _Atomic int counts[NPROD][PER_PROD];
    _Atomic int bad; /* a torn or unknown message, or order broken */
    _Atomic int taken;
} mp_state;

typedef struct mp_job {
    mproc_queue *q;
    mp_state *st;
    unsigned id;
} mp_job;

static int child_mp_producer(void *p)
{
    mp_job *j = p;
    unsigned char *b = malloc(12 + 40000);
    if (b == NULL)
        return 20;
    for (unsigned s = 0; s < PER_PROD; s++) {
        size_t len = mp_len(j->id, s);
        mp_fill(b, len, j->id, s);
        int rc = mproc_queue_put(j->q, b, len, test_ms(20000));
        if (rc != 0)
            return code_of(rc);
    }
    free(b);
    return 0;
}

static int child_mp_consumer(void *p)
{
    mp_job *j = p;
    int last[NPROD];
    for (unsigned i = 0; i < NPROD; i++)
        last[i] = -1;
    unsigned char *b = malloc(12 + 40000);
    if (b == NULL)
        return 20;
    for (unsigned k = 0;; k++) {
        size_t len;
        int rc;
        void *m = NULL;
        /* get, get_alloc and borrow in turn. */
        if (k % 3 == 0) {
            rc = mproc_queue_get(j->q, b, 12 + 40000, &len, test_ms(20000));
            m = b;
        } else if (k % 3 == 1) {
            rc =
                mproc_queue_get_alloc(j->q, &m, &len, SIZE_MAX, test_ms(20000));
        } else {
            const void *d;
            rc = mproc_queue_borrow(j->q, &d, &len, test_ms(20000));
            if (rc == MPROC_EMSGSIZE) { /* streamed: take it by copy */
                rc = mproc_queue_get(j->q, b, 12 + 40000, &len, test_ms(20000));
            } else if (rc == 0) {
                memcpy(b, d, len);
                rc = mproc_queue_release(j->q);
            }
            m = b;
        }
        if (rc == MPROC_ECLOSED)
            break;
        if (rc != 0)
            return code_of(rc);
        uint32_t w[3] = {0, 0, 0};
        if (len >= 12)
            memcpy(w, m, 12);
        if (len < 12 || w[0] != MP_MAGIC || w[1] >= NPROD || w[2] >= PER_PROD ||
            len != mp_len(w[1], w[2]) ||
            !test_pattern_ok((unsigned char *)m + 12, len - 12,
                             w[1] * 100003u + w[2]) ||
            (int)w[2] <= last[w[1]])
            atomic_store(&j->st->bad, 1);
        else
            last[w[1]] = (int)w[2];
        if (len >= 12 && w[1] < NPROD && w[2] < PER_PROD)
            atomic_fetch_add(&j->st->counts[w[1]][w[2]], 1);
        atomic_fetch_add(&j->st->taken, 1);
        if (m != b)
            free(m);
    }
    free(b);
    return 0;
}

START_TEST(queue_many_producers_and_consumers_pass_every_message_once)
{
    mproc_queue *q = new_queue(16384, 0, false);
    mp_state *st = shared_mem(sizeof *st);
    mp_job jobs[NPROD + NCONS];
    pid_t p[NPROD + NCONS];
    for (unsigned i = 0; i < NCONS; i++) {
        jobs[NPROD + i] = (mp_job){q, st, i};
        p[NPROD + i] = spawn(child_mp_consumer, &jobs[NPROD + i]);
    }
    for (unsigned i = 0; i < NPROD; i++) {
        jobs[i] = (mp_job){q, st, i};
        p[i] = spawn(child_mp_producer, &jobs[i]);
    }
    for (unsigned i = 0; i < NPROD; i++)
        ck_assert_int_eq(test_wait_status(p[i]), 0);
    /* Every producer is done: the consumers drain, then see it closed. */
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    for (unsigned i = 0; i < NCONS; i++)
        ck_assert_int_eq(test_wait_status(p[NPROD + i]), 0);
    ck_assert_int_eq(atomic_load(&st->bad), 0);
    ck_assert_int_eq(atomic_load(&st->taken), NPROD * PER_PROD);
    for (unsigned i = 0; i < NPROD; i++)
        for (unsigned s = 0; s < PER_PROD; s++)
            ck_assert_msg(atomic_load(&st->counts[i][s]) == 1,
                          "message %u of producer %u came %d times", s, i,
                          atomic_load(&st->counts[i][s]));
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    munmap(st, sizeof *st);
    mproc_queue_close(q);
}
END_TEST

/* Threads of one process share one handle. */
typedef struct thr_job {
    mproc_queue *q;
    unsigned id;
    _Atomic int *counts; /* [2][2000] */
    _Atomic int bad;
} thr_job;

static void *thread_producer(void *p)
{
    thr_job *j = p;
    unsigned char b[600];
    for (unsigned s = 0; s < 2000; s++) {
        size_t len = 8 + (s * 37u) % 500;
        uint32_t w[2] = {j->id, s};
        memcpy(b, w, 8);
        test_pattern(b + 8, len - 8, j->id * 7u + s);
        if (mproc_queue_put(j->q, b, len, test_ms(10000)) != 0) {
            atomic_store(&j->bad, 1);
            break;
        }
    }
    return NULL;
}

static void *thread_consumer(void *p)
{
    thr_job *j = p;
    unsigned char b[600];
    for (;;) {
        size_t len;
        int rc = mproc_queue_get(j->q, b, sizeof b, &len, test_ms(10000));
        if (rc == MPROC_ECLOSED)
            break;
        uint32_t w[2];
        if (rc != 0 || len < 8) {
            atomic_store(&j->bad, 1);
            break;
        }
        memcpy(w, b, 8);
        if (w[0] >= 2 || w[1] >= 2000 || len != 8 + (w[1] * 37u) % 500 ||
            !test_pattern_ok(b + 8, len - 8, w[0] * 7u + w[1])) {
            atomic_store(&j->bad, 1);
            break;
        }
        atomic_fetch_add(&j->counts[w[0] * 2000 + w[1]], 1);
    }
    return NULL;
}

START_TEST(queue_threads_of_one_process_share_a_handle)
{
    mproc_queue *q = new_queue(8192, 0, false);
    static _Atomic int counts[2 * 2000];
    thr_job jobs[4];
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        jobs[i] = (thr_job){q, i % 2, counts, 0};
        ck_assert_int_eq(
            pthread_create(&t[i], NULL,
                           i < 2 ? thread_producer : thread_consumer, &jobs[i]),
            0);
    }
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    pthread_join(t[2], NULL);
    pthread_join(t[3], NULL);
    for (unsigned i = 0; i < 4; i++)
        ck_assert_int_eq(atomic_load(&jobs[i].bad), 0);
    for (unsigned i = 0; i < 2 * 2000; i++)
        ck_assert_int_eq(atomic_load(&counts[i]), 1);
    mproc_queue_close(q);
}
END_TEST

/* Two threads on one handle, a streamed message and a get that times out
 * inside it: the other thread's get waits (the consumers' side is held) and
 * does not take the message over; the first thread finishes it. */
typedef struct steal_job {
    mproc_queue *q;
    int rc;
    int64_t took;
} steal_job;

static void *thread_get_100ms(void *p)
{
    steal_job *j = p;
    unsigned char b[64];
    size_t len;
    int64_t t0 = test_now_ms();
    j->rc = mproc_queue_get(j->q, b, sizeof b, &len, 100);
    j->took = test_now_ms() - t0;
    return NULL;
}

START_TEST(queue_stream_half_read_by_one_thread_is_not_taken_by_another)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_job j = {q, 30000, 11, test_ms(20000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    ck_assert(test_wait_asleep(p, "futex", 5000));
    kill(p, SIGSTOP);
    unsigned char *b = malloc(30000);
    ck_assert_ptr_nonnull(b);
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, 30000, &len, 200), MPROC_ETIMEDOUT);
    /* Another thread of this process: it waits for the consumers' side. */
    steal_job sj = {q, 0, 0};
    pthread_t t;
    kill(p, SIGCONT);
    ck_assert_int_eq(pthread_create(&t, NULL, thread_get_100ms, &sj), 0);
    pthread_join(t, NULL);
    ck_assert_msg(sj.rc == MPROC_ETIMEDOUT, "the other thread's get: %s",
                  mproc_errname(sj.rc));
    /* This thread finishes the message. */
    ck_assert_int_eq(mproc_queue_get(q, b, 30000, &len, test_ms(5000)), 0);
    ck_assert_uint_eq(len, 30000);
    ck_assert(test_pattern_ok(b, 30000, 11));
    ck_assert_int_eq(test_wait_status(p), 0);
    /* Nothing is held: a get from another thread works again. */
    ck_assert_int_eq(mproc_queue_put(q, "z", 1, 0), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, thread_get_100ms, &sj), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(sj.rc, 0);
    free(b);
    mproc_queue_close(q);
}
END_TEST

/* A get that times out inside a streamed message keeps what it read; the
 * next get on the handle finishes it, and keeps the get_alloc guard. */
START_TEST(queue_get_that_times_out_inside_a_stream_resumes_it)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_job j = {q, 30000, 12, test_ms(20000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    ck_assert(test_wait_asleep(p, "futex", 5000));
    kill(p, SIGSTOP);
    unsigned char *b = malloc(30000);
    ck_assert_ptr_nonnull(b);
    size_t len = 0;
    ck_assert_int_eq(mproc_queue_get(q, b, 30000, &len, 100), MPROC_ETIMEDOUT);
    kill(p, SIGCONT);
    /* The guard still holds for the resumed message. */
    void *m = NULL;
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, 1000, test_ms(5000)),
                     MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 30000);
    ck_assert_ptr_null(m);
    /* A buffer too small keeps it too. */
    ck_assert_int_eq(mproc_queue_get(q, b, 100, &len, test_ms(5000)),
                     MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 30000);
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, 0), 0);
    ck_assert_uint_eq(len, 30000);
    ck_assert(test_pattern_ok(m, 30000, 12));
    free(m);
    ck_assert_int_eq(test_wait_status(p), 0);
    /* The consumers' side is free again. */
    ck_assert_int_eq(mproc_queue_put(q, "y", 1, 0), 0);
    ck_assert_int_eq(mproc_queue_get(q, b, 1, &len, 0), 0);
    free(b);
    mproc_queue_close(q);
}
END_TEST

/* A half-read stream holds the consumers' side: another consumer waits;
 * closing the handle drops the message (and, in a JoinableQueue, its
 * task), and the other consumer goes on with the next message. */
START_TEST(queue_closing_a_handle_drops_its_half_read_stream)
{
    char name[64];
    test_shm_name(name, sizeof name, "qhalf");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.joinable = true;
    mproc_queue *a, *b;
    ck_assert_int_eq(mproc_queue_create(&a, name, &o), 0);
    ck_assert_int_eq(mproc_queue_open(&b, name, NULL), 0);
    put_job j = {a, 30000, 13, test_ms(20000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(a, 1, 5000));
    ck_assert(test_wait_asleep(p, "futex", 5000));
    kill(p, SIGSTOP);
    unsigned char *m = malloc(30000);
    ck_assert_ptr_nonnull(m);
    size_t len;
    ck_assert_int_eq(mproc_queue_get(a, m, 30000, &len, 100), MPROC_ETIMEDOUT);
    kill(p, SIGCONT);
    /* Another consumer waits for the consumers' side. */
    get_job g = {b, 0, 0, 100};
    pid_t c = spawn(child_get, &g);
    ck_assert_int_eq(test_wait_status(c), code_of(MPROC_ETIMEDOUT));
    mproc_queue_close(a);
    /* The producer finishes; its message is not delivered. */
    int code = -1;
    int64_t until = test_now_ms() + test_ms(10000);
    while (code < 0 && test_now_ms() < until) {
        int rc = mproc_queue_get(b, m, 30000, &len, 20);
        ck_assert_msg(rc == MPROC_ETIMEDOUT, "got %s (%zu bytes)",
                      mproc_errname(rc), len);
        int st;
        if (waitpid(p, &st, WNOHANG) == p)
            code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    }
    ck_assert_int_eq(code, 0);
    put_pattern(b, 40, 14);
    get_pattern(b, 40, 14, test_ms(2000));
    /* The dropped message's task was counted done. */
    ck_assert_int_eq(mproc_queue_join(b, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_queue_task_done(b), 0);
    ck_assert_int_eq(mproc_queue_join(b, 0), 0);
    free(m);
    mproc_queue_close(b);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* The big message: 1 GiB, streamed through a queue of 64 KiB. Under
 * ThreadSanitizer, whose shadow makes each process hold some 5 GiB for it
 * and which takes most of Check's limit to copy it, 128 MiB: the same path,
 * 2048 times the queue's memory, without the sizes past 2^31 that the other
 * builds cover. */
#if defined(MPROC_TEST_TSAN)
#define GIB ((size_t)128 << 20)
#else
#define GIB ((size_t)1 << 30)
#endif

/* Every 4 KiB block of the big message starts with its index and goes on
 * with the same 4088 bytes, so that a block out of place or torn shows. The
 * blocks are written and checked with memcpy and memcmp, not byte by byte. */
static void gib_block(unsigned char ref[4096])
{
    test_pattern(ref, 4096, 77);
}

static void gib_fill(unsigned char *b)
{
    unsigned char ref[4096];
    gib_block(ref);
    for (size_t off = 0; off < GIB; off += 4096) {
        uint64_t k = off / 4096;
        memcpy(b + off, ref, 4096);
        memcpy(b + off, &k, 8);
    }
}

static int gib_ok(const unsigned char *b)
{
    unsigned char ref[4096];
    gib_block(ref);
    for (size_t off = 0; off < GIB; off += 4096) {
        uint64_t k;
        memcpy(&k, b + off, 8);
        if (k != off / 4096 || memcmp(b + off + 8, ref + 8, 4088) != 0)
            return 0;
    }
    return 1;
}

static int child_puts_a_gib(void *p)
{
    mproc_queue *q = p;
    unsigned char *b = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED)
        return 40;
    gib_fill(b);
    int rc = mproc_queue_put(q, b, GIB, test_ms(100000));
    munmap(b, GIB);
    return code_of(rc);
}

/* RUN_SERIAL queue_streams_a_1gib_message_between_processes */
START_TEST(queue_streams_a_1gib_message_between_processes)
{
    unsigned char *b = mmap(NULL, GIB, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (b == MAP_FAILED) {
        test_skip("cannot map 1 GiB");
        return;
    }
    mproc_queue *q = new_queue(65536, 0, false);
    pid_t p = spawn(child_puts_a_gib, q);
    size_t len = 0;
    int rc = mproc_queue_get(q, b, GIB, &len, test_ms(100000));
    int code = test_wait_status(p);
    if (code == 40) {
        munmap(b, GIB);
        mproc_queue_close(q);
        test_skip("the sender cannot map 1 GiB");
        return;
    }
    ck_assert_msg(rc == 0, "get: %s", mproc_errname(rc));
    ck_assert_int_eq(code, 0);
    ck_assert_uint_eq(len, GIB);
    ck_assert_msg(gib_ok(b), "the big message came torn");
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    munmap(b, GIB);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

START_TEST(queue_shutdown_refuses_puts_and_lets_consumers_drain)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 10, 1);
    put_pattern(q, 20, 2);
    ck_assert_int_eq(mproc_queue_is_shutdown(q), 0);
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    ck_assert_int_eq(mproc_queue_is_shutdown(q), 1);
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, 0), MPROC_ECLOSED);
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, test_ms(1000)), MPROC_ECLOSED);
    void *buf;
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 1, 0), MPROC_ECLOSED);
    mproc_queue_msg ms[1] = {{"x", 1}};
    size_t sent = 9;
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 1, &sent, 0), MPROC_ECLOSED);
    ck_assert_uint_eq(sent, 0);
    ck_assert_uint_eq(qsize(q), 2);
    get_pattern(q, 10, 1, 0);
    get_pattern(q, 20, 2, 0);
    unsigned char b[8];
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, test_ms(1000)),
                     MPROC_ECLOSED);
    void *m = NULL;
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, 0),
                     MPROC_ECLOSED);
    const void *d;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), MPROC_ECLOSED);
    size_t lens[1], got;
    ck_assert_int_eq(mproc_queue_get_batch(q, b, sizeof b, lens, 1, &got, 0),
                     MPROC_ECLOSED);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_shutdown_is_seen_by_every_process)
{
    mproc_queue *q = new_queue(4096, 0, false);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(mproc_queue_shutdown(q) == 0 ? 0 : 1);
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_eq(mproc_queue_is_shutdown(q), 1);
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, 0), MPROC_ECLOSED);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_shutdown_wakes_sleeping_producers_and_consumers)
{
    mproc_queue *full = new_queue(4096, 1, false);
    mproc_queue *empty = new_queue(4096, 0, false);
    put_pattern(full, 10, 1);
    put_job pj = {full, 10, 2, test_ms(30000), NULL};
    get_job gj = {empty, 10, 3, test_ms(30000)};
    pid_t pp = spawn(child_put, &pj);
    pid_t pg = spawn(child_get, &gj);
    ck_assert(test_wait_asleep(pp, "futex", 5000));
    ck_assert(test_wait_asleep(pg, "futex", 5000));
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_shutdown(full), 0);
    ck_assert_int_eq(mproc_queue_shutdown(empty), 0);
    ck_assert_int_eq(test_wait_status(pp), code_of(MPROC_ECLOSED));
    ck_assert_int_eq(test_wait_status(pg), code_of(MPROC_ECLOSED));
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    /* The message put before is still there. */
    get_pattern(full, 10, 1, 0);
    mproc_queue_close(full);
    mproc_queue_close(empty);
}
END_TEST

/* A streamed put waiting for room when the queue is shut down: it fails,
 * and no consumer ever sees a part of its message. */
START_TEST(queue_shutdown_inside_a_streamed_put_drops_the_message_whole)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 30, 1);
    put_job j = {q, 50000, 2, test_ms(30000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 2, 5000));
    ck_assert(test_wait_asleep(p, "futex", 5000));
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    ck_assert_int_eq(test_wait_status(p), code_of(MPROC_ECLOSED));
    get_pattern(q, 30, 1, 0);
    unsigned char *b = malloc(50000);
    ck_assert_ptr_nonnull(b);
    size_t len = 0;
    int rc = mproc_queue_get(q, b, 50000, &len, test_ms(2000));
    ck_assert_msg(rc == MPROC_ECLOSED, "after the cut stream: %s (%zu bytes)",
                  mproc_errname(rc), len);
    free(b);
    mproc_queue_close(q);
}
END_TEST

/* A producer killed inside a streamed message, then shutdown: consumers
 * drop what went of it and drain to MPROC_ECLOSED, on time. */
START_TEST(queue_shutdown_after_a_producer_died_inside_a_stream_drains)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 30, 1);
    put_job j = {q, 50000, 2, test_ms(30000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 2, 5000));
    ck_assert(test_wait_asleep(p, "futex", 5000));
    kill_and_reap(p);
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    get_pattern(q, 30, 1, 0);
    unsigned char *b = malloc(50000);
    ck_assert_ptr_nonnull(b);
    size_t len = 0;
    int64_t t0 = test_now_ms();
    int rc = mproc_queue_get(q, b, 50000, &len, test_ms(3000));
    ck_assert_msg(rc == MPROC_ECLOSED, "after the cut stream: %s (%zu bytes)",
                  mproc_errname(rc), len);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
    free(b);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_commit_after_shutdown_puts_nothing)
{
    mproc_queue *q = new_queue(4096, 0, false);
    void *buf;
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 10, 0), 0);
    memcpy(buf, "0123456789", 10);
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    ck_assert_int_eq(mproc_queue_commit(q, 10), MPROC_ECLOSED);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    ck_assert_int_eq(mproc_queue_commit(q, 10), MPROC_ESTATE);
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, NULL, 0, &len, 0), MPROC_ECLOSED);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------------------- batches */

START_TEST(queue_put_batch_puts_messages_in_order)
{
    mproc_queue *q = new_queue(4096, 0, false);
    unsigned char *b[5];
    size_t sizes[5] = {0, 1, 13, 300, 1000};
    mproc_queue_msg ms[5];
    for (unsigned i = 0; i < 5; i++) {
        b[i] = msg_new(sizes[i], i);
        ms[i] = (mproc_queue_msg){b[i], sizes[i]};
    }
    size_t sent = 0;
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 5, &sent, 0), 0);
    ck_assert_uint_eq(sent, 5);
    ck_assert_uint_eq(qsize(q), 5);
    for (unsigned i = 0; i < 5; i++)
        get_pattern(q, sizes[i], i, 0);
    /* n == 0 puts nothing; sent may be NULL. */
    ck_assert_int_eq(mproc_queue_put_batch(q, NULL, 0, &sent, 0), 0);
    ck_assert_uint_eq(sent, 0);
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 2, NULL, 0), 0);
    ck_assert_uint_eq(qsize(q), 2);
    get_pattern(q, 0, 0, 0);
    get_pattern(q, 1, 1, 0);
    /* The largest whole message, in a batch of one. */
    unsigned char *big = msg_new(2040, 9);
    mproc_queue_msg one[1] = {{big, 2040}};
    ck_assert_int_eq(mproc_queue_put_batch(q, one, 1, &sent, 0), 0);
    ck_assert_uint_eq(sent, 1);
    get_pattern(q, 2040, 9, 0);
    free(big);
    /* Wrapping the ring several times in batches. */
    for (unsigned r = 0; r < 30; r++) {
        ck_assert_int_eq(mproc_queue_put_batch(q, ms + 2, 3, &sent, 0), 0);
        for (unsigned i = 2; i < 5; i++)
            get_pattern(q, sizes[i], i, 0);
    }
    for (unsigned i = 0; i < 5; i++)
        free(b[i]);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_put_batch_stops_at_the_bound_and_says_how_many_went)
{
    mproc_queue *q = new_queue(4096, 3, false);
    mproc_queue_msg ms[5] = {
        {"a", 1}, {"bb", 2}, {"ccc", 3}, {"dddd", 4}, {"eeeee", 5}};
    size_t sent = 0;
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 5, &sent, 0),
                     MPROC_ETIMEDOUT);
    ck_assert_uint_eq(sent, 3);
    ck_assert_uint_eq(qsize(q), 3);
    char b[8];
    size_t len;
    for (unsigned i = 0; i < 3; i++) {
        ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
        ck_assert_uint_eq(len, i + 1);
    }
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    mproc_queue_close(q);
    /* The bound in bytes: 504-byte messages, 8 fit. */
    q = new_queue(4096, 0, false);
    unsigned char *m = msg_new(504, 3);
    mproc_queue_msg big[10];
    for (unsigned i = 0; i < 10; i++)
        big[i] = (mproc_queue_msg){m, 504};
    ck_assert_int_eq(mproc_queue_put_batch(q, big, 10, &sent, 50),
                     MPROC_ETIMEDOUT);
    ck_assert_uint_eq(sent, 8);
    ck_assert_uint_eq(qsize(q), 8);
    free(m);
    mproc_queue_close(q);
}
END_TEST

/* A batch with a streamed message inside, read by a child. */
static int child_gets_batch_sizes(void *p)
{
    stream_job *j = p;
    for (size_t i = 0; i < j->n; i++) {
        void *m = NULL;
        size_t len;
        int rc =
            mproc_queue_get_alloc(j->q, &m, &len, SIZE_MAX, test_ms(10000));
        if (rc != 0)
            return code_of(rc);
        int ok = len == j->sizes[i] && test_pattern_ok(m, len, (unsigned)i);
        free(m);
        if (!ok)
            return 30 + (int)i;
    }
    return 0;
}

START_TEST(queue_put_batch_streams_long_messages_among_short_ones)
{
    mproc_queue *q = new_queue(4096, 0, false);
    const size_t sizes[6] = {10, 20000, 30, 2040, 9000, 0};
    unsigned char *b[6];
    mproc_queue_msg ms[6];
    for (unsigned i = 0; i < 6; i++) {
        b[i] = msg_new(sizes[i], i);
        ms[i] = (mproc_queue_msg){b[i], sizes[i]};
    }
    stream_job j = {q, sizes, 6};
    pid_t p = spawn(child_gets_batch_sizes, &j);
    size_t sent = 0;
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 6, &sent, test_ms(10000)), 0);
    ck_assert_uint_eq(sent, 6);
    ck_assert_int_eq(test_wait_status(p), 0);
    for (unsigned i = 0; i < 6; i++)
        free(b[i]);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_batch_takes_what_is_there_while_it_fits)
{
    mproc_queue *q = new_queue(4096, 0, false);
    const size_t sizes[5] = {10, 0, 33, 100, 7};
    for (unsigned i = 0; i < 5; i++)
        put_pattern(q, sizes[i], i);
    unsigned char b[512];
    size_t lens[8], got = 0;
    /* Room for the first three only. */
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 43, lens, 8, &got, 0), 0);
    ck_assert_uint_eq(got, 3);
    ck_assert_uint_eq(lens[0], 10);
    ck_assert_uint_eq(lens[1], 0);
    ck_assert_uint_eq(lens[2], 33);
    ck_assert(test_pattern_ok(b, 10, 0));
    ck_assert(test_pattern_ok(b + 10, 33, 2));
    ck_assert_uint_eq(qsize(q), 2);
    /* At most n. */
    ck_assert_int_eq(mproc_queue_get_batch(q, b, sizeof b, lens, 1, &got, 0),
                     0);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(lens[0], 100);
    ck_assert(test_pattern_ok(b, 100, 3));
    /* The first does not fit: it stays, lens[0] is its size. */
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 6, lens, 8, &got, 0),
                     MPROC_EMSGSIZE);
    ck_assert_uint_eq(lens[0], 7);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 7, lens, 8, &got, 0), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert(test_pattern_ok(b, 7, 4));
    /* 0-byte messages into no buffer at all. */
    for (unsigned i = 0; i < 4; i++)
        ck_assert_int_eq(mproc_queue_put(q, NULL, 0, 0), 0);
    ck_assert_int_eq(mproc_queue_get_batch(q, NULL, 0, lens, 8, &got, 0), 0);
    ck_assert_uint_eq(got, 4);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_get_batch_stops_before_a_streamed_message)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 10, 1);
    put_job j = {q, 9000, 2, test_ms(10000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 2, 5000));
    unsigned char *b = malloc(20000);
    ck_assert_ptr_nonnull(b);
    size_t lens[4], got = 0;
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 20000, lens, 4, &got, 0), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(lens[0], 10);
    /* The streamed one comes as the first of a batch. */
    ck_assert_int_eq(
        mproc_queue_get_batch(q, b, 20000, lens, 4, &got, test_ms(5000)), 0);
    ck_assert_uint_eq(got, 1);
    ck_assert_uint_eq(lens[0], 9000);
    ck_assert(test_pattern_ok(b, 9000, 2));
    ck_assert_int_eq(test_wait_status(p), 0);
    free(b);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------------ reserve/commit */

START_TEST(queue_reserve_and_commit_publish_in_place)
{
    mproc_queue *q = new_queue(4096, 0, false);
    void *buf = NULL;
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 100, 0), 0);
    ck_assert_ptr_nonnull(buf);
    test_pattern(buf, 100, 5);
    ck_assert_int_eq(mproc_queue_empty(q), 1); /* not before the commit */
    ck_assert_int_eq(mproc_queue_commit(q, 60), 0);
    ck_assert_uint_eq(qsize(q), 1);
    get_pattern(q, 60, 5, 0);
    /* Cancel: nothing is put. */
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 10, 0), 0);
    memset(buf, 'x', 10);
    ck_assert_int_eq(mproc_queue_cancel(q), 0);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    /* The largest, and 0 bytes. */
    size_t max = mproc_queue_max_inplace(q);
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, max, 0), 0);
    test_pattern(buf, max, 6);
    ck_assert_int_eq(mproc_queue_commit(q, max), 0);
    get_pattern(q, max, 6, 0);
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 0, 0), 0);
    ck_assert_int_eq(mproc_queue_commit(q, 0), 0);
    get_pattern(q, 0, 0, 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_reserve_misuse_is_refused)
{
    mproc_queue *q = new_queue(4096, 0, false);
    size_t max = mproc_queue_max_inplace(q);
    void *buf = NULL;
    ck_assert_int_eq(mproc_queue_commit(q, 0), MPROC_ESTATE);
    ck_assert_int_eq(mproc_queue_cancel(q), MPROC_ESTATE);
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, max + 1, 0), MPROC_EMSGSIZE);
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, SIZE_MAX, 0), MPROC_EMSGSIZE);
    ck_assert_ptr_null(buf);
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 50, 0), 0);
    void *again;
    ck_assert_int_eq(mproc_queue_reserve(q, &again, 10, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, 0), MPROC_EINVAL);
    mproc_queue_msg ms[1] = {{"x", 1}};
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 1, NULL, 0), MPROC_EINVAL);
    /* Larger than reserved: refused, the reservation stays. */
    ck_assert_int_eq(mproc_queue_commit(q, 51), MPROC_EINVAL);
    test_pattern(buf, 50, 8);
    ck_assert_int_eq(mproc_queue_commit(q, 50), 0);
    ck_assert_int_eq(mproc_queue_commit(q, 50), MPROC_ESTATE);
    ck_assert_int_eq(mproc_queue_cancel(q), MPROC_ESTATE);
    get_pattern(q, 50, 8, 0);
    mproc_queue_close(q);
}
END_TEST

/* A reservation holds the producers' side: another process's put waits. */
START_TEST(queue_reservation_holds_other_producers_until_commit)
{
    mproc_queue *q = new_queue(4096, 0, false);
    void *buf;
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 10, 0), 0);
    put_job j = {q, 20, 2, 100, NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert_int_eq(test_wait_status(p), code_of(MPROC_ETIMEDOUT));
    j.timeout_ms = test_ms(10000);
    p = spawn(child_put, &j);
    ck_assert(test_wait_asleep(p, "futex", 5000));
    test_pattern(buf, 10, 1);
    ck_assert_int_eq(mproc_queue_commit(q, 10), 0);
    ck_assert_int_eq(test_wait_status(p), 0);
    get_pattern(q, 10, 1, 0);
    get_pattern(q, 20, 2, 0);
    mproc_queue_close(q);
}
END_TEST

/* A forked child's copy of a handle holds no reservation. */
static mproc_queue *g_q;

static int child_commit_and_cancel(void *arg)
{
    (void)arg;
    int a = mproc_queue_commit(g_q, 1);
    int b = mproc_queue_cancel(g_q);
    mproc_queue_close(g_q);
    return a == MPROC_ESTATE && b == MPROC_ESTATE ? 0 : 1;
}

START_TEST(queue_reservation_stays_in_the_parent_across_fork)
{
    mproc_queue *q = new_queue(4096, 0, false);
    void *buf;
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 10, 0), 0);
    g_q = q;
    pid_t p = spawn(child_commit_and_cancel, NULL);
    ck_assert_int_eq(test_wait_status(p), 0);
    test_pattern(buf, 10, 3);
    ck_assert_int_eq(mproc_queue_commit(q, 10), 0);
    get_pattern(q, 10, 3, 0);
    mproc_queue_close(q);
}
END_TEST

/* A producer killed between reserve and commit puts nothing and holds no
 * one up. */
static int child_reserves_and_sleeps(void *arg)
{
    _Atomic int *flag = arg;
    void *buf;
    if (mproc_queue_reserve(g_q, &buf, 100, 0) != 0)
        return 1;
    memset(buf, 'k', 100);
    atomic_store(flag, 1);
    pause();
    return 0;
}

START_TEST(queue_producer_killed_with_a_reservation_puts_nothing)
{
    mproc_queue *q = new_queue(4096, 0, false);
    _Atomic int *flag = shared_mem(4096);
    g_q = q;
    pid_t p = spawn(child_reserves_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    kill_and_reap(p);
    ck_assert_int_eq(mproc_queue_put(q, "after", 5, test_ms(5000)), 0);
    char b[200];
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(b, "after", 5), 0);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    munmap((void *)flag, 4096);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------------ borrow/release */

START_TEST(queue_borrow_gives_the_message_in_place_until_release)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 1000, 1);
    put_pattern(q, 500, 2);
    const void *d = NULL;
    size_t len = 0;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    ck_assert_uint_eq(len, 1000);
    ck_assert(test_pattern_ok(d, 1000, 1));
    /* Taken: counted out, not delivered again. */
    ck_assert_uint_eq(qsize(q), 1);
    const void *d2;
    ck_assert_int_eq(mproc_queue_borrow(q, &d2, &len, 0), MPROC_EINVAL);
    /* Other consumers go on (here, the same process by copy). */
    get_pattern(q, 500, 2, 0);
    /* The borrowed memory is not reused: fill the rest of the ring. */
    unsigned n = 0;
    while (mproc_queue_put(q, "0123456789abcdef", 16, 0) == 0)
        n++;
    ck_assert_uint_gt(n, 0);
    ck_assert(test_pattern_ok(d, 1000, 1));
    for (unsigned i = 0; i < n; i++) {
        char b[16];
        ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    }
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, 0), MPROC_ETIMEDOUT);
    ck_assert(test_pattern_ok(d, 1000, 1));
    ck_assert_int_eq(mproc_queue_release(q), 0);
    ck_assert_int_eq(mproc_queue_release(q), MPROC_ESTATE);
    ck_assert_int_eq(mproc_queue_put(q, "x", 1, 0), 0);
    mproc_queue_close(q);
}
END_TEST

/* While one process holds a borrowed message, another consumer takes the
 * next ones; the borrowed record is never written over, and the ring is
 * not reused past it until the release. */
static int child_consumes_n(void *arg)
{
    int n = *(int *)arg;
    unsigned char b[4096];
    for (int i = 0; i < n; i++) {
        size_t len;
        int rc = mproc_queue_get(g_q, b, sizeof b, &len, test_ms(10000));
        if (rc != 0)
            return code_of(rc);
        if (len != 300 || !test_pattern_ok(b, 300, (unsigned)i + 100))
            return 30;
    }
    return 0;
}

START_TEST(queue_borrowed_memory_is_not_reused_while_others_go_on)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 1500, 1);
    const void *d;
    size_t len;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    g_q = q;
    int n = 40; /* 40 * 304 bytes: the ring three times over */
    pid_t p = spawn(child_consumes_n, &n);
    /* Beside the 1504 borrowed bytes, 8 messages of 304 fit; the child
     * takes them, but their room comes back only past the borrowed
     * record. */
    unsigned puts = 0;
    for (; puts < 8; puts++) {
        unsigned char *m = msg_new(300, puts + 100);
        ck_assert_int_eq(mproc_queue_put(q, m, 300, 0), 0);
        free(m);
    }
    ck_assert(wait_qsize(q, 0, 5000));
    unsigned char *m = msg_new(300, puts + 100);
    ck_assert_int_eq(mproc_queue_put(q, m, 300, 50), MPROC_ETIMEDOUT);
    free(m);
    ck_assert_msg(test_pattern_ok(d, 1500, 1), "the borrowed message changed");
    ck_assert_int_eq(mproc_queue_release(q), 0);
    for (; (int)puts < n; puts++) {
        m = msg_new(300, puts + 100);
        ck_assert_int_eq(mproc_queue_put(q, m, 300, test_ms(5000)), 0);
        free(m);
    }
    ck_assert_int_eq(test_wait_status(p), 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_borrow_refuses_a_streamed_message_and_keeps_it)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_job j = {q, 9000, 4, test_ms(10000), NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    const void *d = NULL;
    size_t len = 0;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, test_ms(5000)),
                     MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 9000);
    ck_assert_ptr_null(d);
    ck_assert_uint_eq(qsize(q), 1);
    ck_assert_int_eq(mproc_queue_release(q), MPROC_ESTATE);
    get_pattern(q, 9000, 4, test_ms(5000));
    ck_assert_int_eq(test_wait_status(p), 0);
    mproc_queue_close(q);
}
END_TEST

/* A consumer killed while it holds a borrowed message loses it, and the
 * queue's memory is reused past it. */
static int child_borrows_and_sleeps(void *arg)
{
    _Atomic int *flag = arg;
    const void *d;
    size_t len;
    int rc = mproc_queue_borrow(g_q, &d, &len, test_ms(10000));
    atomic_store(flag, rc == 0 ? 1 : 2);
    if (rc != 0)
        return code_of(rc);
    pause();
    return 0;
}

START_TEST(queue_message_borrowed_by_a_killed_consumer_is_lost_not_wedged)
{
    mproc_queue *q = new_queue(4096, 0, false);
    _Atomic int *flag = shared_mem(4096);
    put_pattern(q, 1000, 1);
    put_pattern(q, 1000, 2);
    g_q = q;
    pid_t p = spawn(child_borrows_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    kill_and_reap(p);
    /* Not delivered again: the next is message 2. */
    ck_assert_uint_eq(qsize(q), 1);
    get_pattern(q, 1000, 2, 0);
    /* The ring is reused past the lost record: 3 KiB puts need it. */
    for (unsigned i = 0; i < 10; i++) {
        unsigned char *m = msg_new(1500, i);
        ck_assert_int_eq(mproc_queue_put(q, m, 1500, test_ms(5000)), 0);
        ck_assert_int_eq(mproc_queue_put(q, m, 1500, test_ms(5000)), 0);
        free(m);
        get_pattern(q, 1500, i, 0);
        get_pattern(q, 1500, i, 0);
    }
    munmap((void *)flag, 4096);
    mproc_queue_close(q);
}
END_TEST

/* A borrowed message at the fork stays the parent's. */
static int child_release(void *arg)
{
    (void)arg;
    int rc = mproc_queue_release(g_q);
    mproc_queue_close(g_q);
    return rc == MPROC_ESTATE ? 0 : 1;
}

START_TEST(queue_borrowed_message_stays_in_the_parent_across_fork)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 1500, 1);
    const void *d;
    size_t len;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    g_q = q;
    pid_t p = spawn(child_release, NULL);
    ck_assert_int_eq(test_wait_status(p), 0);
    /* Still held: the ring fills beside it without reaching it. */
    while (mproc_queue_put(q, "0123456789abcdef", 16, 0) == 0) {
        char b[16];
        ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
        ck_assert(test_pattern_ok(d, 1500, 1));
    }
    ck_assert(test_pattern_ok(d, 1500, 1));
    ck_assert_int_eq(mproc_queue_release(q), 0);
    mproc_queue_close(q);
}
END_TEST

/* max_consumers: how many processes may hold a borrowed message at once;
 * a dead one's place is reused. */
START_TEST(queue_max_consumers_bounds_borrowers_and_reuses_dead_places)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.max_consumers = 1;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    _Atomic int *flag = shared_mem(4096);
    put_pattern(q, 10, 1);
    put_pattern(q, 10, 2);
    g_q = q;
    pid_t p = spawn(child_borrows_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    const void *d;
    size_t len;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), MPROC_EAGAIN);
    ck_assert_uint_eq(qsize(q), 1);
    kill_and_reap(p);
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    ck_assert(test_pattern_ok(d, 10, 2));
    ck_assert_int_eq(mproc_queue_release(q), 0);
    munmap((void *)flag, 4096);
    mproc_queue_close(q);
}
END_TEST

/* Threads that each want a borrowed message use a handle each. */
START_TEST(queue_two_handles_of_one_process_each_borrow_a_message)
{
    char name[64];
    test_shm_name(name, sizeof name, "q2h");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    mproc_queue *a, *b;
    ck_assert_int_eq(mproc_queue_create(&a, name, &o), 0);
    ck_assert_int_eq(mproc_queue_open(&b, name, NULL), 0);
    put_pattern(a, 10, 1);
    put_pattern(a, 20, 2);
    const void *da, *db;
    size_t la, lb;
    ck_assert_int_eq(mproc_queue_borrow(a, &da, &la, 0), 0);
    int rc = mproc_queue_borrow(b, &db, &lb, 0);
    ck_assert_msg(rc == 0, "second handle's borrow: %s", mproc_errname(rc));
    ck_assert(test_pattern_ok(da, 10, 1));
    ck_assert(test_pattern_ok(db, 20, 2));
    const void *d3;
    size_t l3;
    ck_assert_int_eq(mproc_queue_borrow(b, &d3, &l3, 0), MPROC_EINVAL);
    /* Both hold their memory while the rest of the ring fills. */
    unsigned n = 0;
    while (mproc_queue_put(a, "0123456789abcdef", 16, 0) == 0)
        n++;
    ck_assert_uint_eq(n, (4096 - 24 - 32) / 24);
    char m[16];
    for (unsigned k = 0; k < n; k++)
        ck_assert_int_eq(mproc_queue_get(b, m, sizeof m, &lb, 0), 0);
    ck_assert(test_pattern_ok(da, 10, 1));
    ck_assert(test_pattern_ok(db, 20, 2));
    ck_assert_int_eq(mproc_queue_release(b), 0);
    ck_assert_int_eq(mproc_queue_release(a), 0);
    ck_assert_int_eq(mproc_queue_release(b), MPROC_ESTATE);
    /* Both records are free: the largest message, round the ring. */
    for (unsigned k = 0; k < 4; k++) {
        put_pattern(a, 2040, k);
        get_pattern(b, 2040, k, 0);
    }
    mproc_queue_close(b);
    mproc_queue_close(a);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* close cancels a reservation and releases a borrowed message. */
START_TEST(queue_close_cancels_a_reservation_and_releases_a_borrow)
{
    char name[64];
    test_shm_name(name, sizeof name, "qclose");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    mproc_queue *a, *b;
    ck_assert_int_eq(mproc_queue_create(&a, name, &o), 0);
    ck_assert_int_eq(mproc_queue_open(&b, name, NULL), 0);
    void *buf;
    ck_assert_int_eq(mproc_queue_reserve(b, &buf, 10, 0), 0);
    mproc_queue_close(b);
    ck_assert_int_eq(mproc_queue_put(a, "x", 1, 0), 0);
    ck_assert_int_eq(mproc_queue_empty(a), 0);
    ck_assert_int_eq(mproc_queue_open(&b, name, NULL), 0);
    const void *d;
    size_t len;
    put_pattern(a, 2000, 3);
    char c;
    ck_assert_int_eq(mproc_queue_get(a, &c, 1, &len, 0), 0);
    ck_assert_int_eq(mproc_queue_borrow(b, &d, &len, 0), 0);
    mproc_queue_close(b);
    /* The borrowed memory is free again: a 2000-byte message twice. */
    put_pattern(a, 2000, 4);
    get_pattern(a, 2000, 4, 0);
    put_pattern(a, 2000, 5);
    get_pattern(a, 2000, 5, 0);
    ck_assert_int_eq(mproc_queue_empty(a), 1);
    mproc_queue_close(a);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------- JoinableQueue */

START_TEST(jqueue_join_returns_once_every_task_is_done)
{
    mproc_queue *q = new_queue(4096, 0, true);
    ck_assert_int_eq(mproc_queue_is_joinable(q), 1);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    for (unsigned i = 0; i < 3; i++)
        put_pattern(q, 10, i);
    ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
    for (unsigned i = 0; i < 3; i++)
        get_pattern(q, 10, i, 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    ck_assert_int_eq(mproc_queue_task_done(q), MPROC_EOVERRELEASE);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    /* Tasks count per queue: a put not yet taken may be marked done. */
    put_pattern(q, 10, 9);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    ck_assert_int_eq(mproc_queue_task_done(q), MPROC_EOVERRELEASE);
    mproc_queue_close(q);
}
END_TEST

START_TEST(jqueue_join_times_out_while_tasks_are_open)
{
    mproc_queue *q = new_queue(4096, 0, true);
    put_pattern(q, 10, 1);
    get_pattern(q, 10, 1, 0);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_join(q, 200), MPROC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_ge(took, 190);
    ck_assert_int_lt(took, test_ms(3000));
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    mproc_queue_close(q);
}
END_TEST

static int child_joins(void *arg)
{
    (void)arg;
    return code_of(mproc_queue_join(g_q, test_ms(10000)));
}

START_TEST(jqueue_join_wakes_when_the_last_task_is_done)
{
    mproc_queue *q = new_queue(4096, 0, true);
    put_pattern(q, 10, 1);
    put_pattern(q, 10, 2);
    g_q = q;
    pid_t p = spawn(child_joins, NULL);
    ck_assert(test_wait_asleep(p, "futex", 5000));
    get_pattern(q, 10, 1, 0);
    get_pattern(q, 10, 2, 0);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
    mproc_queue_close(q);
}
END_TEST

START_TEST(jqueue_task_done_and_join_are_refused_on_a_plain_queue)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_pattern(q, 10, 1);
    ck_assert_int_eq(mproc_queue_task_done(q), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_task_done(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_join(NULL, 0), MPROC_EINVAL);
    mproc_queue_close(q);
    q = new_queue(4096, 0, true);
    ck_assert_int_eq(mproc_queue_join(q, -2), MPROC_EINVAL);
    mproc_queue_close(q);
}
END_TEST

/* Every way of taking a message makes a task. */
START_TEST(jqueue_every_way_of_taking_makes_a_task)
{
    mproc_queue *q = new_queue(4096, 0, true);
    for (unsigned i = 0; i < 5; i++)
        put_pattern(q, 10, i);
    unsigned char b[64];
    size_t len, lens[2], got;
    void *m;
    const void *d;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, 0), 0);
    free(m);
    ck_assert_int_eq(mproc_queue_get_batch(q, b, sizeof b, lens, 2, &got, 0),
                     0);
    ck_assert_uint_eq(got, 2);
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    ck_assert_int_eq(mproc_queue_release(q), 0);
    for (unsigned i = 0; i < 5; i++) {
        ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
        ck_assert_int_eq(mproc_queue_task_done(q), 0);
    }
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    mproc_queue_close(q);
}
END_TEST

/* A worker killed between get and task_done: join is told once per
 * handle, and does not hang. */
static int child_gets_and_sleeps(void *arg)
{
    _Atomic int *flag = arg;
    unsigned char b[64];
    size_t len;
    int rc = mproc_queue_get(g_q, b, sizeof b, &len, test_ms(10000));
    atomic_store(flag, rc == 0 ? 1 : 2);
    if (rc != 0)
        return code_of(rc);
    pause();
    return 0;
}

static int child_joins_twice(void *arg)
{
    (void)arg;
    int a = mproc_queue_join(g_q, test_ms(10000));
    int b = mproc_queue_join(g_q, 0);
    return a == MPROC_EOWNERDEAD && b == 0 ? 0 : 10 + code_of(a);
}

START_TEST(jqueue_worker_killed_before_task_done_gives_ownerdead_once)
{
    char name[64];
    test_shm_name(name, sizeof name, "jq");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.joinable = true;
    o.capacity = 4096;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    mproc_queue *other;
    ck_assert_int_eq(mproc_queue_open(&other, name, NULL), 0);
    ck_assert_int_eq(mproc_queue_is_joinable(other), 1);
    _Atomic int *flag = shared_mem(4096);
    put_pattern(q, 10, 1);
    put_pattern(q, 10, 2);
    g_q = q;
    pid_t p = spawn(child_gets_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    get_pattern(q, 10, 2, 0);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    /* The child's task is open: a join times out. */
    ck_assert_int_eq(mproc_queue_join(q, 100), MPROC_ETIMEDOUT);
    kill_and_reap(p);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_queue_join(q, test_ms(5000)), MPROC_EOWNERDEAD);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    /* Every handle is told once: the other handle, then a child of it. */
    g_q = other;
    pid_t j = spawn(child_joins_twice, NULL);
    ck_assert_int_eq(test_wait_status(j), 0);
    ck_assert_int_eq(mproc_queue_join(other, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_queue_join(other, 0), 0);
    /* Written off as done: one more task_done is one too many. */
    ck_assert_int_eq(mproc_queue_task_done(q), MPROC_EOVERRELEASE);
    munmap((void *)flag, 4096);
    mproc_queue_close(other);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* A worker that died after marking its tasks done: nothing to write off. */
static int child_gets_and_marks_done(void *arg)
{
    (void)arg;
    unsigned char b[64];
    size_t len;
    int rc = mproc_queue_get(g_q, b, sizeof b, &len, test_ms(10000));
    if (rc == 0)
        rc = mproc_queue_task_done(g_q);
    return code_of(rc);
}

START_TEST(jqueue_worker_that_finished_its_tasks_leaves_join_clean)
{
    mproc_queue *q = new_queue(4096, 0, true);
    put_pattern(q, 10, 1);
    g_q = q;
    pid_t p = spawn(child_gets_and_marks_done, NULL);
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_eq(mproc_queue_join(q, test_ms(2000)), 0);
    mproc_queue_close(q);
}
END_TEST

/* max_consumers bounds the processes that hold tasks too: a get beyond
 * it is MPROC_EAGAIN and takes nothing; a dead worker's place is reused. */
START_TEST(jqueue_max_consumers_bounds_processes_holding_tasks)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.joinable = true;
    o.max_consumers = 1;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    _Atomic int *flag = shared_mem(4096);
    put_pattern(q, 10, 1);
    put_pattern(q, 10, 2);
    g_q = q;
    pid_t p = spawn(child_gets_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    unsigned char b[64];
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), MPROC_EAGAIN);
    ck_assert_uint_eq(qsize(q), 1);
    kill_and_reap(p);
    get_pattern(q, 10, 2, 0);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, test_ms(2000)), MPROC_EOWNERDEAD);
    munmap((void *)flag, 4096);
    mproc_queue_close(q);
}
END_TEST

/* ------------------------------------------------------------------ fd */

/* Polls fd for POLLIN for up to ms: 1 when readable, 0 when not. */
static int readable_within(int fd, int64_t ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    int n = poll(&pf, 1, (int)ms);
    return n > 0 && (pf.revents & POLLIN) != 0;
}

/* Waits until fd is not readable (the helper followed the queue). */
static int unreadable_within(int fd, int64_t ms)
{
    int64_t until = test_now_ms() + ms;
    while (readable_within(fd, 0)) {
        if (test_now_ms() > until)
            return 0;
        usleep(1000);
    }
    return 1;
}

START_TEST(queue_fd_is_readable_while_a_message_waits)
{
    mproc_queue *q = new_queue(4096, 0, false);
    int fd = mproc_queue_fd(q);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(mproc_queue_fd(q), fd);
    ck_assert(!readable_within(fd, 50));
    for (unsigned round = 0; round < 20; round++) {
        put_pattern(q, 10, round);
        put_pattern(q, 10, round + 1);
        ck_assert(readable_within(fd, test_ms(2000)));
        get_pattern(q, 10, round, 0);
        /* One left: still readable. */
        ck_assert(readable_within(fd, 0));
        get_pattern(q, 10, round + 1, 0);
        ck_assert_msg(unreadable_within(fd, test_ms(2000)),
                      "round %u: the fd stays readable on an empty queue",
                      round);
    }
    /* A borrow and a batch empty it too. */
    put_pattern(q, 10, 1);
    ck_assert(readable_within(fd, test_ms(2000)));
    const void *d;
    size_t len;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    ck_assert(unreadable_within(fd, test_ms(2000)));
    ck_assert_int_eq(mproc_queue_release(q), 0);
    put_pattern(q, 10, 2);
    ck_assert(readable_within(fd, test_ms(2000)));
    unsigned char b[64];
    size_t lens[4], got;
    ck_assert_int_eq(mproc_queue_get_batch(q, b, sizeof b, lens, 4, &got, 0),
                     0);
    ck_assert(unreadable_within(fd, test_ms(2000)));
    /* Shut down: readable for good. */
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    ck_assert(readable_within(fd, test_ms(2000)));
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_fd_follows_puts_from_another_process)
{
    mproc_queue *q = new_queue(4096, 0, false);
    int fd = mproc_queue_fd(q);
    ck_assert_int_ge(fd, 0);
    put_job j = {q, 100, 5, 0, NULL};
    pid_t p = spawn(child_put, &j);
    ck_assert(readable_within(fd, test_ms(5000)));
    ck_assert_int_eq(test_wait_status(p), 0);
    get_job g = {q, 100, 5, 0};
    p = spawn(child_get, &g);
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert(unreadable_within(fd, test_ms(2000)));
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_fd_waits_in_mproc_wait_beside_a_connection)
{
    mproc_queue *q = new_queue(4096, 0, false);
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, NULL), 0);
    mproc_wait_item items[2] = {MPROC_WAIT_CONN(r), MPROC_WAIT_QUEUE(q)};
    ck_assert_int_ge(items[1].fd, 0);
    ck_assert_int_eq(mproc_wait(items, 2, 50), MPROC_ETIMEDOUT);
    put_pattern(q, 10, 1);
    ck_assert_int_eq(mproc_wait(items, 2, test_ms(5000)), 1);
    ck_assert_int_eq(items[0].ready, 0);
    ck_assert_int_ne(items[1].ready, 0);
    get_pattern(q, 10, 1, 0);
    ck_assert(unreadable_within(items[1].fd, test_ms(2000)));
    ck_assert_int_eq(mproc_conn_send(w, "c", 1, 0), 0);
    ck_assert_int_eq(mproc_wait(items, 2, test_ms(5000)), 1);
    ck_assert_int_ne(items[0].ready, 0);
    ck_assert_int_eq(items[1].ready, 0);
    mproc_conn_close(r);
    mproc_conn_close(w);
    mproc_queue_close(q);
    /* A NULL queue: an item mproc_wait refuses. */
    mproc_wait_item bad[1] = {MPROC_WAIT_QUEUE(NULL)};
    ck_assert_int_eq(bad[0].fd, MPROC_EINVAL);
    ck_assert_int_eq(mproc_wait(bad, 1, 0), MPROC_EINVAL);
}
END_TEST

/* A forked child's fd is its own: it follows the queue in the child while
 * the parent's goes on in the parent. */
static int child_uses_its_fd(void *arg)
{
    int parent_fd = *(int *)arg; /* -1: the parent has none yet */
    int fd = mproc_queue_fd(g_q);
    if (fd < 0 || fd == parent_fd)
        return 10;
    if (mproc_queue_fd(g_q) != fd)
        return 11;
    if (readable_within(fd, 0))
        return 12;
    if (mproc_queue_put(g_q, "k", 1, 0) != 0)
        return 13;
    if (!readable_within(fd, test_ms(2000)))
        return 14;
    mproc_queue_close(g_q);
    return 0;
}

START_TEST(queue_fd_of_a_forked_child_is_its_own)
{
    mproc_queue *q = new_queue(4096, 0, false);
    int fd = -1;
#if !defined(MPROC_TEST_TSAN)
    /* The child inherits a handle whose fd has its helper thread in the
     * parent only. (ThreadSanitizer cannot start a thread in a child forked
     * from a threaded parent, so there the parent makes its fd later.) */
    fd = mproc_queue_fd(q);
    ck_assert_int_ge(fd, 0);
#endif
    g_q = q;
    pid_t p = spawn(child_uses_its_fd, &fd);
    ck_assert_int_eq(test_wait_status(p), 0);
#if defined(MPROC_TEST_TSAN)
    fd = mproc_queue_fd(q);
    ck_assert_int_ge(fd, 0);
#endif
    /* The parent's fd sees the child's put and still works. */
    ck_assert(readable_within(fd, test_ms(2000)));
    char c;
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, &c, 1, &len, 0), 0);
    ck_assert(unreadable_within(fd, test_ms(2000)));
    put_pattern(q, 3, 3);
    ck_assert(readable_within(fd, test_ms(2000)));
    mproc_queue_close(q);
}
END_TEST

/* The threads of this process (a sanitizer's runtime may have some). */
static int thread_count(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)getpid());
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    return (int)sb.st_nlink - 2;
}

START_TEST(queue_close_ends_the_fd_and_its_thread)
{
    /* Once first: a sanitizer's runtime starts its own thread with the
     * process's first one. */
    mproc_queue *q = new_queue(4096, 0, false);
    ck_assert_int_ge(mproc_queue_fd(q), 0);
    mproc_queue_close(q);
    int before = thread_count();
    q = new_queue(4096, 0, false);
    int fd = mproc_queue_fd(q);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(thread_count(), before + 1);
    mproc_queue_close(q);
    ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    ck_assert_int_eq(thread_count(), before);
}
END_TEST

/* --------------------------------------------------------------- names */

static const char *g_name;

static int child_opens_and_puts(void *arg)
{
    (void)arg;
    mproc_queue *q;
    int rc = mproc_queue_open(&q, g_name, NULL);
    if (rc != 0)
        return 10 + code_of(rc);
    if (mproc_queue_capacity(q) != 8192 || mproc_queue_maxsize(q) != 7 ||
        mproc_queue_is_joinable(q) != 0 ||
        strcmp(mproc_queue_name(q), g_name) != 0)
        return 30;
    unsigned char b[100];
    test_pattern(b, sizeof b, 42);
    rc = mproc_queue_put(q, b, sizeof b, test_ms(5000));
    mproc_queue_close(q);
    return code_of(rc);
}

START_TEST(queue_named_is_opened_by_another_process)
{
    char name[64];
    g_name = test_shm_name(name, sizeof name, "qnamed");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 8000;
    o.maxsize = 7;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    ck_assert_str_eq(mproc_queue_name(q), name);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        /* Not the inherited handle: a fresh open by name. */
        _exit(child_opens_and_puts(NULL));
    }
    ck_assert_int_eq(test_wait_status(p), 0);
    get_pattern(q, 100, 42, 0);
    /* The name is taken; unlink removes it, the queue lives on. */
    mproc_queue *q2;
    ck_assert_int_eq(mproc_queue_create(&q2, name, &o), MPROC_EEXIST);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
    ck_assert_int_eq(mproc_queue_open(&q2, name, NULL), MPROC_ENOENT);
    ck_assert_int_eq(mproc_queue_unlink(name), MPROC_ENOENT);
    put_pattern(q, 5, 5);
    get_pattern(q, 5, 5, 0);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_named_joinable_and_simple_open_as_their_kind)
{
    char name[64], sname[64];
    test_shm_name(name, sizeof name, "qjoin");
    test_shm_name(sname, sizeof sname, "qsimple");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.joinable = true;
    o.capacity = 4096;
    mproc_queue *q, *q2;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    ck_assert_int_eq(mproc_queue_open(&q2, name, NULL), 0);
    ck_assert_int_eq(mproc_queue_is_joinable(q2), 1);
    put_pattern(q2, 10, 1);
    get_pattern(q, 10, 1, 0);
    ck_assert_int_eq(mproc_queue_join(q2, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q2, 0), 0);
    mproc_queue_close(q2);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
    /* A SimpleQueue is a default Queue: opened as one, unlinked as one. */
    mproc_simple_queue *s, *s2;
    ck_assert_int_eq(mproc_simple_queue_create(&s, sname, 0), 0);
    ck_assert_int_eq(mproc_queue_open(&q, sname, NULL), 0);
    ck_assert_uint_eq(mproc_queue_capacity(q), MPROC_QUEUE_CAPACITY_DEFAULT);
    ck_assert_uint_eq(mproc_queue_maxsize(q), 0);
    ck_assert_int_eq(mproc_queue_is_joinable(q), 0);
    ck_assert_int_eq(mproc_simple_queue_open(&s2, sname), 0);
    ck_assert_int_eq(mproc_simple_queue_put(s2, "abc", 3, 0), 0);
    char b[8];
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    ck_assert_uint_eq(len, 3);
    mproc_simple_queue_close(s2);
    mproc_queue_close(q);
    mproc_simple_queue_close(s);
    ck_assert_int_eq(mproc_queue_unlink(sname), 0);
}
END_TEST

START_TEST(queue_name_of_another_kind_is_refused)
{
    char name[64];
    test_shm_name(name, sizeof name, "alock");
    mproc_lock *l;
    ck_assert_int_eq(mproc_lock_create(&l, name, NULL), 0);
    mproc_queue *q = (mproc_queue *)&q;
    ck_assert_int_eq(mproc_queue_open(&q, name, NULL), MPROC_EBADOBJ);
    ck_assert_ptr_eq(q, (mproc_queue *)&q);
    mproc_simple_queue *s;
    ck_assert_int_eq(mproc_simple_queue_open(&s, name), MPROC_EBADOBJ);
    /* Not a queue: nothing is removed. */
    ck_assert_int_eq(mproc_queue_unlink(name), MPROC_EBADOBJ);
    mproc_lock *l2;
    ck_assert_int_eq(mproc_lock_open(&l2, name, NULL), 0);
    mproc_lock_close(l2);
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), MPROC_EEXIST);
    mproc_lock_close(l);
    ck_assert_int_eq(mproc_lock_unlink(name), 0);
}
END_TEST

START_TEST(queue_bad_names_are_refused_and_leave_nothing)
{
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, "noslash", NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_create(&q, "", NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_create(&q, "/a/b", NULL), MPROC_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(mproc_queue_create(&q, longname, NULL),
                     MPROC_ENAMETOOLONG);
    ck_assert_int_eq(mproc_queue_open(&q, "noslash", NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_open(&q, NULL, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_unlink(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_unlink("noslash"), MPROC_EINVAL);
    char name[64];
    test_shm_name(name, sizeof name, "missing");
    ck_assert_int_eq(mproc_queue_open(&q, name, NULL), MPROC_ENOENT);
    ck_assert_int_eq(mproc_queue_unlink(name), MPROC_ENOENT);
    /* A failed create (bad options) leaves no name. */
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.mode = 01000;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_open(&q, name, NULL), MPROC_ENOENT);
}
END_TEST

START_TEST(queue_named_mode_sets_the_file_permissions)
{
    char name[64], path[128];
    test_shm_name(name, sizeof name, "qmode");
    snprintf(path, sizeof path, "/dev/shm%s", name);
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq((int)(sb.st_mode & 0777), 0600);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
    o.mode = 0640;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq((int)(sb.st_mode & 0777), 0640);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------------ bad input */

START_TEST(queue_create_refuses_absurd_options)
{
    mproc_queue *q = (mproc_queue *)&q;
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    ck_assert_int_eq(mproc_queue_create(NULL, NULL, &o), MPROC_EINVAL);
    o.capacity = MPROC_QUEUE_CAPACITY_MAX + 1;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    o.capacity = SIZE_MAX;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    o = (mproc_queue_opts)MPROC_QUEUE_OPTS_INIT;
    o.maxsize = MPROC_QUEUE_MAXSIZE_MAX + 1;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    o.maxsize = SIZE_MAX;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    o = (mproc_queue_opts)MPROC_QUEUE_OPTS_INIT;
    o.max_consumers = 4097;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    o.max_consumers = UINT32_MAX;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    o = (mproc_queue_opts)MPROC_QUEUE_OPTS_INIT;
    o.mode = 01000;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), MPROC_EINVAL);
    ck_assert_ptr_eq(q, (mproc_queue *)&q);
    /* The largest allowed values work. */
    o = (mproc_queue_opts)MPROC_QUEUE_OPTS_INIT;
    o.maxsize = MPROC_QUEUE_MAXSIZE_MAX;
    o.max_consumers = 4096;
    o.capacity = 4096;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    ck_assert_uint_eq(mproc_queue_maxsize(q), MPROC_QUEUE_MAXSIZE_MAX);
    put_pattern(q, 10, 1);
    get_pattern(q, 10, 1, 0);
    mproc_queue_close(q);
    /* NULL options: the defaults. */
    ck_assert_int_eq(mproc_queue_create(&q, NULL, NULL), 0);
    ck_assert_uint_eq(mproc_queue_capacity(q), MPROC_QUEUE_CAPACITY_DEFAULT);
    mproc_queue_close(q);
}
END_TEST

START_TEST(queue_calls_refuse_null_and_bad_arguments)
{
    mproc_queue *q = new_queue(4096, 0, false);
    unsigned char b[16];
    size_t len, lens[2], got;
    void *m;
    const void *d;
    void *buf;
    mproc_queue_msg ms[1] = {{NULL, 5}};
    /* NULL handle. */
    ck_assert_int_eq(mproc_queue_put(NULL, b, 1, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_put_batch(NULL, ms, 1, &got, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get(NULL, b, 1, &len, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_alloc(NULL, &m, &len, 9, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_batch(NULL, b, 1, lens, 2, &got, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_reserve(NULL, &buf, 1, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_commit(NULL, 1), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_cancel(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_borrow(NULL, &d, &len, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_release(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_qsize(NULL, &len), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_empty(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_full(NULL), MPROC_EINVAL);
    ck_assert_uint_eq(mproc_queue_max_inplace(NULL), 0);
    ck_assert_uint_eq(mproc_queue_capacity(NULL), 0);
    ck_assert_uint_eq(mproc_queue_maxsize(NULL), 0);
    ck_assert_int_eq(mproc_queue_is_joinable(NULL), MPROC_EINVAL);
    ck_assert_ptr_null(mproc_queue_name(NULL));
    ck_assert_int_eq(mproc_queue_shutdown(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_is_shutdown(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_fd(NULL), MPROC_EINVAL);
    mproc_queue_close(NULL);
    /* NULL arguments. */
    ck_assert_int_eq(mproc_queue_put(q, NULL, 1, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_put_batch(q, NULL, 1, &got, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 1, &got, 0), MPROC_EINVAL);
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(mproc_queue_get(q, NULL, 1, &len, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get(q, b, 1, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_alloc(q, NULL, &len, 9, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, NULL, 9, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_batch(q, NULL, 1, lens, 2, &got, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 1, NULL, 2, &got, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 1, lens, 2, NULL, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 1, lens, 0, &got, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_reserve(q, NULL, 1, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_borrow(q, NULL, &len, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_borrow(q, &d, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_qsize(q, NULL), MPROC_EINVAL);
    /* Bad timeouts. */
    ck_assert_int_eq(mproc_queue_put(q, b, 1, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_put(q, b, 1, INT64_MIN), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get(q, b, 1, &len, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_alloc(q, &m, &len, 9, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_get_batch(q, b, 1, lens, 2, &got, -2),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_reserve(q, &buf, 1, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, -2), MPROC_EINVAL);
    ms[0].data = "x";
    ck_assert_int_eq(mproc_queue_put_batch(q, ms, 1, &got, -2), MPROC_EINVAL);
    /* Nothing was put by any of it. */
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    /* Misuse of release without a borrow. */
    ck_assert_int_eq(mproc_queue_release(q), MPROC_ESTATE);
    mproc_queue_close(q);
}
END_TEST

START_TEST(simple_queue_offers_put_get_and_empty)
{
    mproc_simple_queue *s;
    ck_assert_int_eq(mproc_simple_queue_create(NULL, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_simple_queue_create(&s, NULL, 4096), 0);
    ck_assert_int_eq(mproc_simple_queue_empty(s), 1);
    unsigned char *m = msg_new(2040, 1);
    ck_assert_int_eq(mproc_simple_queue_put(s, m, 2040, 0), 0);
    ck_assert_int_eq(mproc_simple_queue_empty(s), 0);
    ck_assert_int_eq(mproc_simple_queue_put(s, m, 2040, 0), 0);
    /* put waits only while the memory is full. */
    ck_assert_int_eq(mproc_simple_queue_put(s, m, 2040, 0), MPROC_ETIMEDOUT);
    unsigned char b[2040];
    size_t len;
    ck_assert_int_eq(mproc_simple_queue_get(s, b, 10, &len, 0), MPROC_EMSGSIZE);
    ck_assert_uint_eq(len, 2040);
    for (unsigned i = 0; i < 2; i++) {
        ck_assert_int_eq(mproc_simple_queue_get(s, b, sizeof b, &len, 0), 0);
        ck_assert(test_pattern_ok(b, 2040, 1));
    }
    ck_assert_int_eq(mproc_simple_queue_empty(s), 1);
    for (unsigned i = 0; i < 200; i++)
        ck_assert_int_eq(mproc_simple_queue_put(s, "ab", 2, 0), 0);
    void *a;
    ck_assert_int_eq(mproc_simple_queue_get_alloc(s, &a, &len, 0), 0);
    ck_assert_uint_eq(len, 2);
    ck_assert_str_eq(a, "ab");
    free(a);
    ck_assert_int_eq(mproc_simple_queue_put(NULL, "a", 1, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_simple_queue_get(NULL, b, 1, &len, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_simple_queue_get_alloc(NULL, &a, &len, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_simple_queue_empty(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_simple_queue_open(NULL, "/x"), MPROC_EINVAL);
    mproc_simple_queue_close(NULL);
    free(m);
    mproc_simple_queue_close(s);
}
END_TEST

/* ------------------------------------------------- a scribbled-on file */

/* The shared layout, as src/queue.c's static asserts fix it: offsets from
 * the start of the file (a 64-byte region header, then the queue's). */
#define R_VERSION 12u /* the region header's version and kind */
#define R_KIND 16u
#define F_PAYLOAD 64u
#define F_MAGIC (F_PAYLOAD + 0u)
#define F_VERSION (F_PAYLOAD + 4u)
#define F_CAP (F_PAYLOAD + 8u)
#define F_MAXSIZE (F_PAYLOAD + 12u)
#define F_FLAGS (F_PAYLOAD + 16u)
#define F_NSLOTS (F_PAYLOAD + 20u)
#define F_DATA_OFF (F_PAYLOAD + 24u)
#define F_HEAD (F_PAYLOAD + 128u)
#define F_CLOSED (F_PAYLOAD + 140u)
#define F_PLOCK (F_PAYLOAD + 256u)
#define F_RD (F_PAYLOAD + 384u)
#define F_CLOCK (F_PAYLOAD + 512u)
#define F_TAIL (F_PAYLOAD + 640u)
#define F_SLOTS (F_PAYLOAD + 1024u)
#define SLOT_SIZE 32u
#define SLOT_PID 0u
#define SLOT_BORROW 16u
#define SLOT_OUTSTANDING 24u
#define REC_KIND 4u  /* byte 4 of a record header; bytes 0..3: its length */
#define REC_STATE 5u /* byte 5: 1 while borrowed */

/* The file of a named queue, mapped shared (as another process would). */
typedef struct qfile {
    unsigned char *p;
    size_t size;
} qfile;

static qfile qfile_map(const char *name)
{
    char path[128];
    snprintf(path, sizeof path, "/dev/shm%s", name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    struct stat sb;
    ck_assert_int_eq(fstat(fd, &sb), 0);
    qfile f = {mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE,
                    MAP_SHARED, fd, 0),
               (size_t)sb.st_size};
    close(fd);
    ck_assert_ptr_ne(f.p, MAP_FAILED);
    return f;
}

static uint32_t rd32(const qfile *f, size_t off)
{
    uint32_t v;
    memcpy(&v, f->p + off, 4);
    return v;
}

static uint64_t rd64(const qfile *f, size_t off)
{
    uint64_t v;
    memcpy(&v, f->p + off, 8);
    return v;
}

static void wr32(const qfile *f, size_t off, uint32_t v)
{
    memcpy(f->p + off, &v, 4);
}

static void wr64(const qfile *f, size_t off, uint64_t v)
{
    memcpy(f->p + off, &v, 8);
}

/* The file offset of the record at ring position pos. */
static size_t rec_off(const qfile *f, uint32_t pos)
{
    return F_PAYLOAD + (size_t)rd64(f, F_DATA_OFF) +
           (pos & (rd32(f, F_CAP) - 1u));
}

static mproc_queue *named_queue(const char *name, size_t capacity)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = capacity;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    return q;
}

typedef struct field_case {
    size_t off;
    unsigned width; /* 4 or 8 */
    uint64_t value;
    const char *what;
} field_case;

START_TEST(queue_open_refuses_a_scribbled_header)
{
    char name[64];
    test_shm_name(name, sizeof name, "qscrib");
    mproc_queue *q = named_queue(name, 4096);
    qfile f = qfile_map(name);
    uint64_t off = rd64(&f, F_DATA_OFF);
    const field_case cases[] = {
        {F_MAGIC, 4, 0, "magic 0"},
        {F_MAGIC, 4, 0x12345678, "another magic"},
        {F_VERSION, 4, 3, "version 3"},
        {F_VERSION, 4, 0, "version 0"},
        {F_VERSION, 4, 1, "version 1 (an older layout)"},
        {F_CAP, 4, 3000, "capacity not a power of two"},
        {F_CAP, 4, 2048, "capacity below the minimum"},
        {F_CAP, 4, 0, "capacity 0"},
        {F_CAP, 4, 8192, "capacity beyond the file"},
        {F_CAP, 4, 0x80000000u, "capacity above the maximum"},
        {F_MAXSIZE, 4, 0x80000000u, "maxsize above the maximum"},
        {F_FLAGS, 4, 0x4, "unknown flag"},
        {F_FLAGS, 4, 0x1, "joinable flag on a Queue"},
        {F_NSLOTS, 4, 0, "no slots"},
        {F_NSLOTS, 4, 4097, "too many slots"},
        {F_NSLOTS, 4, 1000, "slots beyond the data offset"},
        {F_DATA_OFF, 8, off + 8, "data offset moved"},
        {F_DATA_OFF, 8, 0, "data offset 0"},
        {F_DATA_OFF, 8, UINT64_MAX - 4095, "data offset huge"},
        {R_VERSION, 4, 2, "region version 2"},
        {R_KIND, 4, 4, "region of a Lock"},
        {R_KIND, 4, 63, "region of an unknown kind"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const field_case *c = &cases[i];
        uint64_t saved = c->width == 4 ? rd32(&f, c->off) : rd64(&f, c->off);
        if (c->width == 4)
            wr32(&f, c->off, (uint32_t)c->value);
        else
            wr64(&f, c->off, c->value);
        mproc_queue *o = (mproc_queue *)&o;
        int rc = mproc_queue_open(&o, name, NULL);
        ck_assert_msg(rc == MPROC_EPROTO || rc == MPROC_EBADOBJ ||
                          rc == MPROC_EVERSION,
                      "%s: open gave %s", c->what, mproc_errname(rc));
        ck_assert_ptr_eq(o, (mproc_queue *)&o);
        if (c->width == 4)
            wr32(&f, c->off, (uint32_t)saved);
        else
            wr64(&f, c->off, saved);
        /* Restored: it opens, so the refusal was the field's. */
        ck_assert_int_eq(mproc_queue_open(&o, name, NULL), 0);
        mproc_queue_close(o);
    }
    /* The creator's handle took its constants once: it goes on. */
    wr32(&f, F_CAP, 1u << 29);
    put_pattern(q, 100, 1);
    get_pattern(q, 100, 1, 0);
    wr32(&f, F_CAP, 4096);
    munmap(f.p, f.size);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* A shared word scribbled on while the queue is open: the calls say
 * MPROC_EPROTO (or, for a producer, wait and time out), never crash,
 * never deliver bytes that were not put, never touch memory outside the
 * queue (the asan preset runs this too). */
typedef struct word_case {
    size_t off;
    int64_t delta; /* added to the low 32 bits (a position) */
    bool put_eproto, get_eproto;
    const char *what;
} word_case;

START_TEST(queue_calls_report_scribbled_positions_as_eproto)
{
    char name[64];
    test_shm_name(name, sizeof name, "qwords");
    const word_case cases[] = {
        {F_HEAD, 4096 + 8, true, true, "head a ring ahead"},
        {F_HEAD, 3, true, true, "head misaligned"},
        {F_HEAD, -48 - 8, true, true, "head behind rd"},
        {F_RD, 8, false, true, "rd past head"},
        {F_RD, 3, false, true, "rd misaligned"},
        {F_RD, -4096, false, true, "rd a ring behind"},
        {F_TAIL, 8, true, false, "tail past rd"},
        {F_TAIL, 5, true, false, "tail misaligned"},
        {F_TAIL, -4096 - 8, true, false, "tail more than a ring behind"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const word_case *c = &cases[i];
        mproc_queue *q = named_queue(name, 4096);
        /* Some traffic first, so that positions are not all 0. */
        for (unsigned k = 0; k < 10; k++) {
            put_pattern(q, 500, k);
            get_pattern(q, 500, k, 0);
        }
        put_pattern(q, 40, 99);
        qfile f = qfile_map(name);
        uint64_t w = rd64(&f, c->off);
        wr64(&f, c->off,
             (w & ~(uint64_t)0xffffffffu) |
                 (uint32_t)((uint32_t)w + (uint32_t)c->delta));
        unsigned char b[4096];
        size_t len = 0;
        /* A producer goes by the tail it saw last while that shows room
         * (it reads no consumer's line on such a put), so a scribbled tail
         * is found once the room it knew of is used up: the first put
         * that fails must say MPROC_EPROTO, never wait or write past the
         * ring. */
        memset(b, 0, 16);
        int rc = 0;
        unsigned puts = 0;
        if (c->put_eproto) {
            while (puts < 1000 && (rc = mproc_queue_put(q, b, 16, 50)) == 0)
                puts++;
            ck_assert_msg(rc == MPROC_EPROTO, "%s: put %u gave %s", c->what,
                          puts, mproc_errname(rc));
        } else {
            rc = mproc_queue_put(q, b, 16, 50);
            ck_assert_msg(rc == MPROC_EPROTO || rc == 0, "%s: put gave %s",
                          c->what, mproc_errname(rc));
        }
        if (c->get_eproto) {
            for (unsigned k = 0; k < 2; k++) {
                rc = mproc_queue_get(q, b, sizeof b, &len, 50);
                ck_assert_msg(rc == MPROC_EPROTO,
                              "%s: get %u gave %s (%zu bytes)", c->what, k,
                              mproc_errname(rc), len);
            }
            const void *d;
            rc = mproc_queue_borrow(q, &d, &len, 50);
            ck_assert_msg(rc == MPROC_EPROTO, "%s: borrow gave %s", c->what,
                          mproc_errname(rc));
        } else {
            /* What is there is the message put: nothing else. */
            rc = mproc_queue_get(q, b, sizeof b, &len, 50);
            ck_assert_msg(rc == 0 && len == 40 && test_pattern_ok(b, 40, 99),
                          "%s: get gave %s (%zu bytes)", c->what,
                          mproc_errname(rc), len);
            /* Then the puts that went before the scribble was found. */
            for (unsigned k = 0; k < puts; k++) {
                rc = mproc_queue_get(q, b, sizeof b, &len, 50);
                ck_assert_msg(rc == 0 && len == 16, "%s: put %u: get gave %s",
                              c->what, k, mproc_errname(rc));
            }
        }
        size_t n;
        ck_assert_int_eq(mproc_queue_qsize(q, &n), 0);
        munmap(f.p, f.size);
        mproc_queue_close(q);
        ck_assert_int_eq(mproc_queue_unlink(name), 0);
    }
}
END_TEST

/* A record header scribbled on: get says MPROC_EPROTO, every time. */
typedef struct rec_case {
    unsigned kind;
    uint32_t len; /* UINT32_MAX: leave it */
    const char *what;
} rec_case;

START_TEST(queue_get_reports_a_scribbled_record_as_eproto)
{
    char name[64];
    test_shm_name(name, sizeof name, "qrec");
    const rec_case cases[] = {
        {0, UINT32_MAX, "kind 0"},
        {99, UINT32_MAX, "kind 99"},
        {1, 4096, "length of the whole ring"},
        {1, 0xffffffffu - 3, "length near 2^32"},
        {1, 200, "length past head"},
        {3, 4, "streamed first piece shorter than its total"},
        {3, 40, "streamed first piece with a wrong total"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const rec_case *c = &cases[i];
        mproc_queue *q = named_queue(name, 4096);
        for (unsigned k = 0; k < 7; k++) {
            put_pattern(q, 500, k);
            get_pattern(q, 500, k, 0);
        }
        put_pattern(q, 40, 99);
        qfile f = qfile_map(name);
        size_t r = rec_off(&f, (uint32_t)rd64(&f, F_RD));
        f.p[r + REC_KIND] = (unsigned char)c->kind;
        if (c->len != UINT32_MAX)
            wr32(&f, r, c->len);
        unsigned char b[8192];
        size_t len = 0;
        for (unsigned k = 0; k < 2; k++) {
            int rc = mproc_queue_get(q, b, sizeof b, &len, 50);
            ck_assert_msg(rc == MPROC_EPROTO, "%s: get %u gave %s (%zu bytes)",
                          c->what, k, mproc_errname(rc), len);
        }
        void *m = NULL;
        int rc = mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, 0);
        ck_assert_msg(rc == MPROC_EPROTO, "%s: get_alloc gave %s", c->what,
                      mproc_errname(rc));
        ck_assert_ptr_null(m);
        size_t lens[2], got;
        rc = mproc_queue_get_batch(q, b, sizeof b, lens, 2, &got, 0);
        ck_assert_msg(rc == MPROC_EPROTO, "%s: get_batch gave %s", c->what,
                      mproc_errname(rc));
        munmap(f.p, f.size);
        mproc_queue_close(q);
        ck_assert_int_eq(mproc_queue_unlink(name), 0);
    }
}
END_TEST

/* Slots scribbled on (a borrowed position anywhere, tasks by the billion,
 * an owner long dead): the ring is never written outside a record and
 * the queue goes on. */
START_TEST(queue_survives_scribbled_consumer_slots)
{
    char name[64];
    test_shm_name(name, sizeof name, "qslots");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.joinable = true;
    o.max_consumers = 4;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    qfile f = qfile_map(name);
    /* Slots owned by a pid that does not exist (above PID_MAX_LIMIT),
     * claiming borrowed records at odd places and open tasks. */
    for (unsigned i = 0; i < 4; i++) {
        size_t s = F_SLOTS + i * SLOT_SIZE;
        wr32(&f, s + SLOT_PID, 0x7ffffff0u + i);
        wr64(&f, s + SLOT_BORROW,
             i == 0   ? 3
             : i == 1 ? 0xfffffff9u
             : i == 2 ? 4096 + 13
                      : 64);
        wr32(&f, s + SLOT_OUTSTANDING, i == 3 ? 0xffffffffu : 5);
    }
    /* Messages in the ring, so that a wrong write would show. */
    for (unsigned k = 0; k < 6; k++)
        put_pattern(q, 500, k);
    const void *d;
    size_t len;
    /* A borrow needs a slot: the dead ones are reaped. */
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    ck_assert(test_pattern_ok(d, 500, 0));
    ck_assert_int_eq(mproc_queue_release(q), 0);
    for (unsigned k = 1; k < 6; k++)
        get_pattern(q, 500, k, 0);
    /* Write-offs never exceed the tasks there are. */
    int rc = mproc_queue_join(q, test_ms(2000));
    ck_assert_msg(rc == 0 || rc == MPROC_EOWNERDEAD || rc == MPROC_ETIMEDOUT,
                  "join: %s", mproc_errname(rc));
    /* The ring works across its whole length. */
    for (unsigned k = 0; k < 20; k++) {
        put_pattern(q, 1500, k);
        get_pattern(q, 1500, k, 0);
    }
    munmap(f.p, f.size);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* The producers' lock word names a task that does not exist: the next
 * producer takes it over; made unrecoverable: MPROC_EPROTO. */
START_TEST(queue_lock_words_scribbled_on_are_recovered_or_refused)
{
    char name[64];
    test_shm_name(name, sizeof name, "qlocks");
    mproc_queue *q = named_queue(name, 4096);
    qfile f = qfile_map(name);
    /* A tid above PID_MAX_LIMIT (2^22) names no task. */
    wr32(&f, F_PLOCK, 0x3ffff0u + (1u << 22));
    ck_assert_int_eq(mproc_queue_put(q, "a", 1, test_ms(3000)), 0);
    wr32(&f, F_CLOCK, 0x3ffff0u + (1u << 22));
    char c;
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, &c, 1, &len, test_ms(3000)), 0);
    ck_assert_int_eq(c, 'a');
    wr32(&f, F_PLOCK, 0x3fffffffu);
    ck_assert_int_eq(mproc_queue_put(q, "b", 1, 100), MPROC_EPROTO);
    wr32(&f, F_CLOCK, 0x3fffffffu);
    ck_assert_int_eq(mproc_queue_get(q, &c, 1, &len, 100), MPROC_EPROTO);
    munmap(f.p, f.size);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* The slot of process pid in a queue file: its offset, or 0. */
static size_t slot_of(const qfile *f, pid_t pid)
{
    uint32_t n = rd32(f, F_NSLOTS);
    for (uint32_t i = 0; i < n; i++) {
        size_t at = F_SLOTS + i * SLOT_SIZE;
        if (rd32(f, at + SLOT_PID) == (uint32_t)pid)
            return at;
    }
    return 0;
}

/* A borrower killed inside its release, after giving up its claim and
 * before unmarking the record, leaves a mark nobody claims: it stops no
 * one. */
START_TEST(queue_borrower_killed_inside_its_release_wedges_no_one)
{
    char name[64];
    test_shm_name(name, sizeof name, "qrel");
    mproc_queue *q = named_queue(name, 4096);
    _Atomic int *flag = shared_mem(4096);
    put_pattern(q, 1000, 1);
    g_q = q;
    pid_t p = spawn(child_borrows_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    qfile f = qfile_map(name);
    size_t sl = slot_of(&f, p);
    ck_assert_uint_ne(sl, 0);
    ck_assert_uint_ne(rd64(&f, sl + SLOT_BORROW), UINT64_MAX);
    wr64(&f, sl + SLOT_BORROW, UINT64_MAX); /* the release's first step */
    kill_and_reap(p);
    for (unsigned k = 0; k < 10; k++) {
        unsigned char *m = msg_new(1500, k);
        int rc = mproc_queue_put(q, m, 1500, test_ms(2000));
        ck_assert_msg(rc == 0, "put %u: %s", k, mproc_errname(rc));
        free(m);
        get_pattern(q, 1500, k, 0);
    }
    munmap(f.p, f.size);
    munmap((void *)flag, 4096);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* A consumer killed inside a borrow, after naming the record in its slot
 * and before taking it, leaves the record to the next consumer and a
 * stale claim in its slot: settling the dead slot later frees nothing
 * another consumer holds. */
static int child_borrows_releases_and_sleeps(void *arg)
{
    _Atomic int *flag = arg;
    const void *d;
    size_t len;
    int rc = mproc_queue_borrow(g_q, &d, &len, test_ms(10000));
    if (rc == 0)
        rc = mproc_queue_release(g_q);
    atomic_store(flag, rc == 0 ? 1 : 2);
    if (rc != 0)
        return code_of(rc);
    pause();
    return 0;
}

START_TEST(queue_dead_borrowers_stale_claim_frees_no_one_elses_message)
{
    char name[64];
    test_shm_name(name, sizeof name, "qclaim");
    mproc_queue *q = named_queue(name, 4096);
    _Atomic int *flag = shared_mem(4096);
    put_pattern(q, 100, 1);
    put_pattern(q, 1500, 2);
    g_q = q;
    pid_t p = spawn(child_borrows_releases_and_sleeps, (void *)flag);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(flag) == 0 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(flag), 1);
    qfile f = qfile_map(name);
    size_t sl = slot_of(&f, p);
    ck_assert_uint_ne(sl, 0);
    /* Message 2's record, still in the queue, named as the child's. */
    wr64(&f, sl + SLOT_BORROW, (uint32_t)rd64(&f, F_RD));
    kill_and_reap(p);
    const void *d;
    size_t len;
    ck_assert_int_eq(mproc_queue_borrow(q, &d, &len, 0), 0);
    ck_assert_uint_eq(len, 1500);
    ck_assert(test_pattern_ok(d, 1500, 2));
    /* Producers short of room settle the dead slot; the ring fills up to
     * our borrowed record and never over it. */
    for (unsigned round = 0; round < 4; round++) {
        unsigned n = 0;
        while (mproc_queue_put(q, "0123456789abcdef", 16, 20) == 0)
            n++;
        ck_assert_msg(test_pattern_ok(d, 1500, 2),
                      "round %u: the borrowed message was written over", round);
        char b[16];
        for (unsigned i = 0; i < n; i++)
            ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    }
    ck_assert_int_eq(mproc_queue_release(q), 0);
    /* The whole ring is free again: the largest message, round it. */
    for (unsigned k = 0; k < 4; k++) {
        put_pattern(q, 2040, k);
        get_pattern(q, 2040, k, 0);
    }
    munmap(f.p, f.size);
    munmap((void *)flag, 4096);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* Whether thread tid of this process sleeps (state S) within ms. */
static int thread_sleeps(int tid, int64_t ms)
{
    int64_t until = test_now_ms() + test_ms(ms);
    char path[96], buf[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)getpid(), tid);
    for (;;) {
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        if (rp != NULL && rp[1] == ' ' && rp[2] == 'S')
            return 1;
        if (test_now_ms() > until)
            return 0;
        usleep(1000);
    }
}

/* Waits until every thread of this process but the caller sleeps (the
 * queue's fd helper, and a sanitizer's own thread if any), up to ms. */
static int helpers_asleep(int64_t ms)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)getpid());
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int ok = 1;
    while ((e = readdir(d)) != NULL) {
        int tid = atoi(e->d_name);
        if (tid > 0 && tid != (int)getpid() && !thread_sleeps(tid, ms))
            ok = 0;
    }
    closedir(d);
    return ok;
}

/* A producer killed between publishing a message and waking the sleepers
 * (or a consumer between taking the last message and waking): the fd
 * still follows the queue, within a slice of its helper's sleep. */
START_TEST(queue_fd_follows_a_change_whose_wake_up_never_came)
{
    char name[64];
    test_shm_name(name, sizeof name, "qfdwake");
    mproc_queue *q = named_queue(name, 4096);
    int fd = mproc_queue_fd(q);
    ck_assert_int_ge(fd, 0);
    ck_assert(!readable_within(fd, 20));
    ck_assert(helpers_asleep(2000));
    /* A put's publish without its wake-up: a record, then head. */
    qfile f = qfile_map(name);
    uint64_t h = rd64(&f, F_HEAD);
    size_t r = rec_off(&f, (uint32_t)h);
    wr32(&f, r, 5);
    f.p[r + REC_KIND] = 1;
    f.p[r + REC_STATE] = 0;
    memcpy(f.p + r + 8, "hello", 5);
    __atomic_store_n((uint64_t *)(void *)(f.p + F_HEAD),
                     h + ((uint64_t)1 << 32) + 16, __ATOMIC_SEQ_CST);
    ck_assert_msg(readable_within(fd, test_ms(3000)),
                  "the fd missed a message published without a wake-up");
    ck_assert(helpers_asleep(2000));
    /* A get's take without its wake-up. */
    uint64_t rdw = rd64(&f, F_RD);
    __atomic_store_n((uint64_t *)(void *)(f.p + F_RD),
                     rdw + ((uint64_t)1 << 32) + 16, __ATOMIC_SEQ_CST);
    ck_assert_msg(unreadable_within(fd, test_ms(3000)),
                  "the fd stays readable on a queue emptied without a "
                  "wake-up");
    /* The queue goes on. */
    put_pattern(q, 30, 1);
    ck_assert(readable_within(fd, test_ms(2000)));
    get_pattern(q, 30, 1, 0);
    munmap(f.p, f.size);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* A consumer that looked at the shutdown flag just before a shutdown, and
 * slept after its wake-up went by (shutdown wakes, but changes no word the
 * sleeper sleeps on): it still sees the shutdown, within a slice of its
 * sleep, not at its timeout. Here: the flag set with no wake-up at all. */
START_TEST(queue_get_asleep_sees_a_shutdown_whose_wake_up_it_missed)
{
    char name[64];
    test_shm_name(name, sizeof name, "qmissed");
    mproc_queue *q = named_queue(name, 4096);
    get_job g = {q, 0, 0, test_ms(10000)};
    pid_t p = spawn(child_get, &g);
    ck_assert(test_wait_asleep(p, "futex", 5000));
    qfile f = qfile_map(name);
    __atomic_store_n((uint32_t *)(void *)(f.p + F_CLOSED), 1u,
                     __ATOMIC_SEQ_CST);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(test_wait_status(p), code_of(MPROC_ECLOSED));
    ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
    ck_assert_int_eq(mproc_queue_is_shutdown(q), 1);
    munmap(f.p, f.size);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

/* ---------------------------------------------------- killed mid-call */

/* A consumer killed inside a streamed message loses it; the next
 * consumer goes on with the next message. */
static int child_reads_a_stream_slowly(void *arg)
{
    (void)arg;
    unsigned char *b = malloc(100000);
    size_t len;
    if (b == NULL)
        return 20;
    /* Times out inside the message: holds it half read. */
    int rc = mproc_queue_get(g_q, b, 100000, &len, 200);
    if (rc != MPROC_ETIMEDOUT)
        return 10 + code_of(rc);
    pause();
    return 0;
}

START_TEST(queue_consumer_killed_inside_a_streamed_message_loses_only_it)
{
    mproc_queue *q = new_queue(4096, 0, false);
    g_q = q;
    put_job j = {q, 100000, 3, test_ms(20000), NULL};
    pid_t prod = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    ck_assert(test_wait_asleep(prod, "futex", 5000));
    kill(prod, SIGSTOP);
    pid_t cons = spawn(child_reads_a_stream_slowly, NULL);
    ck_assert(wait_qsize(q, 0, 5000));
    ck_assert(test_wait_asleep(cons, "pause", 5000) ||
              test_wait_asleep(cons, "sigsuspend", 100) ||
              test_wait_asleep(cons, "do_sys_pause", 100));
    kill_and_reap(cons);
    kill(prod, SIGCONT);
    /* The producer finishes its message while a consumer drops it. */
    unsigned char *b = malloc(100000);
    ck_assert_ptr_nonnull(b);
    int code = -1;
    int64_t until = test_now_ms() + test_ms(10000);
    while (code < 0 && test_now_ms() < until) {
        size_t len;
        int rc = mproc_queue_get(q, b, 100000, &len, 20);
        ck_assert_msg(rc == MPROC_ETIMEDOUT, "got %s (%zu bytes)",
                      mproc_errname(rc), len);
        int st;
        if (waitpid(prod, &st, WNOHANG) == prod)
            code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    }
    ck_assert_int_eq(code, 0);
    free(b);
    /* The next message comes whole. */
    put_pattern(q, 77, 4);
    get_pattern(q, 77, 4, test_ms(5000));
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    mproc_queue_close(q);
}
END_TEST

/* A producer killed inside a streamed message: no part of it is ever
 * delivered, and the producers' side is free again. */
START_TEST(queue_producer_killed_inside_a_streamed_message_delivers_none_of_it)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_job j = {q, 100000, 3, test_ms(20000), NULL};
    pid_t prod = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    ck_assert(test_wait_asleep(prod, "futex", 5000));
    kill_and_reap(prod);
    put_pattern(q, 0, 0); /* waits for the dead producer's lock */
    unsigned char *b = malloc(100000);
    ck_assert_ptr_nonnull(b);
    size_t len = 99;
    ck_assert_int_eq(mproc_queue_get(q, b, 100000, &len, test_ms(5000)), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(mproc_queue_get(q, b, 100000, &len, 100), MPROC_ETIMEDOUT);
    free(b);
    mproc_queue_close(q);
}
END_TEST

/* The same, with a consumer already reading the message: it drops it and
 * goes on to the next, without waiting for a producer to come. */
START_TEST(queue_consumer_reading_a_stream_whose_producer_dies_goes_on)
{
    mproc_queue *q = new_queue(4096, 0, false);
    put_job j = {q, 100000, 3, test_ms(20000), NULL};
    pid_t prod = spawn(child_put, &j);
    ck_assert(wait_qsize(q, 1, 5000));
    ck_assert(test_wait_asleep(prod, "futex", 5000));
    kill(prod, SIGSTOP);
    g_q = q;
    get_job g = {q, 50, 5, test_ms(10000)};
    pid_t cons = spawn(child_get, &g);
    ck_assert(test_wait_asleep(cons, "futex", 5000));
    kill_and_reap(prod);
    /* The consumer drops the cut message; the next one is for it. */
    put_pattern(q, 50, 5);
    ck_assert_int_eq(test_wait_status(cons), 0);
    ck_assert_int_eq(mproc_queue_empty(q), 1);
    mproc_queue_close(q);
}
END_TEST

/* A streamed put cut by its timeout put nothing: a consumer drops what
 * went of it, and a JoinableQueue has no task left for it. */
START_TEST(queue_stream_cut_by_its_timeout_is_dropped_whole)
{
    for (int joinable = 0; joinable < 2; joinable++) {
        mproc_queue *q = new_queue(4096, 0, joinable != 0);
        unsigned char *m = msg_new(20000, 1);
        ck_assert_int_eq(mproc_queue_put(q, m, 20000, 50), MPROC_ETIMEDOUT);
        free(m);
        unsigned char *b = malloc(20000);
        ck_assert_ptr_nonnull(b);
        size_t len = 0;
        int rc = mproc_queue_get(q, b, 20000, &len, test_ms(500));
        ck_assert_msg(rc == MPROC_ETIMEDOUT, "got %s (%zu bytes)",
                      mproc_errname(rc), len);
        ck_assert_int_eq(mproc_queue_empty(q), 1);
        if (joinable)
            ck_assert_int_eq(mproc_queue_join(q, 0), 0);
        put_pattern(q, 30, 2);
        get_pattern(q, 30, 2, 0);
        free(b);
        mproc_queue_close(q);
    }
}
END_TEST

/* A JoinableQueue consumer killed inside a get, before it took the
 * message (here, in the middle of copying a large one out): the message
 * stays for the next consumer, and so does its task; nothing is written
 * off and join waits for the task_done of whoever gets it. */
#define BIG_CAP ((size_t)128 << 20)

typedef struct slow_get {
    mproc_queue *q;
    unsigned char *dst; /* shared with the parent, which watches it */
    size_t size;
    _Atomic int *flag;
} slow_get;

static int child_gets_into_shared(void *arg)
{
    slow_get *g = arg;
    size_t len;
    atomic_store(g->flag, 1);
    return code_of(
        mproc_queue_get(g->q, g->dst, g->size, &len, test_ms(20000)));
}

/* How many of COPY_PROBES bytes spread over dst, from the first to the
 * last, hold their part of the pattern 0x5a yet (a probe whose byte of the
 * pattern is 0 moves to the next byte). */
#define COPY_PROBES 64

static int copied_at(const unsigned char *dst, size_t size)
{
    int n = 0;
    for (size_t k = 0; k < COPY_PROBES; k++) {
        size_t i = k * (size - 2) / (COPY_PROBES - 1);
        if ((unsigned char)(i * 31u + 0x5au) == 0)
            i++;
        n += ((volatile const unsigned char *)dst)[i] != 0;
    }
    return n;
}

/* RUN_SERIAL jqueue_consumer_killed_inside_a_get_leaves_its_task_to_the_next */
START_TEST(jqueue_consumer_killed_inside_a_get_leaves_its_task_to_the_next)
{
    bool hit = false;
    for (int attempt = 0; attempt < 6 && !hit; attempt++) {
        mproc_queue *q = new_queue(BIG_CAP, 0, true);
        size_t size = mproc_queue_max_inplace(q);
        unsigned char *src = malloc(size);
        ck_assert_ptr_nonnull(src);
        test_pattern(src, size, 0x5a);
        ck_assert_int_eq(mproc_queue_put(q, src, size, 0), 0);
        slow_get g = {q, shared_mem(size), size, shared_mem(4096)};
        pid_t p = spawn(child_gets_into_shared, &g);
        /* Copying has begun and not ended: kill it there. memcpy need not
         * go from the first byte to the last (glibc's stores its first and
         * last bytes at the end), so watch bytes spread over the message. */
        int64_t until = test_now_ms() + test_ms(10000);
        while (copied_at(g.dst, size) == 0 && test_now_ms() < until)
            ;
        if (copied_at(g.dst, size) < COPY_PROBES)
            kill(p, SIGKILL);
        int code = test_wait_status(p);
        ck_assert(code == 128 + SIGKILL || code == 0);
        /* Dead with the copy unfinished: it had not taken the message. */
        bool inside =
            code == 128 + SIGKILL && copied_at(g.dst, size) < COPY_PROBES;
        if (inside)
            ck_assert_msg(qsize(q) == 1, "killed inside the copy, the "
                                         "message went with the consumer");
        if (code == 128 + SIGKILL && qsize(q) == 1) {
            hit = hit || inside;
            get_pattern(q, size, 0x5a, 0);
            ck_assert_int_eq(mproc_queue_join(q, test_ms(300)),
                             MPROC_ETIMEDOUT);
            ck_assert_int_eq(mproc_queue_task_done(q), 0);
            ck_assert_int_eq(mproc_queue_join(q, 0), 0);
        } else if (code == 128 + SIGKILL) {
            /* Killed after the take: the message went with it, and its
             * task is written off. */
            ck_assert_int_eq(mproc_queue_join(q, test_ms(3000)),
                             MPROC_EOWNERDEAD);
        }
        free(src);
        munmap(g.dst, size);
        munmap((void *)g.flag, 4096);
        mproc_queue_close(q);
    }
    if (!hit)
        test_skip("no kill landed inside the copy of the message");
}
END_TEST

/* ------------------------------------ death at any instruction */

#define F_DLOCK (F_PAYLOAD + 912u) /* the lock over done and the counts */

static int worker_gets_two(void *arg)
{
    unsigned char b[64];
    size_t len;
    for (int i = 0; i < 2; i++)
        if (mproc_queue_get(arg, b, sizeof b, &len, test_ms(5000)) != 0)
            return 10;
    return 0;
}

static int worker_task_done(void *arg)
{
    return code_of(mproc_queue_task_done(arg));
}

/* A joiner whose sleep slices find the dead worker and write its tasks
 * off; then it times out (the parent's task stays). */
static int reaper_joins(void *arg)
{
    return code_of(mproc_queue_join(arg, test_ms(1000)));
}

/* What is unfinished once a dead process's tasks are written off, as a
 * joiner's sleep slices do: joins until at most one task (the parent's)
 * is left, or 5 s. */
static size_t unfinished_after_reaping(mproc_queue *q)
{
    int64_t until = test_now_ms() + test_ms(5000);
    for (;;) {
        mproc_queue_stats st;
        ck_assert_int_eq(mproc_queue_stat(q, &st), 0);
        if (st.unfinished <= 1 || test_now_ms() > until)
            return st.unfinished;
        (void)mproc_queue_join(q, 60);
    }
}

/* Who dies inside the counting of tasks. */
enum { IN_TASK_DONE, IN_WRITE_OFF };

/* One round: three tasks put; a worker gets two. IN_TASK_DONE: the worker
 * is killed after `steps` instructions of its task_done. IN_WRITE_OFF: the
 * worker exits without task_done, and a joiner is killed after `steps`
 * instructions of a join that writes the worker's tasks off. Then the
 * parent gets the third. At whatever instruction the death came, the
 * worker's two tasks count once each (by its task_done, or written off):
 * the parent's task is the only one unfinished, and its task_done ends
 * them all. 1 when the traced process ended before that many steps, 0
 * when it was killed, -1 when ptrace is not permitted. With held (not
 * NULL), the first and last step after which the done lock was held go
 * there. */
static int count_killed_at(int who, long steps, long held[2])
{
    char name[64];
    test_shm_name(name, sizeof name, "jtd");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.joinable = true;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    qfile f = qfile_map(name);
    for (unsigned i = 0; i < 3; i++)
        put_pattern(q, 16, i);
    int code = -1, pid;
    if (who == IN_TASK_DONE) {
        pid = test_traced_start(worker_gets_two, worker_task_done, q, &code);
    } else {
        ck_assert_int_eq(test_wait_status(spawn(worker_gets_two, q)), 0);
        pid = test_traced_start(NULL, reaper_joins, q, &code);
    }
    int result = -1;
    if (pid < 0) {
        ck_assert_int_eq(code, TEST_SKIP_CODE);
        goto out;
    }
    result = 0;
    for (long made = 0; made < steps; made++) {
        if (test_traced_step(pid, 1, &code) == 0) {
            ck_assert_int_eq(code, who == IN_TASK_DONE ? 0 : 1);
            result = 1;
            break;
        }
        if (held != NULL && rd32(&f, F_DLOCK) != 0) {
            if (held[0] < 0)
                held[0] = made + 1;
            held[1] = made + 1;
        }
    }
    if (result == 0) {
        kill(pid, SIGKILL);
        ck_assert_int_eq(test_wait_status(pid), 128 + SIGKILL);
    }
    get_pattern(q, 16, 2, 0);
    size_t left = unfinished_after_reaping(q);
    ck_assert_msg(
        left == 1, "killed after %ld steps of %s: %zu tasks unfinished, not 1",
        steps, who == IN_TASK_DONE ? "task_done" : "a write-off", left);
    ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    ck_assert_int_eq(mproc_queue_task_done(q), MPROC_EOVERRELEASE);
out:
    munmap(f.p, f.size);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
    mproc_queue_close(q);
    return result;
}

/* Kills at every instruction from a few before the done lock is taken to
 * a few after it is let go; on a sanitizer build, with a hundred times as
 * many, at every k-th, so that the single steps stay within a few hundred
 * thousand (at least 4 rounds). */
static void count_killed_everywhere(int who)
{
    long held[2] = {-1, -1};
    int r = count_killed_at(who, LONG_MAX, held);
    if (r < 0) {
        test_skip("ptrace not permitted here");
        return;
    }
    ck_assert_int_eq(r, 1);
    ck_assert_int_ge(held[0], 1);
    long from = held[0] > 4 ? held[0] - 4 : 0, to = held[1] + 4;
    long rounds_max = 300000 / (to + 1);
    rounds_max = rounds_max < 4 ? 4 : rounds_max > 120 ? 120 : rounds_max;
    long stride = (to - from + rounds_max) / rounds_max;
    int rounds = 0;
    for (long n = from; n <= to; n += stride, rounds++)
        ck_assert_int_eq(count_killed_at(who, n, NULL), 0);
    fprintf(stderr, "%s: killed at %d points in steps %ld..%ld\n",
            who == IN_TASK_DONE ? "task_done" : "write-off", rounds, from, to);
}

/* A worker killed at any instruction of task_done, in particular between
 * counting the task done and lowering its own count (which, not done in
 * one step, once let its death count that task twice or not at all). */
START_TEST(jqueue_worker_killed_at_any_instruction_of_task_done_counts_once)
{
    count_killed_everywhere(IN_TASK_DONE);
}
END_TEST

/* A joiner killed at any instruction of writing off a dead worker's
 * tasks: the next one writes them off, once. */
START_TEST(jqueue_joiner_killed_while_writing_tasks_off_counts_them_once)
{
    count_killed_everywhere(IN_WRITE_OFF);
}
END_TEST

/* ------------------------------ a place that went away and came back */

#define SLOT_START 8u

/* A borrow on a queue whose one place the parent holds: it looks for dead
 * processes' places, finds none, and gets MPROC_EAGAIN. */
static int child_borrows_nothing(void *arg)
{
    const void *d;
    size_t len;
    return mproc_queue_borrow(arg, &d, &len, 0) == MPROC_EAGAIN ? 0 : 1;
}

/* A process looking for dead processes' places reads a place's pid, then
 * its start time. If the place went to another process and back to the
 * same pid between the two, it saw the live owner's pid beside another's
 * start time and wrote the live process's tasks off. Here the place shows
 * another start time until the child opens the owner's /proc entry. */
START_TEST(queue_reaper_leaves_a_place_that_went_away_and_came_back)
{
    char name[64];
    test_shm_name(name, sizeof name, "aba");
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = 4096;
    o.joinable = true;
    o.max_consumers = 1;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    put_pattern(q, 16, 1);
    get_pattern(q, 16, 1, 0); /* the one place is ours, with a task */
    qfile f = qfile_map(name);
    ck_assert_uint_eq(rd32(&f, F_SLOTS + SLOT_PID), (uint32_t)getpid());
    uint64_t mine = rd64(&f, F_SLOTS + SLOT_START);
    ck_assert_uint_ne(mine, 0);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d/stat", (int)getpid());
    int code = -1;
    pid_t pid = test_traced_start(child_borrows_nothing, child_borrows_nothing,
                                  q, &code);
    int r = -2;
    if (pid >= 0) {
        wr64(&f, F_SLOTS + SLOT_START, mine + 7);
        r = test_traced_until_open(pid, proc, &code);
        wr64(&f, F_SLOTS + SLOT_START, mine);
        if (r == 0)
            code = test_traced_finish(pid);
        else if (r == -2)
            kill_and_reap(pid);
    }
    if (r == -2) {
        test_skip("cannot trace system calls here");
    } else {
        ck_assert_msg(r == 0, "the child never looked at the place's owner");
        ck_assert_msg(rd32(&f, F_SLOTS + SLOT_PID) == (uint32_t)getpid() &&
                          rd32(&f, F_SLOTS + SLOT_OUTSTANDING) == 1,
                      "the live owner's place was taken and its task "
                      "written off");
        ck_assert_int_eq(code, 0);
        ck_assert_int_eq(mproc_queue_join(q, 0), MPROC_ETIMEDOUT);
    }
    ck_assert_int_eq(mproc_queue_task_done(q), 0);
    ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    munmap(f.p, f.size);
    mproc_queue_close(q);
    ck_assert_int_eq(mproc_queue_unlink(name), 0);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("queue");
    TEST_ADD(s, queue_max_inplace_is_half_the_capacity_minus_a_header);
    TEST_ADD(s,
             jqueue_worker_killed_at_any_instruction_of_task_done_counts_once);
    TEST_ADD(s, jqueue_joiner_killed_while_writing_tasks_off_counts_them_once);
    TEST_ADD(s, queue_reaper_leaves_a_place_that_went_away_and_came_back);
    TEST_ADD(s, queue_capacity_is_rounded_up_to_a_power_of_two_within_bounds);
    TEST_ADD(s, queue_keeps_order_and_sizes_of_whole_messages);
    TEST_ADD(s, queue_streams_messages_larger_than_its_memory_in_order);
    TEST_ADD(s, queue_message_stays_after_its_producer_exits);
    TEST_ADD(s, queue_qsize_empty_and_full_are_exact);
    TEST_ADD(s, queue_stat_says_depth_waiters_holders_and_tasks);
    TEST_ADD(s, queue_put_times_out_while_maxsize_messages_wait);
    TEST_ADD(s, queue_get_lets_a_put_blocked_on_maxsize_go_on);
    TEST_ADD(s, queue_capacity_bounds_bytes_with_an_8_byte_header_per_message);
    TEST_ADD(s, queue_put_goes_on_once_its_message_fits);
    TEST_ADD(s, queue_get_times_out_on_time);
    TEST_ADD(s, queue_get_wakes_when_a_message_comes);
    TEST_ADD(s, queue_get_into_a_small_buffer_keeps_a_whole_message);
    TEST_ADD(s, queue_get_into_a_small_buffer_keeps_a_streamed_message);
    TEST_ADD(s, queue_get_alloc_guard_keeps_the_message);
    TEST_ADD(s, queue_no_stream_refuses_messages_above_max_inplace);
    TEST_ADD(s, queue_many_producers_and_consumers_pass_every_message_once);
    TEST_ADD(s, queue_threads_of_one_process_share_a_handle);
    TEST_ADD(s, queue_stream_half_read_by_one_thread_is_not_taken_by_another);
    TEST_ADD(s, queue_get_that_times_out_inside_a_stream_resumes_it);
    TEST_ADD(s, queue_closing_a_handle_drops_its_half_read_stream);
    TEST_ADD(s, queue_streams_a_1gib_message_between_processes);
    TEST_ADD(s, queue_shutdown_refuses_puts_and_lets_consumers_drain);
    TEST_ADD(s, queue_shutdown_is_seen_by_every_process);
    TEST_ADD(s, queue_shutdown_wakes_sleeping_producers_and_consumers);
    TEST_ADD(s, queue_shutdown_inside_a_streamed_put_drops_the_message_whole);
    TEST_ADD(s, queue_shutdown_after_a_producer_died_inside_a_stream_drains);
    TEST_ADD(s, queue_commit_after_shutdown_puts_nothing);
    TEST_ADD(s, queue_put_batch_puts_messages_in_order);
    TEST_ADD(s, queue_put_batch_stops_at_the_bound_and_says_how_many_went);
    TEST_ADD(s, queue_put_batch_streams_long_messages_among_short_ones);
    TEST_ADD(s, queue_get_batch_takes_what_is_there_while_it_fits);
    TEST_ADD(s, queue_get_batch_stops_before_a_streamed_message);
    TEST_ADD(s, queue_reserve_and_commit_publish_in_place);
    TEST_ADD(s, queue_reserve_misuse_is_refused);
    TEST_ADD(s, queue_reservation_holds_other_producers_until_commit);
    TEST_ADD(s, queue_reservation_stays_in_the_parent_across_fork);
    TEST_ADD(s, queue_producer_killed_with_a_reservation_puts_nothing);
    TEST_ADD(s, queue_borrow_gives_the_message_in_place_until_release);
    TEST_ADD(s, queue_borrowed_memory_is_not_reused_while_others_go_on);
    TEST_ADD(s, queue_borrow_refuses_a_streamed_message_and_keeps_it);
    TEST_ADD(s, queue_message_borrowed_by_a_killed_consumer_is_lost_not_wedged);
    TEST_ADD(s, queue_borrowed_message_stays_in_the_parent_across_fork);
    TEST_ADD(s, queue_max_consumers_bounds_borrowers_and_reuses_dead_places);
    TEST_ADD(s, queue_two_handles_of_one_process_each_borrow_a_message);
    TEST_ADD(s, queue_close_cancels_a_reservation_and_releases_a_borrow);
    TEST_ADD(s, jqueue_join_returns_once_every_task_is_done);
    TEST_ADD(s, jqueue_join_times_out_while_tasks_are_open);
    TEST_ADD(s, jqueue_join_wakes_when_the_last_task_is_done);
    TEST_ADD(s, jqueue_task_done_and_join_are_refused_on_a_plain_queue);
    TEST_ADD(s, jqueue_every_way_of_taking_makes_a_task);
    TEST_ADD(s, jqueue_worker_killed_before_task_done_gives_ownerdead_once);
    TEST_ADD(s, jqueue_worker_that_finished_its_tasks_leaves_join_clean);
    TEST_ADD(s, jqueue_max_consumers_bounds_processes_holding_tasks);
    TEST_ADD(s, queue_fd_is_readable_while_a_message_waits);
    TEST_ADD(s, queue_fd_follows_puts_from_another_process);
    TEST_ADD(s, queue_fd_waits_in_mproc_wait_beside_a_connection);
    TEST_ADD(s, queue_fd_of_a_forked_child_is_its_own);
    TEST_ADD(s, queue_close_ends_the_fd_and_its_thread);
    TEST_ADD(s, queue_named_is_opened_by_another_process);
    TEST_ADD(s, queue_named_joinable_and_simple_open_as_their_kind);
    TEST_ADD(s, queue_name_of_another_kind_is_refused);
    TEST_ADD(s, queue_bad_names_are_refused_and_leave_nothing);
    TEST_ADD(s, queue_named_mode_sets_the_file_permissions);
    TEST_ADD(s, queue_create_refuses_absurd_options);
    TEST_ADD(s, queue_calls_refuse_null_and_bad_arguments);
    TEST_ADD(s, simple_queue_offers_put_get_and_empty);
    TEST_ADD(s, queue_open_refuses_a_scribbled_header);
    TEST_ADD(s, queue_calls_report_scribbled_positions_as_eproto);
    TEST_ADD(s, queue_get_reports_a_scribbled_record_as_eproto);
    TEST_ADD(s, queue_survives_scribbled_consumer_slots);
    TEST_ADD(s, queue_lock_words_scribbled_on_are_recovered_or_refused);
    TEST_ADD(s, queue_fd_follows_a_change_whose_wake_up_never_came);
    TEST_ADD(s, queue_get_asleep_sees_a_shutdown_whose_wake_up_it_missed);
    TEST_ADD(s, queue_borrower_killed_inside_its_release_wedges_no_one);
    TEST_ADD(s, queue_dead_borrowers_stale_claim_frees_no_one_elses_message);
    TEST_ADD(s, queue_consumer_killed_inside_a_streamed_message_loses_only_it);
    TEST_ADD(
        s, queue_producer_killed_inside_a_streamed_message_delivers_none_of_it);
    TEST_ADD(s, queue_consumer_reading_a_stream_whose_producer_dies_goes_on);
    TEST_ADD(s, queue_stream_cut_by_its_timeout_is_dropped_whole);
    TEST_ADD(s,
             jqueue_consumer_killed_inside_a_get_leaves_its_task_to_the_next);
    return s;
}
