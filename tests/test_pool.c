/* The worker pool: every call, the failure paths on purpose (failing tasks,
 * mproc_fail, workers killed or exiting inside a task, a failing
 * initializer, a failing callback, an output over its bound, a task that
 * never returns), and the bad inputs of issue 11. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/process.h"
#include "mproc.h"
#include "testlib.h"

/* ----- tasks (they run in the workers) ----- */

static int64_t in_i64(const void *in)
{
    int64_t x;
    memcpy(&x, in, sizeof x);
    return x;
}

static int t_square(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    if (len != 8)
        return MPROC_EINVAL;
    int64_t x = in_i64(in);
    x *= x;
    return mproc_pool_out_write(out, &x, sizeof x);
}

static int t_echo(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    return mproc_pool_out_write(out, in, len);
}

static int t_name(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)in;
    (void)len;
    (void)arg;
    const char *n = mproc_current_name();
    return mproc_pool_out_write(out, n, strlen(n) + 1);
}

static int t_pid(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)in;
    (void)len;
    (void)arg;
    pid_t p = getpid();
    return mproc_pool_out_write(out, &p, sizeof p);
}

#define FAIL_LINE_MARK 4242
/* Odd inputs fail with a message and a place; 10 returns a bare 7. */
static int t_fail_odd(const void *in, size_t len, mproc_pool_out *out,
                      void *arg)
{
    (void)arg;
    (void)len;
    int64_t x = in_i64(in);
    if (x == 10)
        return 7;
    if (x % 2 != 0)
        return mproc_pool_fail(MPROC_ERANGE, "odd input %lld", (long long)x);
    return mproc_pool_out_write(out, &x, sizeof x);
}

static int t_mproc_fail_3(const void *in, size_t len, mproc_pool_out *out,
                          void *arg)
{
    (void)arg;
    (void)len;
    int64_t x = in_i64(in);
    if (x == 3)
        mproc_fail(MPROC_EBROKEN, "task %lld gives up", (long long)x);
    return mproc_pool_out_write(out, &x, sizeof x);
}

/* Shared run counters, mapped before the pools are made (so every worker,
 * replacements included, sees them through arg). */
#define NCOUNT 4096
static _Atomic int *shared_counts(void)
{
    void *p = mmap(NULL, NCOUNT * sizeof(_Atomic int), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

/* Counts its runs in arg[x]; input `victim` (arg[NCOUNT - 1]) kills its
 * worker with SIGKILL on its first run. */
static int t_count_kill(const void *in, size_t len, mproc_pool_out *out,
                        void *arg)
{
    (void)len;
    _Atomic int *count = arg;
    int64_t x = in_i64(in);
    int runs = atomic_fetch_add(&count[x], 1);
    if (x == atomic_load(&count[NCOUNT - 1]) && runs == 0)
        raise(SIGKILL);
    return mproc_pool_out_write(out, &x, sizeof x);
}

static int t_exit_5(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    (void)len;
    int64_t x = in_i64(in);
    if (x == 5)
        _exit(3);
    return mproc_pool_out_write(out, &x, sizeof x);
}

static int t_sleep_ms(const void *in, size_t len, mproc_pool_out *out,
                      void *arg)
{
    (void)arg;
    (void)len;
    int64_t ms = in_i64(in);
    usleep((useconds_t)(ms * 1000));
    return mproc_pool_out_write(out, &ms, sizeof ms);
}

static int t_forever(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)in;
    (void)len;
    (void)out;
    (void)arg;
    for (;;)
        pause();
    return 0;
}

static int t_forever_no_term(const void *in, size_t len, mproc_pool_out *out,
                             void *arg)
{
    (void)in;
    (void)len;
    (void)out;
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigprocmask(SIG_BLOCK, &s, NULL);
    for (;;)
        pause();
    return 0;
}

static int t_sigint(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)in;
    (void)len;
    (void)out;
    (void)arg;
    raise(SIGINT);
    return 0;
}

/* Writes out->cap bytes of pattern seeded by the input's length. */
static int t_fill(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    if (!test_pattern_ok(in, len, (unsigned)len))
        return MPROC_EPROTO;
    test_pattern(out->data, out->cap, (unsigned)out->cap);
    out->len = out->cap;
    return 0;
}

static int t_overflow(const void *in, size_t len, mproc_pool_out *out,
                      void *arg)
{
    (void)in;
    (void)len;
    (void)arg;
    out->len = out->cap + 1;
    return 0;
}

static int t_log(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)out;
    (void)len;
    mproc_log_info((mproc_log *)arg, "%lld being processed",
                   (long long)in_i64(in));
    return 0;
}

static int init_value;
static int init_sets(void *arg)
{
    init_value = (int)(intptr_t)arg;
    return 0;
}

static int t_init_value(const void *in, size_t len, mproc_pool_out *out,
                        void *arg)
{
    (void)in;
    (void)len;
    (void)arg;
    return mproc_pool_out_write(out, &init_value, sizeof init_value);
}

static int init_fails(void *arg)
{
    (void)arg;
    return MPROC_EACCES;
}

static int init_mproc_fails(void *arg)
{
    (void)arg;
    mproc_fail(MPROC_ENOENT, "no config file");
}

/* ----- helpers ----- */

static mproc_pool *make_pool_with(const mproc_pool_opts *o)
{
    mproc_pool *p = NULL;
    ck_assert_int_eq(mproc_pool_create(&p, o), 0);
    return p;
}

static mproc_pool *make_pool(unsigned workers)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = workers;
    return make_pool_with(&o);
}

static void end_pool(mproc_pool *p)
{
    ck_assert_int_eq(mproc_pool_close(p), 0);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(10000)), 0);
    mproc_pool_destroy(p);
}

/* The pool still runs a task right (after whatever the test did), then
 * ends cleanly. */
static void works_then_end(mproc_pool *p, int64_t x)
{
    int64_t y = 0;
    ck_assert_int_eq(
        mproc_pool_apply(p, t_square, NULL, &x, 8, &y, 8, NULL, test_ms(10000)),
        0);
    ck_assert_int_eq(y, x * x);
    end_pool(p);
}

/* ----- map ----- */

START_TEST(map_returns_outputs_in_input_order)
{
    mproc_pool *p = make_pool(3);
    enum { N = 1000 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i - 500;
    const size_t chunks[] = {0, 1, 7, N};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
        co.chunksize = chunks[c];
        memset(out, 0, sizeof out);
        ck_assert_int_eq(mproc_pool_map(p, t_square, NULL, in, sizeof in[0], N,
                                        out, sizeof out[0], &co,
                                        test_ms(20000)),
                         0);
        for (int i = 0; i < N; i++)
            ck_assert_int_eq(out[i], in[i] * in[i]);
    }
    end_pool(p);
}
END_TEST

START_TEST(map_takes_inputs_of_variable_length)
{
    mproc_pool *p = make_pool(2);
    static char text[64][64];
    mproc_pool_input in[64];
    char out[64][64];
    for (int i = 0; i < 64; i++) {
        memset(text[i], 'a' + i % 26, (size_t)i);
        in[i].data = text[i];
        in[i].len = (size_t)i;
    }
    memset(out, 0, sizeof out);
    mproc_pool_result *r;
    ck_assert_int_eq(mproc_pool_map_async(&r, p, t_echo, NULL, in, 0, 64, out,
                                          sizeof out[0], NULL),
                     0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), 0);
    for (size_t i = 0; i < 64; i++) {
        const void *d;
        size_t len;
        ck_assert_int_eq(mproc_pool_result_output(r, i, &d, &len), 0);
        ck_assert_uint_eq(len, i);
        ck_assert_ptr_eq(d, out[i]);
        ck_assert_int_eq(memcmp(out[i], text[i], i), 0);
    }
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

START_TEST(map_of_nothing_returns_at_once)
{
    mproc_pool *p = make_pool(1);
    ck_assert_int_eq(mproc_pool_map(p, t_square, NULL, NULL, 8, 0, NULL, 0,
                                    NULL, test_ms(1000)),
                     0);
    end_pool(p);
}
END_TEST

START_TEST(workers_are_named_poolworker_n)
{
    mproc_pool *p = make_pool(2);
    char out[16][MPROC_PROCESS_NAME_MAX + 1];
    int64_t in[16] = {0};
    ck_assert_int_eq(mproc_pool_map(p, t_name, NULL, in, sizeof in[0], 16, out,
                                    sizeof out[0], NULL, test_ms(10000)),
                     0);
    for (int i = 0; i < 16; i++)
        ck_assert_msg(strncmp(out[i], "PoolWorker-", 11) == 0 &&
                          atoi(out[i] + 11) >= 1,
                      "name %s", out[i]);
    end_pool(p);
}
END_TEST

START_TEST(worker_log_records_say_which_worker_wrote)
{
    char path[256];
    test_path(path, sizeof path, "pool.log");
    mproc_log *lg;
    mproc_log_opts lo = MPROC_LOG_OPTS_INIT;
    lo.level = MPROC_LOG_INFO;
    lo.format = "%(processName)s %(message)s";
    ck_assert_int_eq(mproc_log_create(&lg, &lo), 0);
    ck_assert_int_eq(mproc_log_add_file(lg, path, NULL), 0);
    mproc_pool *p = make_pool(2); /* after the logger: workers inherit it */
    int64_t in[20];
    for (int i = 0; i < 20; i++)
        in[i] = i;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1;
    ck_assert_int_eq(mproc_pool_map(p, t_log, lg, in, sizeof in[0], 20, NULL, 0,
                                    &co, test_ms(10000)),
                     0);
    end_pool(p);
    mproc_log_destroy(lg);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        ck_assert_msg(strncmp(line, "PoolWorker-", 11) == 0, "line %s", line);
        ck_assert_ptr_nonnull(strstr(line, "being processed"));
        n++;
    }
    fclose(f);
    unlink(path);
    ck_assert_int_eq(n, 20);
}
END_TEST

START_TEST(default_worker_count_is_the_cpus_available)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    mproc_pool *p = make_pool(0);
    ck_assert_uint_eq(mproc_pool_workers(p), (unsigned)CPU_COUNT(&set));
    end_pool(p);
}
END_TEST

/* ----- bad input ----- */

START_TEST(create_refuses_bad_options)
{
    mproc_pool *p = (mproc_pool *)&p;
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = (unsigned)-1; /* a negative count, as C passes it */
    ck_assert_int_eq(mproc_pool_create(&p, &o), MPROC_EINVAL);
    o.workers = MPROC_POOL_WORKERS_MAX + 1;
    ck_assert_int_eq(mproc_pool_create(&p, &o), MPROC_EINVAL);
    o.workers = 1;
    o.terminate_timeout_ms = -5;
    ck_assert_int_eq(mproc_pool_create(&p, &o), MPROC_EINVAL);
    o.terminate_timeout_ms = 0;
    o.out_max = (size_t)1 << 30;
    ck_assert_int_eq(mproc_pool_create(&p, &o), MPROC_EINVAL);
    ck_assert_int_eq(mproc_pool_create(NULL, NULL), MPROC_EINVAL);
    ck_assert_ptr_eq(p, (mproc_pool *)&p); /* untouched */
}
END_TEST

START_TEST(calls_refuse_a_null_function_or_pool)
{
    mproc_pool *p = make_pool(1);
    int64_t x = 1, y;
    mproc_pool_result *r;
    mproc_pool_iter *it;
    ck_assert_int_eq(mproc_pool_map(p, NULL, NULL, &x, 8, 1, &y, 8, NULL, 100),
                     MPROC_EINVAL);
    ck_assert_int_eq(
        mproc_pool_map(NULL, t_square, NULL, &x, 8, 1, &y, 8, NULL, 100),
        MPROC_EINVAL);
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, NULL, NULL, &x, 8, 1, NULL, 0, NULL),
        MPROC_EINVAL);
    ck_assert_int_eq(mproc_pool_apply(p, NULL, NULL, &x, 8, &y, 8, NULL, 100),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_pool_apply_async(&r, p, NULL, NULL, &x, 8, NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_pool_imap(&it, p, NULL, NULL, NULL, NULL, NULL),
                     MPROC_EINVAL);
    /* an output array without a size, a size without an array */
    ck_assert_int_eq(
        mproc_pool_map(p, t_square, NULL, &x, 8, 1, &y, 0, NULL, 100),
        MPROC_EINVAL);
    ck_assert_int_eq(
        mproc_pool_map(p, t_square, NULL, &x, 8, 1, NULL, 8, NULL, 100),
        MPROC_EINVAL);
    ck_assert_int_eq(
        mproc_pool_map(p, t_square, NULL, &x, 8, 1, &y, 8, NULL, -2),
        MPROC_EINVAL);
    end_pool(p);
}
END_TEST

START_TEST(map_after_close_is_refused)
{
    mproc_pool *p = make_pool(1);
    ck_assert_int_eq(mproc_pool_close(p), 0);
    int64_t x = 3, y;
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map(p, t_square, NULL, &x, 8, 1, &y, 8, NULL, 1000),
        MPROC_ESTATE);
    ck_assert_int_eq(mproc_pool_apply_async(&r, p, t_square, NULL, &x, 8, NULL),
                     MPROC_ESTATE);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(5000)), 0);
    mproc_pool_destroy(p);
}
END_TEST

START_TEST(join_before_close_is_refused)
{
    mproc_pool *p = make_pool(1);
    ck_assert_int_eq(mproc_pool_join(p, 0), MPROC_ESTATE);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(100)), MPROC_ESTATE);
    end_pool(p);
}
END_TEST

START_TEST(input_or_bound_beyond_the_queues_is_refused)
{
    mproc_pool *p = make_pool(1);
    size_t max = mproc_pool_max_input(p);
    ck_assert_uint_gt(max, 1000);
    char *big = calloc(1, max + 1);
    ck_assert_ptr_nonnull(big);
    char out[8];
    ck_assert_int_eq(mproc_pool_apply(p, t_echo, NULL, big, max + 1, out,
                                      sizeof out, NULL, 1000),
                     MPROC_EMSGSIZE);
    mproc_pool_input in = {big, max + 1};
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_echo, NULL, &in, 0, 1, NULL, 0, NULL),
        MPROC_EMSGSIZE);
    ck_assert_int_eq(mproc_pool_map_async(&r, p, t_echo, NULL, big, 8, 1, big,
                                          max + 1000, NULL),
                     MPROC_EMSGSIZE);
    /* At the limit it goes. */
    test_pattern((unsigned char *)big, max, (unsigned)max);
    char small[64];
    ck_assert_int_eq(mproc_pool_apply(p, t_fill, NULL, big, max, small,
                                      sizeof small, NULL, test_ms(10000)),
                     0);
    ck_assert(
        test_pattern_ok((unsigned char *)small, sizeof small, sizeof small));
    free(big);
    end_pool(p);
}
END_TEST

START_TEST(output_larger_than_its_bound_fails_with_emsgsize)
{
    mproc_pool *p = make_pool(1);
    int64_t x[3] = {1, 2, 3}, y[3] = {0, 0, 0};
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_overflow, NULL, x, 8, 3, y, 8, NULL), 0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), MPROC_ECHILD);
    for (size_t i = 0; i < 3; i++) {
        const mproc_failure *f = mproc_pool_result_error(r, i);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->error, MPROC_EMSGSIZE);
        ck_assert_ptr_nonnull(strstr(f->message, "exceeds its bound of 8"));
        ck_assert_int_eq(y[i], 0);
    }
    mproc_pool_result_destroy(r);
    /* The direct path (a large bound) says the same. */
    char *big = malloc((size_t)100 << 10);
    ck_assert_int_eq(mproc_pool_apply(p, t_overflow, NULL, NULL, 0, big,
                                      (size_t)100 << 10, NULL, test_ms(10000)),
                     MPROC_ECHILD);
    free(big);
    end_pool(p);
}
END_TEST

/* ----- failures ----- */

struct seen {
    pthread_t caller;
    _Atomic int on_pool_thread;
    _Atomic int successes, errors, progress_last;
    int error_code[32];
    char error_msg[32][128];
    char error_file[32][64];
    int error_line[32];
};

static int on_ok(void *ctx, size_t i, const void *out, size_t len)
{
    struct seen *s = ctx;
    (void)i;
    (void)out;
    (void)len;
    if (!pthread_equal(pthread_self(), s->caller))
        s->on_pool_thread = 1;
    s->successes++;
    return 0;
}

static int on_err(void *ctx, size_t i, const mproc_failure *f)
{
    struct seen *s = ctx;
    if (i < 32) {
        s->error_code[i] = f->error;
        snprintf(s->error_msg[i], sizeof s->error_msg[i], "%s", f->message);
        snprintf(s->error_file[i], sizeof s->error_file[i], "%s", f->file);
        s->error_line[i] = f->line;
    }
    s->errors++;
    return 0;
}

START_TEST(failing_task_fails_its_own_result_with_its_record)
{
    mproc_pool *p = make_pool(2);
    int64_t in[12], out[12];
    for (int i = 0; i < 12; i++) {
        in[i] = i;
        out[i] = -1;
    }
    struct seen s;
    memset(&s, 0, sizeof s);
    s.caller = pthread_self();
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.on_success = on_ok;
    co.on_error = on_err;
    co.ctx = &s;
    ck_assert_int_eq(mproc_pool_map(p, t_fail_odd, NULL, in, 8, 12, out, 8, &co,
                                    test_ms(10000)),
                     MPROC_ECHILD);
    ck_assert_int_eq(s.errors, 7); /* 1, 3, 5, 7, 9, 11 and 10 */
    ck_assert_int_eq(s.successes, 5);
    for (int i = 0; i < 12; i++) {
        if (i % 2 == 1) {
            ck_assert_int_eq(s.error_code[i], MPROC_ERANGE);
            char want[32];
            snprintf(want, sizeof want, "odd input %d", i);
            ck_assert_str_eq(s.error_msg[i], want);
            ck_assert_ptr_nonnull(strstr(s.error_file[i], "test_pool.c"));
            ck_assert_int_gt(s.error_line[i], 0);
            ck_assert_int_eq(out[i], -1);
        } else if (i == 10) {
            ck_assert_int_eq(s.error_code[i], 7);
            ck_assert_str_eq(s.error_msg[i], "returned 7");
            ck_assert_str_eq(s.error_file[i], "");
        } else {
            ck_assert_int_eq(out[i], i);
        }
    }
    ck_assert(s.on_pool_thread);
    end_pool(p);
}
END_TEST

START_TEST(mproc_fail_in_a_task_reaches_its_result_and_the_worker_is_replaced)
{
    mproc_pool *p = make_pool(1);
    int64_t in[8], out[8];
    for (int i = 0; i < 8; i++)
        in[i] = i;
    mproc_pool_result *r;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 8; /* 4..7 were sent with 3 and must still run */
    ck_assert_int_eq(mproc_pool_map_async(&r, p, t_mproc_fail_3, NULL, in, 8, 8,
                                          out, 8, &co),
                     0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), MPROC_ECHILD);
    ck_assert_int_eq(mproc_pool_result_successful(r), 0);
    for (size_t i = 0; i < 8; i++) {
        const mproc_failure *f = mproc_pool_result_error(r, i);
        if (i != 3) {
            ck_assert_ptr_null(f);
            ck_assert_int_eq(out[i], (int64_t)i);
            continue;
        }
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->error, MPROC_EBROKEN);
        ck_assert_str_eq(f->message, "task 3 gives up");
        ck_assert_ptr_nonnull(strstr(f->file, "test_pool.c"));
        ck_assert_int_gt(f->line, 0);
        ck_assert(f->from_child);
        ck_assert_int_eq(f->exitcode, 1);
        ck_assert_int_eq(strncmp(f->name, "PoolWorker-", 11), 0);
        ck_assert_int_gt(f->pid, 0);
    }
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

/* A worker killed inside a task: that task alone fails, with the signal;
 * the tasks before it in its chunk (finished, not yet sent) and after it
 * (received, not started) each run exactly once. */
START_TEST(killed_worker_fails_only_the_task_it_held)
{
    _Atomic int *count = shared_counts();
    count[NCOUNT - 1] = 13;
    mproc_pool *p = make_pool(2);
    enum { N = 40 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        out[i] = -1;
    }
    mproc_pool_result *r;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 10;
    ck_assert_int_eq(mproc_pool_map_async(&r, p, t_count_kill, (void *)count,
                                          in, 8, N, out, 8, &co),
                     0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), MPROC_ECHILD);
    for (size_t i = 0; i < N; i++) {
        ck_assert_int_eq(count[i], 1);
        const mproc_failure *f = mproc_pool_result_error(r, i);
        if (i != 13) {
            ck_assert_msg(f == NULL, "task %zu failed: %s", i,
                          f ? f->message : "");
            ck_assert_int_eq(out[i], (int64_t)i);
            continue;
        }
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->error, MPROC_ECHILD);
        ck_assert_int_eq(f->signal, SIGKILL);
        ck_assert_int_eq(f->exitcode, -SIGKILL);
        ck_assert(!f->from_child);
        ck_assert_int_eq(strncmp(f->name, "PoolWorker-", 11), 0);
    }
    mproc_pool_result_destroy(r);
    /* The pool goes on with a replacement. */
    works_then_end(p, 9);
    munmap((void *)count, NCOUNT * sizeof(_Atomic int));
}
END_TEST

/* Where there is no pidfd (old kernels, some sandboxes), deaths are found
 * by looking: the same outcome, and terminate still ends the pool. */
START_TEST(killed_worker_is_found_without_pidfds)
{
    _Atomic int *count = shared_counts();
    count[NCOUNT - 1] = 4;
    mproc__process_test_no_pidfd = true;
    mproc_pool *p = make_pool(2);
    mproc__process_test_no_pidfd = false; /* replacements: as it comes */
    int64_t in[10], out[10];
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mproc_pool_result *r;
    ck_assert_int_eq(mproc_pool_map_async(&r, p, t_count_kill, (void *)count,
                                          in, 8, 10, out, 8, NULL),
                     0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), MPROC_ECHILD);
    for (size_t i = 0; i < 10; i++) {
        ck_assert_int_eq(count[i], 1);
        const mproc_failure *f = mproc_pool_result_error(r, i);
        if (i == 4) {
            ck_assert_ptr_nonnull(f);
            ck_assert_int_eq(f->signal, SIGKILL);
        } else {
            ck_assert_ptr_null(f);
            ck_assert_int_eq(out[i], (int64_t)i);
        }
    }
    mproc_pool_result_destroy(r);
    ck_assert_int_eq(mproc_pool_terminate(p), 0);
    mproc_pool_destroy(p);
    munmap((void *)count, NCOUNT * sizeof(_Atomic int));
}
END_TEST

START_TEST(worker_exiting_inside_a_task_fails_that_task_with_its_status)
{
    mproc_pool *p = make_pool(2);
    int64_t in[10], out[10];
    for (int i = 0; i < 10; i++)
        in[i] = i;
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_exit_5, NULL, in, 8, 10, out, 8, NULL),
        0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), MPROC_ECHILD);
    for (size_t i = 0; i < 10; i++) {
        const mproc_failure *f = mproc_pool_result_error(r, i);
        if (i == 5) {
            ck_assert_ptr_nonnull(f);
            ck_assert_int_eq(f->error, MPROC_ECHILD);
            ck_assert_int_eq(f->exitcode, 3);
            ck_assert_int_eq(f->signal, 0);
        } else {
            ck_assert_ptr_null(f);
            ck_assert_int_eq(out[i], (int64_t)i);
        }
    }
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

START_TEST(failing_initializer_fails_create_with_its_error)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = 3;
    o.initializer = init_fails;
    mproc_pool *p = NULL;
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_pool_create(&p, &o), MPROC_EACCES);
    ck_assert_ptr_null(p);
    o.initializer = init_mproc_fails;
    ck_assert_int_eq(mproc_pool_create(&p, &o), MPROC_ENOENT);
    ck_assert_ptr_null(p);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(10000));
    /* no worker is left behind: the test library checks */
}
END_TEST

START_TEST(initializer_runs_in_every_worker_with_its_argument)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = 2;
    o.initializer = init_sets;
    o.initarg = (void *)(intptr_t)77;
    o.max_tasks_per_worker = 2; /* replacements run it too */
    mproc_pool *p = make_pool_with(&o);
    int64_t in[12] = {0};
    int out[12];
    ck_assert_int_eq(mproc_pool_map(p, t_init_value, NULL, in, 8, 12, out,
                                    sizeof out[0], NULL, test_ms(20000)),
                     0);
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(out[i], 77);
    ck_assert_int_eq(init_value, 0); /* the parent never ran it */
    end_pool(p);
}
END_TEST

START_TEST(max_tasks_per_worker_replaces_each_worker_after_that_many)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = 2;
    o.max_tasks_per_worker = 3;
    mproc_pool *p = make_pool_with(&o);
    enum { N = 30 };
    int64_t in[N] = {0};
    pid_t out[N];
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 2; /* chunks are cut to the limit */
    ck_assert_int_eq(mproc_pool_map(p, t_pid, NULL, in, 8, N, out,
                                    sizeof out[0], &co, test_ms(20000)),
                     0);
    int distinct = 0;
    for (int i = 0; i < N; i++) {
        int same = 0, first = 1;
        for (int k = 0; k < N; k++)
            if (out[k] == out[i]) {
                same++;
                if (k < i)
                    first = 0;
            }
        ck_assert_int_le(same, 3);
        distinct += first;
    }
    ck_assert_int_ge(distinct, N / 3);
    end_pool(p);
}
END_TEST

START_TEST(workers_ignore_sigint)
{
    mproc_pool *p = make_pool(1);
    ck_assert_int_eq(
        mproc_pool_apply(p, t_sigint, NULL, NULL, 0, NULL, 0, NULL, 10000), 0);
    end_pool(p);
}
END_TEST

/* ----- apply, results ----- */

START_TEST(apply_returns_the_output_and_its_length)
{
    mproc_pool *p = make_pool(1);
    int64_t x = 12, y = 0;
    size_t len = 0;
    ck_assert_int_eq(
        mproc_pool_apply(p, t_square, NULL, &x, 8, &y, 8, &len, test_ms(10000)),
        0);
    ck_assert_int_eq(y, 144);
    ck_assert_uint_eq(len, 8);
    x = 11;
    ck_assert_int_eq(mproc_pool_apply(p, t_fail_odd, NULL, &x, 8, &y, 8, &len,
                                      test_ms(10000)),
                     MPROC_ECHILD);
    end_pool(p);
}
END_TEST

START_TEST(apply_async_result_can_be_got_twice)
{
    mproc_pool *p = make_pool(1);
    int64_t x = 150;
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_apply_async(&r, p, t_sleep_ms, NULL, &x, 8, NULL), 0);
    x = 0; /* the input was copied */
    ck_assert_int_eq(mproc_pool_result_ready(r), 0);
    ck_assert_int_eq(mproc_pool_result_successful(r), MPROC_ESTATE);
    ck_assert_int_eq(mproc_pool_result_get(r, 0), MPROC_ETIMEDOUT);
    const void *d;
    size_t len;
    ck_assert_int_eq(mproc_pool_result_output(r, 0, &d, &len), MPROC_ESTATE);
    ck_assert_int_eq(mproc_pool_result_wait(r, test_ms(10000)), 0);
    ck_assert_int_eq(mproc_pool_result_ready(r), 1);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(mproc_pool_result_get(r, test_ms(1000)), 0);
        ck_assert_int_eq(mproc_pool_result_successful(r), 1);
        ck_assert_int_eq(mproc_pool_result_output(r, 0, &d, &len), 0);
        ck_assert_uint_eq(len, 8);
        ck_assert_int_eq(in_i64(d), 150);
        ck_assert_ptr_null(mproc_pool_result_error(r, 0));
    }
    ck_assert_int_eq(mproc_pool_result_output(r, 1, &d, &len), MPROC_EINVAL);
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

START_TEST(result_outlives_its_pool_and_never_waits_for_it)
{
    mproc_pool *p = make_pool(1);
    int64_t x = 1;
    mproc_pool_result *busy, *queued;
    ck_assert_int_eq(
        mproc_pool_apply_async(&busy, p, t_forever, NULL, &x, 8, NULL), 0);
    ck_assert_int_eq(
        mproc_pool_apply_async(&queued, p, t_square, NULL, &x, 8, NULL), 0);
    usleep(50000);
    mproc_pool_destroy(p); /* terminates */
    ck_assert_int_eq(mproc_pool_result_get(busy, test_ms(1000)), MPROC_ECHILD);
    ck_assert_int_eq(mproc_pool_result_get(queued, 0), MPROC_ECHILD);
    ck_assert_int_eq(mproc_pool_result_get(queued, 0), MPROC_ECHILD);
    ck_assert_int_eq(mproc_pool_result_error(busy, 0)->error, MPROC_ECANCELED);
    ck_assert_int_eq(mproc_pool_result_error(queued, 0)->error,
                     MPROC_ECANCELED);
    mproc_pool_result_destroy(busy);
    mproc_pool_result_destroy(queued);
}
END_TEST

START_TEST(map_async_stores_outputs_when_given_no_array)
{
    mproc_pool *p = make_pool(2);
    int64_t in[50];
    for (int i = 0; i < 50; i++)
        in[i] = i;
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_square, NULL, in, 8, 50, NULL, 0, NULL),
        0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), 0);
    for (size_t i = 0; i < 50; i++) {
        const void *d;
        size_t len;
        ck_assert_int_eq(mproc_pool_result_output(r, i, &d, &len), 0);
        ck_assert_uint_eq(len, 8);
        ck_assert_int_eq(in_i64(d), (int64_t)(i * i));
    }
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

START_TEST(destroyed_result_writes_nothing_more_to_its_array)
{
    mproc_pool *p = make_pool(1);
    enum { N = 20 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = 30; /* ms each */
        out[i] = -1;
    }
    mproc_pool_result *r;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_sleep_ms, NULL, in, 8, N, out, 8, &co),
        0);
    usleep(70000);
    mproc_pool_result_destroy(r);
    int64_t snap[N];
    memcpy(snap, out, sizeof out);
    usleep(200000);
    ck_assert_int_eq(memcmp(snap, out, sizeof out), 0);
    ck_assert_int_eq(out[N - 1], -1);
    /* and the pool goes on */
    works_then_end(p, 4);
}
END_TEST

START_TEST(map_that_times_out_writes_nothing_after_it_returns)
{
    mproc_pool *p = make_pool(2);
    enum { N = 40 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++) {
        in[i] = 20;
        out[i] = -1;
    }
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1;
    ck_assert_int_eq(
        mproc_pool_map(p, t_sleep_ms, NULL, in, 8, N, out, 8, &co, 60),
        MPROC_ETIMEDOUT);
    int64_t snap[N];
    memcpy(snap, out, sizeof out);
    usleep(150000);
    ck_assert_int_eq(memcmp(snap, out, sizeof out), 0);
    end_pool(p);
}
END_TEST

/* ----- callbacks ----- */

struct cbstate {
    _Atomic int calls, progress;
    size_t last_done, last_total;
    pthread_t caller;
    _Atomic int off_thread;
    mproc_pool *pool;
    _Atomic int deadlock_seen;
};

static int cb_fail_on_7(void *ctx, size_t i, const void *out, size_t len)
{
    struct cbstate *s = ctx;
    (void)out;
    (void)len;
    s->calls++;
    if (!pthread_equal(pthread_self(), s->caller))
        s->off_thread = 1;
    return i == 7 ? MPROC_EIO : 0;
}

static int cb_progress(void *ctx, size_t done, size_t total)
{
    struct cbstate *s = ctx;
    s->progress++;
    s->last_done = done;
    s->last_total = total;
    return done == 3 ? 99 : 0;
}

START_TEST(failing_callback_is_recorded_and_never_stops_the_pool)
{
    mproc_pool *p = make_pool(2);
    int64_t in[20], out[20];
    for (int i = 0; i < 20; i++)
        in[i] = i;
    struct cbstate s;
    memset(&s, 0, sizeof s);
    s.caller = pthread_self();
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.on_success = cb_fail_on_7;
    co.ctx = &s;
    co.chunksize = 3;
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_square, NULL, in, 8, 20, out, 8, &co), 0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), 0);
    size_t idx = 0;
    ck_assert_int_eq(mproc_pool_result_callback_error(r, &idx), MPROC_EIO);
    ck_assert_uint_eq(idx, 7);
    ck_assert_int_eq(s.calls, 20);
    ck_assert(s.off_thread);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(out[i], in[i] * in[i]);
    mproc_pool_result_destroy(r);
    /* The pool still works, and join does not hang. */
    works_then_end(p, 5);
}
END_TEST

START_TEST(progress_callback_sees_every_task_end)
{
    mproc_pool *p = make_pool(2);
    enum { N = 57 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    struct cbstate s;
    memset(&s, 0, sizeof s);
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.on_progress = cb_progress;
    co.ctx = &s;
    mproc_pool_result *r;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_square, NULL, in, 8, N, out, 8, &co), 0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), 0);
    ck_assert_int_eq(s.progress, N);
    ck_assert_uint_eq(s.last_done, N);
    ck_assert_uint_eq(s.last_total, N);
    size_t idx;
    ck_assert_int_eq(mproc_pool_result_callback_error(r, &idx), 99);
    ck_assert_uint_eq(idx, 2);
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

static int cb_calls_blocking(void *ctx, size_t i, const void *out, size_t len)
{
    struct cbstate *s = ctx;
    (void)i;
    (void)out;
    (void)len;
    int64_t x = 2, y;
    mproc_pool_result *r = NULL;
    if (mproc_pool_map(s->pool, t_square, NULL, &x, 8, 1, &y, 8, NULL, 1000) ==
            MPROC_EDEADLK &&
        mproc_pool_apply(s->pool, t_square, NULL, &x, 8, &y, 8, NULL, 1000) ==
            MPROC_EDEADLK &&
        mproc_pool_join(s->pool, 1000) == MPROC_EDEADLK &&
        mproc_pool_terminate(s->pool) == MPROC_EDEADLK &&
        mproc_pool_apply_async(&r, s->pool, t_square, NULL, &x, 8, NULL) == 0 &&
        mproc_pool_result_get(r, 1000) == MPROC_EDEADLK)
        s->deadlock_seen = 1;
    mproc_pool_result_destroy(r);
    return 0;
}

START_TEST(blocking_calls_from_a_callback_are_refused)
{
    mproc_pool *p = make_pool(1);
    struct cbstate s;
    memset(&s, 0, sizeof s);
    s.pool = p;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.on_success = cb_calls_blocking;
    co.ctx = &s;
    mproc_pool_result *r;
    int64_t x = 3;
    ck_assert_int_eq(mproc_pool_apply_async(&r, p, t_square, NULL, &x, 8, &co),
                     0);
    ck_assert_int_eq(mproc_pool_result_get(r, test_ms(10000)), 0);
    ck_assert(s.deadlock_seen);
    mproc_pool_result_destroy(r);
    end_pool(p);
}
END_TEST

/* ----- imap ----- */

struct feed {
    int n;      /* inputs to give */
    int err_at; /* -1, or stop with MPROC_EIO there */
    int64_t v;  /* the input being given */
    _Atomic int pulled;
    int max_ahead; /* pulled - returned, largest seen */
    int returned;
};

static int feed_next(void *ctx, size_t index, const void **data, size_t *len)
{
    struct feed *f = ctx;
    if ((int)index == f->err_at)
        return MPROC_EIO;
    if ((int)index >= f->n)
        return 0;
    f->pulled++;
    if (f->pulled - f->returned > f->max_ahead)
        f->max_ahead = f->pulled - f->returned;
    f->v = (int64_t)index;
    *data = &f->v;
    *len = sizeof f->v;
    return 1;
}

START_TEST(imap_returns_in_order_and_takes_input_lazily)
{
    mproc_pool *p = make_pool(2);
    struct feed f = {500, -1, 0, 0, 0, 0};
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.max_in_flight = 16;
    mproc_pool_iter *it;
    ck_assert_int_eq(
        mproc_pool_imap(&it, p, t_square, NULL, feed_next, &f, &co), 0);
    ck_assert_int_eq(f.pulled, 0); /* nothing before the first next */
    for (int i = 0; i < 500; i++) {
        size_t idx;
        const void *d;
        size_t len;
        ck_assert_int_eq(
            mproc_pool_iter_next(it, &idx, &d, &len, test_ms(10000)), 0);
        ck_assert_uint_eq(idx, (size_t)i);
        ck_assert_uint_eq(len, 8);
        ck_assert_int_eq(in_i64(d), (int64_t)i * i);
        if (i == 0)
            ck_assert_int_lt(f.pulled, 500); /* results come before the end */
        f.returned++;
    }
    ck_assert_int_le(f.max_ahead, 17);
    ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0),
                     MPROC_ECLOSED);
    mproc_pool_iter_destroy(it);
    end_pool(p);
}
END_TEST

/* Input 0 is quick, input 1 sleeps 1.5 s, both in one chunk: the first
 * result must not wait for the second task. */
static int slow_after_first(void *ctx, size_t index, const void **data,
                            size_t *len)
{
    int64_t *v = ctx;
    if (index >= 2)
        return 0;
    *v = index == 0 ? 0 : 1500;
    *data = v;
    *len = sizeof *v;
    return 1;
}

START_TEST(imap_result_does_not_wait_for_the_next_task)
{
    mproc_pool *p = make_pool(1);
    int64_t v;
    mproc_pool_iter *it;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 2;
    co.out_max = 8; /* small outputs: the path that sends results in groups */
    ck_assert_int_eq(
        mproc_pool_imap(&it, p, t_sleep_ms, NULL, slow_after_first, &v, &co),
        0);
    int64_t t0 = test_now_ms();
    size_t idx;
    ck_assert_int_eq(mproc_pool_iter_next(it, &idx, NULL, NULL, test_ms(10000)),
                     0);
    ck_assert_uint_eq(idx, 0);
    ck_assert_int_lt(test_now_ms() - t0, 1000);
    ck_assert_int_eq(mproc_pool_iter_next(it, &idx, NULL, NULL, test_ms(10000)),
                     0);
    ck_assert_uint_eq(idx, 1);
    mproc_pool_iter_destroy(it);
    end_pool(p);
}
END_TEST

START_TEST(imap_unordered_returns_every_result_once)
{
    mproc_pool *p = make_pool(3);
    struct feed f = {300, -1, 0, 0, 0, 0};
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 4;
    mproc_pool_iter *it;
    ck_assert_int_eq(
        mproc_pool_imap_unordered(&it, p, t_fail_odd, NULL, feed_next, &f, &co),
        0);
    char seen[300] = {0};
    int fails = 0;
    for (int i = 0; i < 300; i++) {
        size_t idx;
        const void *d;
        size_t len;
        int rc = mproc_pool_iter_next(it, &idx, &d, &len, test_ms(10000));
        ck_assert_uint_lt(idx, 300);
        ck_assert(!seen[idx]);
        seen[idx] = 1;
        if (idx % 2 == 1 || idx == 10) {
            ck_assert_int_eq(rc, MPROC_ECHILD);
            ck_assert_ptr_nonnull(mproc_pool_iter_error(it));
            fails++;
        } else {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq(in_i64(d), (int64_t)idx);
        }
        f.returned++;
    }
    ck_assert_int_eq(fails, 151);
    ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0),
                     MPROC_ECLOSED);
    mproc_pool_iter_destroy(it);
    end_pool(p);
}
END_TEST

START_TEST(imap_input_error_comes_after_the_results_before_it)
{
    mproc_pool *p = make_pool(2);
    struct feed f = {100, 10, 0, 0, 0, 0};
    mproc_pool_iter *it;
    ck_assert_int_eq(
        mproc_pool_imap(&it, p, t_square, NULL, feed_next, &f, NULL), 0);
    for (int i = 0; i < 10; i++) {
        size_t idx;
        ck_assert_int_eq(
            mproc_pool_iter_next(it, &idx, NULL, NULL, test_ms(10000)), 0);
        ck_assert_uint_eq(idx, (size_t)i);
    }
    ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, test_ms(1000)),
                     MPROC_EIO);
    ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, 0),
                     MPROC_ECLOSED);
    mproc_pool_iter_destroy(it);
    end_pool(p);
}
END_TEST

START_TEST(open_iterator_keeps_a_closed_pool_running_until_destroyed)
{
    mproc_pool *p = make_pool(1);
    struct feed f = {1000, -1, 0, 0, 0, 0};
    mproc_pool_iter *it;
    ck_assert_int_eq(
        mproc_pool_imap(&it, p, t_square, NULL, feed_next, &f, NULL), 0);
    ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, test_ms(5000)),
                     0);
    ck_assert_int_eq(mproc_pool_close(p), 0);
    ck_assert_int_eq(mproc_pool_iter_next(it, NULL, NULL, NULL, test_ms(5000)),
                     0); /* inputs taken after close still run */
    ck_assert_int_eq(mproc_pool_join(p, 100), MPROC_ETIMEDOUT);
    mproc_pool_iter_destroy(it);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(10000)), 0);
    mproc_pool_destroy(p);
}
END_TEST

/* ----- ending ----- */

START_TEST(terminate_ends_a_task_that_never_returns_within_its_timeout)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = 2;
    o.terminate_timeout_ms = 300;
    mproc_pool *p = make_pool_with(&o);
    int64_t x = 0;
    mproc_pool_result *a, *b;
    ck_assert_int_eq(
        mproc_pool_apply_async(&a, p, t_forever, NULL, &x, 8, NULL), 0);
    ck_assert_int_eq(
        mproc_pool_apply_async(&b, p, t_forever_no_term, NULL, &x, 8, NULL), 0);
    usleep(100000);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_pool_terminate(p), 0);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_ge(took, 250);           /* the one ignoring SIGTERM... */
    ck_assert_int_lt(took, test_ms(3000)); /* ...was killed in time */
    ck_assert_int_eq(mproc_pool_result_get(a, 0), MPROC_ECHILD);
    ck_assert_int_eq(mproc_pool_result_get(b, 0), MPROC_ECHILD);
    ck_assert_int_eq(mproc_pool_terminate(p), 0); /* again: harmless */
    ck_assert_int_eq(mproc_pool_join(p, test_ms(1000)), 0);
    mproc_pool_destroy(p);
    mproc_pool_result_destroy(a);
    mproc_pool_result_destroy(b);
}
END_TEST

START_TEST(join_after_close_waits_for_the_work_submitted)
{
    mproc_pool *p = make_pool(2);
    int64_t in[10];
    for (int i = 0; i < 10; i++)
        in[i] = 20;
    mproc_pool_result *r;
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1;
    ck_assert_int_eq(
        mproc_pool_map_async(&r, p, t_sleep_ms, NULL, in, 8, 10, NULL, 0, &co),
        0);
    ck_assert_int_eq(mproc_pool_close(p), 0);
    ck_assert_int_eq(mproc_pool_join(p, test_ms(10000)), 0);
    ck_assert_int_eq(mproc_pool_result_ready(r), 1);
    ck_assert_int_eq(mproc_pool_result_get(r, 0), 0);
    mproc_pool_destroy(p);
    mproc_pool_result_destroy(r);
}
END_TEST

START_TEST(calls_from_a_forked_child_are_refused)
{
    mproc_pool *p = make_pool(1);
    pid_t pid = fork();
    if (pid == 0) {
        int64_t x = 1, y;
        int rc = mproc_pool_map(p, t_square, NULL, &x, 8, 1, &y, 8, NULL, 100);
        int rc2 = mproc_pool_close(p);
        mproc_pool_destroy(p); /* does nothing here */
        _exit(rc == MPROC_ENOTOWNER && rc2 == MPROC_ENOTOWNER ? 0 : 1);
    }
    ck_assert_int_eq(test_wait_status(pid), 0);
    works_then_end(p, 6);
}
END_TEST

START_TEST(large_outputs_arrive_whole)
{
    mproc_pool *p = make_pool(2);
    enum { N = 6 };
    const size_t big = (size_t)200 << 10;
    unsigned char *in = malloc(1000), *out = malloc(N * big);
    test_pattern(in, 1000, 1000);
    mproc_pool_input items[N];
    for (int i = 0; i < N; i++)
        items[i] = (mproc_pool_input){in, 1000};
    ck_assert_int_eq(mproc_pool_map(p, t_fill, NULL, items, 0, N, out, big,
                                    NULL, test_ms(20000)),
                     0);
    for (int i = 0; i < N; i++)
        ck_assert(test_pattern_ok(out + (size_t)i * big, big, (unsigned)big));
    free(in);
    free(out);
    end_pool(p);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("pool");
    TEST_ADD(s, map_returns_outputs_in_input_order);
    TEST_ADD(s, map_takes_inputs_of_variable_length);
    TEST_ADD(s, map_of_nothing_returns_at_once);
    TEST_ADD(s, workers_are_named_poolworker_n);
    TEST_ADD(s, worker_log_records_say_which_worker_wrote);
    TEST_ADD(s, default_worker_count_is_the_cpus_available);
    TEST_ADD(s, create_refuses_bad_options);
    TEST_ADD(s, calls_refuse_a_null_function_or_pool);
    TEST_ADD(s, map_after_close_is_refused);
    TEST_ADD(s, join_before_close_is_refused);
    TEST_ADD(s, input_or_bound_beyond_the_queues_is_refused);
    TEST_ADD(s, output_larger_than_its_bound_fails_with_emsgsize);
    TEST_ADD(s, failing_task_fails_its_own_result_with_its_record);
    TEST_ADD(
        s, mproc_fail_in_a_task_reaches_its_result_and_the_worker_is_replaced);
    TEST_ADD(s, killed_worker_fails_only_the_task_it_held);
    TEST_ADD(s, killed_worker_is_found_without_pidfds);
    TEST_ADD(s, worker_exiting_inside_a_task_fails_that_task_with_its_status);
    TEST_ADD(s, failing_initializer_fails_create_with_its_error);
    TEST_ADD(s, initializer_runs_in_every_worker_with_its_argument);
    TEST_ADD(s, max_tasks_per_worker_replaces_each_worker_after_that_many);
    TEST_ADD(s, workers_ignore_sigint);
    TEST_ADD(s, apply_returns_the_output_and_its_length);
    TEST_ADD(s, apply_async_result_can_be_got_twice);
    TEST_ADD(s, result_outlives_its_pool_and_never_waits_for_it);
    TEST_ADD(s, map_async_stores_outputs_when_given_no_array);
    TEST_ADD(s, destroyed_result_writes_nothing_more_to_its_array);
    TEST_ADD(s, map_that_times_out_writes_nothing_after_it_returns);
    TEST_ADD(s, failing_callback_is_recorded_and_never_stops_the_pool);
    TEST_ADD(s, progress_callback_sees_every_task_end);
    TEST_ADD(s, blocking_calls_from_a_callback_are_refused);
    TEST_ADD(s, imap_returns_in_order_and_takes_input_lazily);
    TEST_ADD(s, imap_result_does_not_wait_for_the_next_task);
    TEST_ADD(s, imap_unordered_returns_every_result_once);
    TEST_ADD(s, imap_input_error_comes_after_the_results_before_it);
    TEST_ADD(s, open_iterator_keeps_a_closed_pool_running_until_destroyed);
    TEST_ADD(s, terminate_ends_a_task_that_never_returns_within_its_timeout);
    TEST_ADD(s, join_after_close_waits_for_the_work_submitted);
    TEST_ADD(s, calls_from_a_forked_child_are_refused);
    TEST_ADD(s, large_outputs_arrive_whole);
    return s;
}
