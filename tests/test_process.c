/* Processes: start, names, join, exit codes, failure records, daemon
 * children, spawned programs, and every bad input. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/process.h"
#include "internal/registry.h"
#include "mproc.h"
#include "os/os.h"
#include "os/proc.h"
#include "os/task.h"
#include "testlib.h"

/* ---- helpers ------------------------------------------------------------ */

/* A pipe made by a test; children get a copy of it through arg. */
typedef struct {
    int r, w;
} test_pipe;

static test_pipe make_pipe(void)
{
    int fds[2];
    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    test_pipe tp = {fds[0], fds[1]};
    return tp;
}

static void close_pipe(test_pipe *tp)
{
    if (tp->r >= 0)
        close(tp->r);
    if (tp->w >= 0)
        close(tp->w);
    tp->r = tp->w = -1;
}

/* Reads a decimal pid ended by a newline (other holders of the pipe may keep
 * it open, so no waiting for EOF). */
static pid_t read_pid(int fd)
{
    char buf[32];
    size_t off = 0;
    while (off + 1 < sizeof buf) {
        ssize_t r = read(fd, buf + off, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || buf[off] == '\n')
            break;
        off++;
    }
    buf[off] = '\0';
    return (pid_t)atoi(buf);
}

static void write_str(int fd, const char *s)
{
    size_t len = strlen(s);
    if (write(fd, s, len) != (ssize_t)len)
        _exit(99);
}

static mproc_process *start(int (*fn)(void *), void *arg)
{
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_start(&p, fn, arg, NULL), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

static int join_exitcode(mproc_process *p)
{
    ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
    int code = 12345;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
    return code;
}

/* ---- child functions ---------------------------------------------------- */

static int child_returns_zero(void *arg)
{
    (void)arg;
    return 0;
}

static int child_returns_arg(void *arg)
{
    return *(int *)arg;
}

static int child_fails(void *arg)
{
    (void)arg;
    mproc_fail(MPROC_EINVAL, "bad value %d", 42);
    return 0; /* not reached */
}
static const int child_fails_line = __LINE__ - 3;

/* Waits to be signalled. (Check's runner catches SIGTERM to kill its process
 * group, and children inherit that: tests that terminate restore the default
 * with default_sigterm() before starting the child.) */
static int child_pauses(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return 0;
}

static void default_sigterm(void)
{
    signal(SIGTERM, SIG_DFL);
}

/* Blocks until the test closes the pipe's write end. */
static int child_waits_for_eof(void *arg)
{
    test_pipe *tp = arg;
    close(tp->w);
    char c;
    while (read(tp->r, &c, 1) < 0 && errno == EINTR)
        ;
    return 0;
}

static int child_writes_name(void *arg)
{
    test_pipe *tp = arg;
    close(tp->r);
    write_str(tp->w, mproc_current_name());
    return 0;
}

static int child_exits_3(void *arg)
{
    (void)arg;
    _exit(3);
}

/* ---- exit codes and failure records ------------------------------------- */

START_TEST(exitcode_of_normal_return_is_zero_and_no_failure)
{
    mproc_process *p = start(child_returns_zero, NULL);
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_ptr_null(mproc_process_error(p));
    mproc_process_destroy(p);
}
END_TEST

START_TEST(exitcode_of_nonzero_return_is_that_value)
{
    int v = 7;
    mproc_process *p = start(child_returns_arg, &v);
    ck_assert_int_eq(join_exitcode(p), 7);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->exitcode, 7);
    ck_assert_int_eq(f->signal, 0);
    ck_assert_int_eq(f->error, 7);
    ck_assert(f->from_child);
    ck_assert_int_eq(f->pid, mproc_process_pid(p));
    ck_assert_str_eq(f->name, mproc_process_name(p));
    ck_assert_str_eq(f->file, "");
    ck_assert_int_eq(f->line, 0);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(negative_return_exits_1_and_keeps_the_code_in_the_record)
{
    int v = MPROC_ETIMEDOUT;
    mproc_process *p = start(child_returns_arg, &v);
    ck_assert_int_eq(join_exitcode(p), 1);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->error, MPROC_ETIMEDOUT);
    ck_assert_ptr_nonnull(strstr(f->message, "MPROC_ETIMEDOUT"));
    mproc_process_destroy(p);
}
END_TEST

START_TEST(fail_sends_code_message_file_line_and_backtrace)
{
    mproc_process *p = start(child_fails, NULL);
    ck_assert_int_eq(join_exitcode(p), 1);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert(f->from_child);
    ck_assert_int_eq(f->exitcode, 1);
    ck_assert_int_eq(f->signal, 0);
    ck_assert_int_eq(f->error, MPROC_EINVAL);
    ck_assert_str_eq(f->message, "bad value 42");
    ck_assert_ptr_nonnull(strstr(f->file, "test_process.c"));
    ck_assert_int_eq(f->line, child_fails_line);
    ck_assert_int_gt((int)strlen(f->backtrace), 0);
    ck_assert_str_eq(f->name, mproc_process_name(p));
    mproc_process_destroy(p);
}
END_TEST

static void *thread_fails(void *arg)
{
    (void)arg;
    mproc_fail(MPROC_EBUSY, "from a thread");
    return NULL;
}

static int child_fails_in_a_thread(void *arg)
{
    (void)arg;
    pthread_t t;
    if (pthread_create(&t, NULL, thread_fails, NULL) != 0)
        return 60;
    pthread_join(t, NULL);
    return 61; /* not reached: mproc_fail ends the whole process */
}

START_TEST(fail_in_a_thread_of_the_child_reaches_the_parent)
{
    mproc_process *p = start(child_fails_in_a_thread, NULL);
    ck_assert_int_eq(join_exitcode(p), 1);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert(f->from_child);
    ck_assert_int_eq(f->error, MPROC_EBUSY);
    ck_assert_str_eq(f->message, "from a thread");
    mproc_process_destroy(p);
}
END_TEST

START_TEST(killed_child_has_minus_signal_and_a_parent_record)
{
    mproc_process *p = start(child_pauses, NULL);
    ck_assert_int_eq(mproc_process_kill(p), 0);
    ck_assert_int_eq(join_exitcode(p), -SIGKILL);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f->exitcode, -9);
    ck_assert_int_eq(f->signal, 9);
    ck_assert_int_eq(f->error, MPROC_ECHILD);
    ck_assert(!f->from_child);
    ck_assert_ptr_nonnull(strstr(f->message, "KILL"));
    ck_assert_str_eq(f->backtrace, "");
    mproc_process_destroy(p);
}
END_TEST

START_TEST(terminate_gives_minus_15)
{
    default_sigterm();
    mproc_process *p = start(child_pauses, NULL);
    ck_assert_int_eq(mproc_process_terminate(p), 0);
    ck_assert_int_eq(join_exitcode(p), -SIGTERM);
    ck_assert_int_eq(mproc_process_error(p)->signal, SIGTERM);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(signal_sends_any_signal)
{
    mproc_process *p = start(child_pauses, NULL);
    ck_assert_int_eq(mproc_process_signal(p, SIGUSR1), 0);
    ck_assert_int_eq(join_exitcode(p), -SIGUSR1);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(direct_exit_status_gives_a_parent_record)
{
    mproc_process *p = start(child_exits_3, NULL);
    ck_assert_int_eq(join_exitcode(p), 3);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert(!f->from_child);
    ck_assert_int_eq(f->error, MPROC_ECHILD);
    ck_assert_str_eq(f->message, "exited with status 3");
    mproc_process_destroy(p);
}
END_TEST

/* Finds the child's failure pipe: its only write-only pipe. */
static int find_failure_fd(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFL);
        struct stat st;
        if (fl >= 0 && (fl & O_ACCMODE) == O_WRONLY && fstat(fd, &st) == 0 &&
            S_ISFIFO(st.st_mode))
            return fd;
    }
    return -1;
}

static int child_sends_malformed_record(void *arg)
{
    int fd = find_failure_fd();
    if (fd < 0)
        _exit(90);
    if (*(int *)arg == 0) {
        /* A well-framed record whose lengths lie. */
        unsigned char rec[28] = {1, 0, 0, 0};
        memset(rec + 12, 0xff, 16);
        mproc__deadline d = mproc__deadline_forever();
        if (mproc__frame_send(fd, rec, sizeof rec, &d) != 0)
            _exit(91);
    } else {
        write_str(fd, "garbage, not a frame at all");
    }
    _exit(1);
}

static int child_checks_failure_pipe(void *arg)
{
    (void)arg;
    int fd = find_failure_fd();
    if (fd < 0)
        return 50;
    if ((fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0)
        return 51;
    return 0;
}

START_TEST(failure_pipe_is_close_on_exec)
{
    mproc_process *p = start(child_checks_failure_pipe, NULL);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(malformed_record_is_reported_not_trusted)
{
    for (int kind = 0; kind < 2; kind++) {
        mproc_process *p = start(child_sends_malformed_record, &kind);
        ck_assert_int_eq(join_exitcode(p), 1);
        const mproc_failure *f = mproc_process_error(p);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(f->error, MPROC_EPROTO);
        ck_assert(!f->from_child);
        ck_assert_str_eq(f->file, "");
        mproc_process_destroy(p);
    }
}
END_TEST

/* Forks a plain grandchild that keeps the failure pipe open, reports its pid,
 * and fails: the parent's join must not wait for the grandchild. */
static int child_leaves_pipe_holder(void *arg)
{
    test_pipe *tp = arg;
    close(tp->r);
    pid_t g = fork();
    if (g == 0) {
        close(tp->w);
        for (;;)
            pause();
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", (int)g);
    write_str(tp->w, buf);
    return 5;
}

START_TEST(join_does_not_wait_for_a_descendant_holding_the_failure_pipe)
{
    ck_assert_int_eq(mproc__os_set_child_subreaper(), 0);
    test_pipe tp = make_pipe();
    mproc_process *p = start(child_leaves_pipe_holder, &tp);
    close(tp.w);
    tp.w = -1;
    pid_t g = read_pid(tp.r);
    ck_assert_int_gt(g, 0);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_process_join(p, test_ms(5000)), 0);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
    int code;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, 5);
    ck_assert_int_eq(mproc_process_error(p)->error, 5);
    kill(g, SIGKILL);
    ck_assert_int_eq(test_wait_status(g), 128 + SIGKILL);
    mproc_process_destroy(p);
    close_pipe(&tp);
}
END_TEST

START_TEST(failure_format_names_everything)
{
    mproc_process *p = start(child_fails, NULL);
    ck_assert_int_eq(mproc_process_join(p, MPROC_FOREVER), 0);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    char buf[8192];
    int n = mproc_failure_format(f, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(n, (int)strlen(buf));
    ck_assert_ptr_nonnull(strstr(buf, mproc_process_name(p)));
    ck_assert_ptr_nonnull(strstr(buf, "exit code 1"));
    ck_assert_ptr_nonnull(strstr(buf, "MPROC_EINVAL"));
    ck_assert_ptr_nonnull(strstr(buf, "bad value 42"));
    char where[64];
    snprintf(where, sizeof where, "test_process.c:%d", child_fails_line);
    ck_assert_ptr_nonnull(strstr(buf, where));
    /* Too small a buffer: truncated, NUL-terminated, full length returned. */
    char small[8];
    ck_assert_int_eq(mproc_failure_format(f, small, sizeof small), n);
    ck_assert_int_eq((int)strlen(small), 7);
    ck_assert_int_eq(mproc_failure_format(f, NULL, 0), n);
    ck_assert_int_eq(mproc_failure_format(NULL, buf, sizeof buf), MPROC_EINVAL);
    ck_assert_int_eq(mproc_failure_format(f, NULL, 5), MPROC_EINVAL);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(fail_outside_a_started_child_prints_and_exits_1)
{
    test_pipe tp = make_pipe();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(tp.w, 2);
        mproc_fail(MPROC_EBUSY, "plain %s", "fork");
    }
    close(tp.w);
    tp.w = -1;
    char buf[512];
    test_read_to_eof(tp.r, buf, sizeof buf);
    ck_assert_int_eq(test_wait_status(pid), 1);
    ck_assert_ptr_nonnull(strstr(buf, "mproc: MainProcess: "));
    ck_assert_ptr_nonnull(strstr(buf, "test_process.c:"));
    ck_assert_ptr_nonnull(strstr(buf, "plain fork (MPROC_EBUSY)"));
    close_pipe(&tp);
}
END_TEST

/* ---- stdio -------------------------------------------------------------- */

static int child_prints_b(void *arg)
{
    (void)arg;
    fputs("B", stdout);
    return 0;
}

START_TEST(stdout_is_flushed_by_the_child_and_never_duplicated)
{
    test_pipe tp = make_pipe();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* A helper with stdout on the pipe, fully buffered. */
        dup2(tp.w, 1);
        setvbuf(stdout, NULL, _IOFBF, 4096);
        fputs("A", stdout);
        mproc_process *p = NULL;
        if (mproc_process_start(&p, child_prints_b, NULL, NULL) != 0)
            _exit(10);
        if (mproc_process_join(p, MPROC_FOREVER) != 0)
            _exit(11);
        mproc_process_destroy(p);
        fputs("C", stdout);
        fflush(stdout);
        _exit(0);
    }
    close(tp.w);
    tp.w = -1;
    char buf[64];
    test_read_to_eof(tp.r, buf, sizeof buf);
    ck_assert_int_eq(test_wait_status(pid), 0);
    ck_assert_str_eq(buf, "ABC");
    close_pipe(&tp);
}
END_TEST

/* ---- join, timeouts, liveness, pidfd ------------------------------------ */

START_TEST(join_times_out_and_the_child_stays_joinable)
{
    test_pipe tp = make_pipe();
    mproc_process *p = start(child_waits_for_eof, &tp);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_process_join(p, 100), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 95);
    ck_assert_int_eq(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
    int code = 77;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), MPROC_ESTATE);
    ck_assert_int_eq(code, 77);
    ck_assert_int_eq(mproc_process_is_alive(p), 1);
    close_pipe(&tp);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(second_join_is_a_state_error_and_changes_nothing)
{
    int v = 4;
    mproc_process *p = start(child_returns_arg, &v);
    ck_assert_int_eq(join_exitcode(p), 4);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_int_eq(mproc_process_join(p, MPROC_FOREVER), MPROC_ESTATE);
    ck_assert_int_eq(mproc_process_join(p, 0), MPROC_ESTATE);
    int code;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, 4);
    ck_assert_ptr_eq(mproc_process_error(p), f);
    ck_assert_int_eq(f->error, 4);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(kill_and_terminate_after_join_are_state_errors)
{
    mproc_process *p = start(child_returns_zero, NULL);
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_int_eq(mproc_process_kill(p), MPROC_ESTATE);
    ck_assert_int_eq(mproc_process_terminate(p), MPROC_ESTATE);
    ck_assert_int_eq(mproc_process_signal(p, SIGUSR1), MPROC_ESTATE);
    ck_assert_int_eq(mproc_process_is_alive(p), 0);
    int code;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, 0);
    ck_assert_ptr_null(mproc_process_error(p));
    mproc_process_destroy(p);
}
END_TEST

START_TEST(kill_of_an_exited_unjoined_child_keeps_its_status)
{
    int v = 6;
    mproc_process *p = start(child_returns_arg, &v);
    struct pollfd pfd = {mproc_process_fd(p), POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, (int)test_ms(10000)), 1);
    ck_assert_int_eq(mproc_process_is_alive(p), 0);
    ck_assert_int_eq(mproc_process_kill(p), 0);
    ck_assert_int_eq(join_exitcode(p), 6);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(join_rejects_negative_timeouts_and_changes_nothing)
{
    mproc_process *p = start(child_returns_zero, NULL);
    ck_assert_int_eq(mproc_process_join(p, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_join(p, INT64_MIN), MPROC_EINVAL);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(pidfd_becomes_readable_when_the_child_exits)
{
    test_pipe tp = make_pipe();
    mproc_process *p = start(child_waits_for_eof, &tp);
    int fd = mproc_process_fd(p);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    struct pollfd pfd = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 50), 0);
    close_pipe(&tp);
    ck_assert_int_eq(poll(&pfd, 1, (int)test_ms(10000)), 1);
    ck_assert(pfd.revents & POLLIN);
    ck_assert_int_eq(mproc_process_is_alive(p), 0);
    ck_assert_int_eq(mproc_process_join(p, 0), 0);
    mproc_process_destroy(p);
}
END_TEST

static mproc_process *shared_handle;

static void *join_thread(void *arg)
{
    int *rc = arg;
    *rc = mproc_process_join(shared_handle, test_ms(10000));
    return NULL;
}

START_TEST(concurrent_joins_reap_once)
{
    test_pipe tp = make_pipe();
    shared_handle = start(child_waits_for_eof, &tp);
    pthread_t t[3];
    int rc[3] = {1, 1, 1};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, join_thread, &rc[i]), 0);
    usleep(20000);
    close_pipe(&tp);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    int zeros = 0, states = 0;
    for (int i = 0; i < 3; i++) {
        zeros += rc[i] == 0;
        states += rc[i] == MPROC_ESTATE;
    }
    ck_assert_int_eq(zeros, 1);
    ck_assert_int_eq(states, 2);
    mproc_process_destroy(shared_handle);
}
END_TEST

/* In a child: a copy of a sibling's handle can be inspected and signalled
 * but not joined. */
static mproc_process *sibling;

static int child_uses_sibling_handle(void *arg)
{
    (void)arg;
    if (mproc_process_join(sibling, 0) != MPROC_ENOTOWNER)
        return 10;
    if (mproc_process_is_alive(sibling) != 1)
        return 11;
    if (mproc_process_fd(sibling) < 0 || mproc_process_pid(sibling) <= 0)
        return 12;
    if (mproc_process_terminate(sibling) != 0)
        return 13;
    mproc_process_destroy(sibling); /* frees the child's copy only */
    return 0;
}

START_TEST(inherited_sibling_handle_cannot_be_joined_in_the_child)
{
    default_sigterm();
    sibling = start(child_pauses, NULL);
    mproc_process *p = start(child_uses_sibling_handle, NULL);
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_int_eq(join_exitcode(sibling), -SIGTERM);
    mproc_process_destroy(p);
    mproc_process_destroy(sibling);
}
END_TEST

START_TEST(destroy_reaps_an_exited_child)
{
    mproc_process *p = start(child_returns_zero, NULL);
    pid_t pid = mproc_process_pid(p);
    struct pollfd pfd = {mproc_process_fd(p), POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, (int)test_ms(10000)), 1);
    mproc_process_destroy(p);
    /* Reaped: no zombie left to wait for. */
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(without_a_pidfd_join_kill_and_exit_codes_still_work)
{
    mproc__process_test_no_pidfd = true;
    test_pipe tp = make_pipe();
    mproc_process *p = start(child_waits_for_eof, &tp);
    ck_assert_int_eq(mproc_process_fd(p), MPROC_ENOSYS);
    ck_assert_int_eq(mproc_process_is_alive(p), 1);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_process_join(p, 60), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 55);
    ck_assert_int_eq(mproc_process_join(p, 0), MPROC_ETIMEDOUT);
    close_pipe(&tp);
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_int_eq(mproc_process_is_alive(p), 0);
    ck_assert_int_eq(mproc_process_join(p, 0), MPROC_ESTATE);
    mproc_process_destroy(p);

    p = start(child_pauses, NULL);
    ck_assert_int_eq(mproc_process_kill(p), 0);
    ck_assert_int_eq(join_exitcode(p), -SIGKILL);
    ck_assert_int_eq(mproc_process_kill(p), MPROC_ESTATE);
    mproc_process_destroy(p);

    p = start(child_fails, NULL);
    ck_assert_int_eq(join_exitcode(p), 1);
    ck_assert_int_eq(mproc_process_error(p)->error, MPROC_EINVAL);
    mproc_process_destroy(p);

    char *const argv[] = {"sh", "-c", "exit 9", NULL};
    ck_assert_int_eq(mproc_process_spawn(&p, "sh", argv, NULL), 0);
    ck_assert_int_eq(join_exitcode(p), 9);
    mproc_process_destroy(p);
    mproc__process_test_no_pidfd = false;
}
END_TEST

START_TEST(join_reports_a_status_lost_to_ignored_sigchld)
{
    /* The kernel reaps children itself when SIGCHLD is ignored. */
    signal(SIGCHLD, SIG_IGN);
    mproc_process *p = start(child_returns_zero, NULL);
    ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), MPROC_ESRCH);
    int code = 42;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), MPROC_ESRCH);
    ck_assert_int_eq(code, 42);
    ck_assert_int_eq(mproc_process_join(p, 0), MPROC_ESTATE);
    ck_assert_int_eq(mproc_process_is_alive(p), 0);
    ck_assert_ptr_null(mproc_process_error(p));
    mproc_process_destroy(p);
    signal(SIGCHLD, SIG_DFL);
}
END_TEST

/* ---- names and identity ------------------------------------------------- */

START_TEST(default_names_count_up_as_in_python)
{
    test_pipe tp = make_pipe();
    mproc_process *a = start(child_writes_name, &tp);
    ck_assert_int_eq(join_exitcode(a), 0);
    mproc_process *b = start(child_writes_name, &tp);
    ck_assert_int_eq(join_exitcode(b), 0);
    close(tp.w);
    tp.w = -1;
    unsigned n = 0;
    ck_assert_int_eq(sscanf(mproc_process_name(a), "Process-%u", &n), 1);
    char want[32];
    snprintf(want, sizeof want, "Process-%u", n + 1);
    ck_assert_str_eq(mproc_process_name(b), want);
    char buf[128], both[128];
    test_read_to_eof(tp.r, buf, sizeof buf);
    snprintf(both, sizeof both, "%s%s", mproc_process_name(a),
             mproc_process_name(b));
    ck_assert_str_eq(buf, both);
    ck_assert_str_eq(mproc_current_name(), "MainProcess");
    mproc_process_destroy(a);
    mproc_process_destroy(b);
    close_pipe(&tp);
}
END_TEST

/* Starts a grandchild that writes its name, then writes "|" and its own. */
static int child_starts_grandchild(void *arg)
{
    test_pipe *tp = arg;
    mproc_process *g = NULL;
    if (mproc_process_start(&g, child_writes_name, tp, NULL) != 0)
        return 20;
    if (mproc_process_join(g, MPROC_FOREVER) != 0)
        return 21;
    int code = -1;
    if (mproc_process_exitcode(g, &code) != 0 || code != 0)
        return 22;
    mproc_process_destroy(g);
    write_str(tp->w, "|");
    write_str(tp->w, mproc_current_name());
    return 0;
}

START_TEST(grandchild_default_name_is_process_n_colon_m)
{
    test_pipe tp = make_pipe();
    mproc_process *p = start(child_starts_grandchild, &tp);
    close(tp.w);
    tp.w = -1;
    char buf[128];
    test_read_to_eof(tp.r, buf, sizeof buf);
    ck_assert_int_eq(join_exitcode(p), 0);
    char want[128];
    snprintf(want, sizeof want, "%s:1|%s", mproc_process_name(p),
             mproc_process_name(p));
    ck_assert_str_eq(buf, want);
    mproc_process_destroy(p);
    close_pipe(&tp);
}
END_TEST

START_TEST(given_name_is_the_childs_name)
{
    test_pipe tp = make_pipe();
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.name = "worker";
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_start(&p, child_writes_name, &tp, &o), 0);
    close(tp.w);
    tp.w = -1;
    ck_assert_str_eq(mproc_process_name(p), "worker");
    ck_assert_int_eq(mproc_process_is_daemon(p), 0);
    char buf[64];
    test_read_to_eof(tp.r, buf, sizeof buf);
    ck_assert_str_eq(buf, "worker");
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
    close_pipe(&tp);
}
END_TEST

static int child_checks_identity(void *arg)
{
    pid_t parent = *(pid_t *)arg;
    if (mproc_parent_pid() != parent)
        return 30;
    if (mproc_current_pid() != getpid() || mproc_current_pid() == parent)
        return 31;
    return 0;
}

START_TEST(current_pid_and_parent_pid_are_the_callers)
{
    pid_t me = getpid();
    ck_assert_int_eq(mproc_current_pid(), me);
    ck_assert_int_eq(mproc_parent_pid(), getppid());
    mproc_process *p = start(child_checks_identity, &me);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(name_too_long_is_refused_and_changes_nothing)
{
    char name[MPROC_PROCESS_NAME_MAX + 2];
    memset(name, 'x', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.name = name;
    mproc_process *p = (mproc_process *)&o; /* sentinel: must stay */
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_ENAMETOOLONG);
    ck_assert_ptr_eq(p, (mproc_process *)&o);
    mproc_spawn_opts so = MPROC_SPAWN_OPTS_INIT;
    so.name = name;
    ck_assert_int_eq(mproc_process_spawn(&p, "true", NULL, &so),
                     MPROC_ENAMETOOLONG);
    ck_assert_ptr_eq(p, (mproc_process *)&o);
    /* The longest allowed name works, and no number was used up. */
    name[MPROC_PROCESS_NAME_MAX] = '\0';
    p = NULL;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o), 0);
    ck_assert_str_eq(mproc_process_name(p), name);
    mproc_process *q = start(child_returns_zero, NULL);
    ck_assert_str_eq(mproc_process_name(q), "Process-2");
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_int_eq(join_exitcode(q), 0);
    mproc_process_destroy(p);
    mproc_process_destroy(q);
}
END_TEST

/* ---- daemon children ---------------------------------------------------- */

/* Starts a daemon grandchild, reports its pid, and waits to be killed. */
static int child_starts_daemon(void *arg)
{
    test_pipe *tp = arg;
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.daemon = true;
    mproc_process *g = NULL;
    if (mproc_process_start(&g, child_pauses, NULL, &o) != 0)
        return 40;
    if (mproc_process_is_daemon(g) != 1)
        return 41;
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", (int)mproc_process_pid(g));
    write_str(tp->w, buf);
    close(tp->w);
    for (;;)
        pause();
}

START_TEST(daemon_child_dies_when_its_parent_is_sigkilled)
{
    /* The orphaned grandchild comes to us, so we can reap it. */
    ck_assert_int_eq(mproc__os_set_child_subreaper(), 0);
    test_pipe tp = make_pipe();
    mproc_process *mid = start(child_starts_daemon, &tp);
    close(tp.w);
    tp.w = -1;
    pid_t g = read_pid(tp.r);
    ck_assert_int_gt(g, 0);
    int gfd = mproc__os_pidfd_open(g);
    ck_assert_int_ge(gfd, 0);
    struct pollfd pfd = {gfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 0), 0); /* alive while mid lives */
    ck_assert_int_eq(mproc_process_kill(mid), 0);
    ck_assert_int_eq(join_exitcode(mid), -SIGKILL);
    ck_assert_int_eq(poll(&pfd, 1, (int)test_ms(5000)), 1);
    ck_assert_int_eq(test_wait_status(g), 128 + SIGKILL);
    close(gfd);
    mproc_process_destroy(mid);
    close_pipe(&tp);
}
END_TEST

/* Starts a daemon grandchild, reports its pid, and returns at once. */
static int child_starts_daemon_and_returns(void *arg)
{
    test_pipe *tp = arg;
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.daemon = true;
    mproc_process *g = NULL;
    if (mproc_process_start(&g, child_pauses, NULL, &o) != 0)
        return 40;
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", (int)mproc_process_pid(g));
    write_str(tp->w, buf);
    return 0;
}

START_TEST(daemon_child_dies_when_its_parent_returns)
{
    ck_assert_int_eq(mproc__os_set_child_subreaper(), 0);
    test_pipe tp = make_pipe();
    mproc_process *mid = start(child_starts_daemon_and_returns, &tp);
    pid_t g = read_pid(tp.r);
    ck_assert_int_gt(g, 0);
    int gfd = mproc__os_pidfd_open(g);
    ck_assert_int_ge(gfd, 0);
    ck_assert_int_eq(join_exitcode(mid), 0);
    struct pollfd pfd = {gfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, (int)test_ms(5000)), 1);
    ck_assert_int_eq(test_wait_status(g), 128 + SIGKILL);
    close(gfd);
    mproc_process_destroy(mid);
    close_pipe(&tp);
}
END_TEST

/* ---- spawned programs --------------------------------------------------- */

START_TEST(spawn_of_a_missing_program_is_enoent)
{
    mproc_process *p = NULL;
    ck_assert_int_eq(
        mproc_process_spawn(&p, "/nonexistent/mproc-prog", NULL, NULL),
        MPROC_ENOENT);
    ck_assert_int_eq(
        mproc_process_spawn(&p, "mproc-no-such-program-anywhere", NULL, NULL),
        MPROC_ENOENT);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(spawn_of_a_non_executable_file_is_eacces)
{
    char path[512];
    test_path(path, sizeof path, "not-executable");
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    write_str(fd, "#!/bin/sh\nexit 0\n");
    close(fd);
    mproc_process *p = NULL;
    int rc = mproc_process_spawn(&p, path, NULL, NULL);
    unlink(path);
    ck_assert_int_eq(rc, MPROC_EACCES);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(spawn_with_stdout_on_a_pipe_delivers_the_output)
{
    test_pipe tp = make_pipe();
    mproc_spawn_opts o = MPROC_SPAWN_OPTS_INIT;
    o.stdout_fd = tp.w;
    char *const argv[] = {"echo", "My name is Elliot", NULL};
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_spawn(&p, "echo", argv, &o), 0);
    close(tp.w);
    tp.w = -1;
    char buf[64];
    test_read_to_eof(tp.r, buf, sizeof buf);
    ck_assert_str_eq(buf, "My name is Elliot\n");
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_ptr_null(mproc_process_error(p));
    mproc_process_destroy(p);
    close_pipe(&tp);
}
END_TEST

START_TEST(spawn_redirects_stdin_and_stdout_together)
{
    test_pipe in = make_pipe(), out = make_pipe();
    mproc_spawn_opts o = MPROC_SPAWN_OPTS_INIT;
    o.stdin_fd = in.r;
    o.stdout_fd = out.w;
    o.stderr_fd = 2;
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_spawn(&p, "cat", NULL, &o), 0);
    close(in.r);
    close(out.w);
    in.r = out.w = -1;
    write_str(in.w, "through cat");
    close(in.w);
    in.w = -1;
    char buf[64];
    test_read_to_eof(out.r, buf, sizeof buf);
    ck_assert_str_eq(buf, "through cat");
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
    close_pipe(&in);
    close_pipe(&out);
}
END_TEST

START_TEST(spawned_program_exit_status_gives_a_parent_record)
{
    char *const argv[] = {"sh", "-c", "exit 3", NULL};
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_spawn(&p, "/bin/sh", argv, NULL), 0);
    ck_assert_int_gt(mproc_process_pid(p), 0);
    ck_assert_int_eq(strncmp(mproc_process_name(p), "Process-", 8), 0);
    ck_assert_int_eq(join_exitcode(p), 3);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert(!f->from_child);
    ck_assert_int_eq(f->error, MPROC_ECHILD);
    ck_assert_str_eq(f->message, "exited with status 3");
    mproc_process_destroy(p);
}
END_TEST

START_TEST(spawned_program_gets_default_sigpipe)
{
    /* Even when we ignore SIGPIPE, the program dies of it as usual. */
    signal(SIGPIPE, SIG_IGN);
    test_pipe tp = make_pipe();
    close(tp.r);
    tp.r = -1;
    mproc_spawn_opts o = MPROC_SPAWN_OPTS_INIT;
    o.stdout_fd = tp.w;
    char *const argv[] = {"yes", NULL};
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_spawn(&p, "yes", argv, &o), 0);
    ck_assert_int_eq(join_exitcode(p), -SIGPIPE);
    mproc_process_destroy(p);
    close_pipe(&tp);
    signal(SIGPIPE, SIG_DFL);
}
END_TEST

START_TEST(spawn_with_an_fd_that_is_not_open_is_ebadf)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    close(fd); /* now surely not open */
    mproc_spawn_opts o = MPROC_SPAWN_OPTS_INIT;
    mproc_process *p = NULL;
    o.stdout_fd = fd;
    ck_assert_int_eq(mproc_process_spawn(&p, "true", NULL, &o), MPROC_EBADF);
    o.stdout_fd = -1;
    o.stdin_fd = -7;
    ck_assert_int_eq(mproc_process_spawn(&p, "true", NULL, &o), MPROC_EBADF);
    ck_assert_ptr_null(p);
}
END_TEST

/* ---- bad input ---------------------------------------------------------- */

START_TEST(null_handles_are_rejected)
{
    int code = 5;
    ck_assert_int_eq(mproc_process_join(NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_join(NULL, MPROC_FOREVER), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_is_alive(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_exitcode(NULL, &code), MPROC_EINVAL);
    ck_assert_int_eq(code, 5);
    ck_assert_int_eq(mproc_process_terminate(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_kill(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_signal(NULL, SIGTERM), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_fd(NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_pid(NULL), MPROC_EINVAL);
    ck_assert_ptr_null(mproc_process_name(NULL));
    ck_assert_int_eq(mproc_process_is_daemon(NULL), MPROC_EINVAL);
    ck_assert_ptr_null(mproc_process_error(NULL));
    mproc_process_destroy(NULL);
}
END_TEST

START_TEST(start_and_spawn_reject_null_arguments)
{
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_start(NULL, child_returns_zero, NULL, NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_start(&p, NULL, NULL, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_spawn(NULL, "true", NULL, NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_spawn(&p, NULL, NULL, NULL), MPROC_EINVAL);
    ck_assert_ptr_null(p);
    /* Nothing was started: the next child is still number 1. */
    p = start(child_returns_zero, NULL);
    ck_assert_str_eq(mproc_process_name(p), "Process-1");
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
}
END_TEST

START_TEST(bad_arguments_on_a_live_child_change_nothing)
{
    mproc_process *p = start(child_pauses, NULL);
    ck_assert_int_eq(mproc_process_signal(p, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_signal(p, -1), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_signal(p, 1000), MPROC_EINVAL);
    ck_assert_int_eq(mproc_process_exitcode(p, NULL), MPROC_EINVAL);
    ck_assert_ptr_null(mproc_process_error(p));
    ck_assert_int_eq(mproc_process_is_alive(p), 1);
    ck_assert_int_eq(mproc_process_kill(p), 0);
    ck_assert_int_eq(join_exitcode(p), -SIGKILL);
    mproc_process_destroy(p);
}
END_TEST

/* ---- inherit_only: children inherit only the ends they are given -------- */

static mproc_process *start_keeping(int (*fn)(void *), void *arg,
                                    mproc_conn *const *keep, size_t n_keep,
                                    const int *keep_fds, size_t n_keep_fds)
{
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    o.inherit_only = true;
    o.keep = keep;
    o.n_keep = n_keep;
    o.keep_fds = keep_fds;
    o.n_keep_fds = n_keep_fds;
    mproc_process *p = NULL;
    ck_assert_int_eq(mproc_process_start(&p, fn, arg, &o), 0);
    return p;
}

/* Receives until the parent closes its end: 0 on EOF, else a code. */
static int worker_reads_to_eof(void *arg)
{
    mproc_conn *r = arg;
    char buf[16];
    size_t len;
    int rc;
    while ((rc = mproc_conn_recv(r, buf, sizeof buf, &len, 30000)) == 0)
        ;
    return rc == MPROC_ECLOSED ? 0 : 20;
}

/* Three workers, each with its own pipe made just before it starts:
 * workers 1 and 2 are forked while the parent still holds worker 0's send
 * end. Each keeps only its receiving end, so the parent's close of worker
 * 0's send end is the last one, and worker 0 sees EOF. */
START_TEST(inherit_only_gives_each_worker_eof_when_the_parent_closes_its_pipe)
{
    mproc_conn *r[3], *w[3];
    mproc_process *p[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(mproc_pipe(&r[i], &w[i], false, NULL), 0);
        p[i] = start_keeping(worker_reads_to_eof, r[i], &r[i], 1, NULL, 0);
        mproc_conn_close(r[i]);
    }
    ck_assert_int_eq(mproc_conn_send(w[0], "x", 1, 1000), 0);
    mproc_conn_close(w[0]);
    ck_assert_int_eq(join_exitcode(p[0]), 0);
    ck_assert_int_eq(mproc_process_is_alive(p[1]), 1);
    ck_assert_int_eq(mproc_process_is_alive(p[2]), 1);
    for (int i = 1; i < 3; i++) {
        mproc_conn_close(w[i]);
        ck_assert_int_eq(join_exitcode(p[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        mproc_process_destroy(p[i]);
}
END_TEST

/* Answers "ping" with "pong" on the end it kept. */
static int child_pongs(void *arg)
{
    mproc_conn *c = arg;
    char buf[8];
    size_t len;
    if (mproc_conn_fd(c) < 0)
        return 30;
    if (mproc_conn_recv(c, buf, sizeof buf, &len, 10000) != 0 || len != 4 ||
        memcmp(buf, "ping", 4) != 0)
        return 31;
    return mproc_conn_send(c, "pong", 4, 10000) == 0 ? 0 : 32;
}

START_TEST(inherit_only_keeps_the_listed_end_working)
{
    for (int kernel = 0; kernel < 2; kernel++) {
        mproc_conn *a, *b;
        ck_assert_int_eq(kernel ? mproc_pipe_kernel(&a, &b, true)
                                : mproc_pipe(&a, &b, true, NULL),
                         0);
        mproc_process *p = start_keeping(child_pongs, b, &b, 1, NULL, 0);
        mproc_conn_close(b);
        ck_assert_int_eq(mproc_conn_send(a, "ping", 4, 10000), 0);
        char buf[8];
        size_t len;
        ck_assert_int_eq(mproc_conn_recv(a, buf, sizeof buf, &len, 10000), 0);
        ck_assert_int_eq((int)len, 4);
        ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
        ck_assert_int_eq(join_exitcode(p), 0);
        mproc_process_destroy(p);
        mproc_conn_close(a);
    }
}
END_TEST

struct unlisted {
    mproc_conn *r, *w, *bytes_r;
    mproc_listener *l;
    int rfd, wfd, lfd;
};

/* Every call on an end the child did not keep is MPROC_EBADF, its fds are
 * closed, and closing the handle later spares the fd number reused since. */
static int child_checks_unlisted_ends(void *arg)
{
    struct unlisted *u = arg;
    char buf[8];
    size_t len, n;
    mproc_wait_item it = MPROC_WAIT_CONN(u->r);
    mproc_conn *got;
    int fd;
    if (mproc_conn_fd(u->r) != -1 || mproc_conn_fd(u->w) != -1 ||
        mproc_conn_can_send(u->w) || mproc_conn_can_recv(u->r))
        return 40;
    if (mproc_conn_send(u->w, "x", 1, 0) != MPROC_EBADF ||
        mproc_conn_send_batch(u->w, NULL, 0, &n, 0) != MPROC_EBADF ||
        mproc_conn_recv(u->r, buf, sizeof buf, &len, 0) != MPROC_EBADF ||
        mproc_conn_poll(u->r, 0) != MPROC_EBADF ||
        mproc_conn_read(u->bytes_r, buf, sizeof buf, &n, 0) != MPROC_EBADF ||
        mproc_wait(&it, 1, 0) != MPROC_EBADF ||
        mproc_conn_recv_fd(u->r, &fd, 0) != MPROC_EBADF ||
        mproc_conn_recv_conn(u->r, &got, 0) != MPROC_EBADF)
        return 41;
    if (mproc_listener_fd(u->l) != -1 ||
        mproc_listener_accept(u->l, &got, NULL, 0) != MPROC_EBADF)
        return 42;
    /* The numbers are free: the child reuses them for files of its own. */
    int nums[3] = {u->rfd, u->wfd, u->lfd};
    for (int i = 0; i < 3; i++) {
        if (fcntl(nums[i], F_GETFD) != -1 || errno != EBADF)
            return 43;
        int d = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (d < 0 || dup2(d, nums[i]) != nums[i])
            return 44;
        close(d);
    }
    mproc_conn_close(u->r);
    mproc_conn_close(u->w);
    mproc_conn_close(u->bytes_r);
    mproc_listener_close(u->l);
    for (int i = 0; i < 3; i++)
        if (fcntl(nums[i], F_GETFD) < 0)
            return 45;
    return 0;
}

START_TEST(inherit_only_closes_an_unlisted_end_in_the_child)
{
    struct unlisted u;
    mproc_conn *bytes_w;
    char path[256];
    test_path(path, sizeof path, "unlisted.sock");
    ck_assert_int_eq(mproc_pipe(&u.r, &u.w, false, NULL), 0);
    ck_assert_int_eq(mproc_pipe_bytes(&u.bytes_r, &bytes_w), 0);
    ck_assert_int_eq(mproc_listener_open(&u.l, path, NULL), 0);
    u.rfd = mproc_conn_fd(u.r);
    u.wfd = mproc_conn_fd(u.w);
    u.lfd = mproc_listener_fd(u.l);
    mproc_process *p =
        start_keeping(child_checks_unlisted_ends, &u, NULL, 0, NULL, 0);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
    /* The parent's ends are untouched, and so is the listener's path. */
    ck_assert_int_eq(mproc_conn_send(u.w, "x", 1, 1000), 0);
    char buf[4];
    size_t len;
    ck_assert_int_eq(mproc_conn_recv(u.r, buf, sizeof buf, &len, 1000), 0);
    mproc_conn *c;
    ck_assert_int_eq(mproc_client_open(&c, path, 1000), 0);
    mproc_conn_close(c);
    mproc_conn_close(u.r);
    mproc_conn_close(u.w);
    mproc_conn_close(u.bytes_r);
    mproc_conn_close(bytes_w);
    mproc_listener_close(u.l);
}
END_TEST

/* A listener is kept by its fd; it still accepts in the child. */
static int child_accepts_once(void *arg)
{
    mproc_listener *l = arg;
    mproc_conn *c;
    if (mproc_listener_accept(l, &c, NULL, 10000) != 0)
        return 50;
    int rc = mproc_conn_send(c, "hi", 2, 10000);
    mproc_conn_close(c);
    return rc == 0 ? 0 : 51;
}

START_TEST(inherit_only_keeps_an_end_whose_fd_is_listed)
{
    char path[256];
    test_path(path, sizeof path, "kept.sock");
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, path, NULL), 0);
    int lfd = mproc_listener_fd(l);
    mproc_process *p = start_keeping(child_accepts_once, l, NULL, 0, &lfd, 1);
    mproc_conn *c;
    ck_assert_int_eq(mproc_client_open(&c, path, 5000), 0);
    char buf[4];
    size_t len;
    ck_assert_int_eq(mproc_conn_recv(c, buf, sizeof buf, &len, 10000), 0);
    ck_assert_int_eq((int)len, 2);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
    mproc_conn_close(c);
    mproc_listener_close(l);
}
END_TEST

struct fd_rules {
    int unlisted_fd, kept_fd, event_fd;
    bool stdio_open[3];
    mproc_log *lg;
    mproc_event *ev;
    mproc_process *sibling;
};

static int child_checks_fd_rules(void *arg)
{
    struct fd_rules *f = arg;
    if (fcntl(f->unlisted_fd, F_GETFD) != -1 || errno != EBADF)
        return 60;
    if (write(f->kept_fd, "k", 1) != 1)
        return 61;
    for (int i = 0; i < 3; i++)
        if (f->stdio_open[i] && fcntl(i, F_GETFD) < 0)
            return 62;
    /* The logger's file sink, the Event's fd and the sibling's pidfd are
     * still there, and the objects still work. */
    if (mproc_log_info(f->lg, "from the child") != 0)
        return 63;
    if (fcntl(f->event_fd, F_GETFD) < 0)
        return 64;
    if (mproc_event_set(f->ev) != 0 || mproc_event_is_set(f->ev) != 1)
        return 65;
    int sfd = mproc_process_fd(f->sibling);
    if (sfd >= 0 && fcntl(sfd, F_GETFD) < 0)
        return 67;
    if (mproc_process_is_alive(f->sibling) != 1)
        return 68;
    mproc_event_close(f->ev);
    return 0;
}

START_TEST(inherit_only_closes_other_fds_but_keeps_listed_stdio_and_mproc_fds)
{
    struct fd_rules f;
    test_pipe unlisted = make_pipe(), kept = make_pipe();
    f.unlisted_fd = unlisted.w;
    f.kept_fd = kept.w;
    for (int i = 0; i < 3; i++)
        f.stdio_open[i] = fcntl(i, F_GETFD) >= 0;
    char path[256];
    test_path(path, sizeof path, "child.log");
    ck_assert_int_eq(mproc_log_create(&f.lg, NULL), 0);
    ck_assert_int_eq(mproc_log_add_file(f.lg, path, NULL), 0);
    ck_assert_int_eq(mproc_log_set_level(f.lg, MPROC_LOG_INFO), 0);
    ck_assert_int_eq(mproc_event_create(&f.ev, NULL, NULL), 0);
    ck_assert_int_eq(mproc_event_fd(f.ev, &f.event_fd), 0);
    f.sibling = start(child_pauses, NULL);
    mproc_process *p =
        start_keeping(child_checks_fd_rules, &f, NULL, 0, &kept.w, 1);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
    char c;
    ck_assert_int_eq((int)read(kept.r, &c, 1), 1);
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    test_read_to_eof(fd, buf, sizeof buf);
    close(fd);
    ck_assert_ptr_nonnull(strstr(buf, "from the child"));
    ck_assert_int_eq(mproc_process_kill(f.sibling), 0);
    ck_assert_int_eq(join_exitcode(f.sibling), -SIGKILL);
    mproc_process_destroy(f.sibling);
    mproc_event_close(f.ev);
    mproc_log_destroy(f.lg);
    unlink(path);
    close_pipe(&unlisted);
    close_pipe(&kept);
}
END_TEST

START_TEST(inherit_only_child_still_sends_its_failure_record)
{
    mproc_process *p = start_keeping(child_fails, NULL, NULL, 0, NULL, 0);
    ck_assert_int_eq(join_exitcode(p), 1);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert(f->from_child);
    ck_assert_str_eq(f->message, "bad value 42");
    mproc_process_destroy(p);
}
END_TEST

START_TEST(start_rejects_bad_keep_lists_and_starts_nothing)
{
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, NULL), 0);
    int not_an_end = 0;
    mproc_conn *stranger = (mproc_conn *)&not_an_end;
    mproc_conn *null_end = NULL;
    int closed_fd = 1000; /* well above any fd the test has open */
    ck_assert_int_lt(fcntl(closed_fd, F_GETFD), 0);
    int bad_fd = -1;
    mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
    mproc_process *p = NULL;

    mproc_process *first = start(child_returns_zero, NULL);
    unsigned n1 = 0;
    ck_assert_int_eq(sscanf(mproc_process_name(first), "Process-%u", &n1), 1);

    o.keep = &r; /* without inherit_only */
    o.n_keep = 1;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EINVAL);
    o = (mproc_process_opts)MPROC_PROCESS_OPTS_INIT;
    o.keep_fds = &bad_fd;
    o.n_keep_fds = 1;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EINVAL);
    o.inherit_only = true;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EBADF);
    o.keep_fds = &closed_fd;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EBADF);
    o.keep_fds = NULL;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EINVAL);
    o.n_keep_fds = 0;
    o.n_keep = 1;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EINVAL);
    o.keep = &null_end;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EINVAL);
    o.keep = &stranger;
    ck_assert_int_eq(mproc_process_start(&p, child_returns_zero, NULL, &o),
                     MPROC_EINVAL);
    ck_assert_ptr_null(p);

    /* Nothing was started: the next child takes the next number. */
    mproc_process *second = start(child_returns_zero, NULL);
    unsigned n2 = 0;
    ck_assert_int_eq(sscanf(mproc_process_name(second), "Process-%u", &n2), 1);
    ck_assert_uint_eq(n2, n1 + 1);
    ck_assert_int_eq(join_exitcode(first), 0);
    ck_assert_int_eq(join_exitcode(second), 0);
    mproc_process_destroy(first);
    mproc_process_destroy(second);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

/* A plain fork while another thread holds the registry of ends (as it does
 * for an instant in every make and close of an end): the child takes the
 * lock over instead of waiting for a thread that does not exist there. */
static atomic_int holder_state; /* 1: holding, 2: may let go */

static void *hold_registry(void *arg)
{
    (void)arg;
    mproc__reg_lock();
    atomic_store(&holder_state, 1);
    while (atomic_load(&holder_state) != 2)
        usleep(1000);
    mproc__reg_unlock();
    return NULL;
}

START_TEST(a_fork_while_another_thread_holds_the_registry_leaves_it_usable)
{
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, NULL), 0);
    pthread_t t;
    atomic_store(&holder_state, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, hold_registry, NULL), 0);
    while (atomic_load(&holder_state) != 1)
        usleep(1000);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(20); /* a hang ends as SIGALRM, not as a stuck test */
        /* No allocation here: a sanitizer's allocator may be locked. */
        mproc__reg_lock();
        int n = 0;
        for (mproc__reg_node *x = mproc__reg_first(); x != NULL && n < 1000;
             x = mproc__reg_next(x))
            n++;
        mproc__reg_unlock();
        mproc_conn_close(w); /* unlinks: takes the lock again */
        _exit(n >= 2 && n < 1000 ? 0 : 3);
    }
    ck_assert_int_eq(test_wait_status(pid), 0);
    atomic_store(&holder_state, 2);
    pthread_join(t, NULL);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

/* ---- live children and the parent's handle ------------------------------ */

START_TEST(active_children_lists_the_running_children_in_start_order)
{
    mproc_process *a = start(child_pauses, NULL);
    mproc_process *b = start(child_returns_zero, NULL);
    mproc_process *c = start(child_pauses, NULL);
    mproc_process *d = NULL;
    char *const argv[] = {"sleep", "60", NULL};
    ck_assert_int_eq(mproc_process_spawn(&d, "sleep", argv, NULL), 0);
    struct pollfd pfd = {mproc_process_fd(b), POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, (int)test_ms(10000)), 1);

    mproc_process *list[8];
    size_t n = 0;
    ck_assert_int_eq(mproc_active_children(list, 8, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(list[0], a);
    ck_assert_ptr_eq(list[1], c);
    ck_assert_ptr_eq(list[2], d);
    ck_assert_int_eq(mproc_active_children(NULL, 0, &n), 0);
    ck_assert_uint_eq(n, 3);
    list[1] = NULL;
    ck_assert_int_eq(mproc_active_children(list, 1, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_ptr_eq(list[0], a);
    ck_assert_ptr_null(list[1]);
    ck_assert_int_eq(mproc_active_children(NULL, 0, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_active_children(NULL, 1, &n), MPROC_EINVAL);

    ck_assert_int_eq(mproc_process_kill(c), 0);
    ck_assert_int_eq(join_exitcode(c), -SIGKILL);
    ck_assert_int_eq(mproc_active_children(list, 8, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_eq(list[0], a);
    ck_assert_ptr_eq(list[1], d);
    /* The exited child was not reaped behind its handle's back. */
    ck_assert_int_eq(join_exitcode(b), 0);
    ck_assert_int_eq(mproc_process_kill(a), 0);
    ck_assert_int_eq(mproc_process_kill(d), 0);
    ck_assert_int_eq(join_exitcode(a), -SIGKILL);
    ck_assert_int_eq(join_exitcode(d), -SIGKILL);
    ck_assert_int_eq(mproc_active_children(list, 8, &n), 0);
    ck_assert_uint_eq(n, 0);
    mproc_process_destroy(a);
    mproc_process_destroy(b);
    mproc_process_destroy(c);
    mproc_process_destroy(d);
}
END_TEST

static int child_counts_its_own_children(void *arg)
{
    (void)arg;
    size_t n = 99;
    if (mproc_active_children(NULL, 0, &n) != 0 || n != 0)
        return 70;
    mproc_process *g = NULL, *list[2];
    if (mproc_process_start(&g, child_pauses, NULL, NULL) != 0)
        return 71;
    int rc = mproc_active_children(list, 2, &n) == 0 && n == 1 && list[0] == g
                 ? 0
                 : 72;
    mproc_process_kill(g);
    mproc_process_join(g, MPROC_FOREVER);
    mproc_process_destroy(g);
    return rc;
}

START_TEST(active_children_in_a_child_lists_only_its_own)
{
    mproc_process *other = start(child_pauses, NULL);
    mproc_process *p = start(child_counts_its_own_children, NULL);
    ck_assert_int_eq(join_exitcode(p), 0);
    ck_assert_int_eq(mproc_process_kill(other), 0);
    ck_assert_int_eq(join_exitcode(other), -SIGKILL);
    mproc_process_destroy(p);
    mproc_process_destroy(other);
}
END_TEST

static int child_looks_at_its_parent(void *arg)
{
    (void)arg;
    mproc_process *pp = NULL;
    if (mproc_process_open_parent(&pp) != 0)
        return 80;
    int rc = 0;
    int code;
    if (mproc_process_pid(pp) != getppid() ||
        strcmp(mproc_process_name(pp), "MainProcess") != 0)
        rc = 81;
    else if (mproc_process_is_alive(pp) != 1 ||
             mproc_process_join(pp, 0) != MPROC_ETIMEDOUT ||
             mproc_process_join(pp, 30) != MPROC_ETIMEDOUT ||
             mproc_process_exitcode(pp, &code) != MPROC_ESTATE)
        rc = 82;
    else if (mproc_process_fd(pp) < 0)
        rc = 83;
    else if (mproc_process_error(pp) != NULL || mproc_process_is_daemon(pp))
        rc = 84;
    mproc_process_destroy(pp);
    size_t n = 99;
    if (rc == 0 && (mproc_active_children(NULL, 0, &n) != 0 || n != 0))
        rc = 85;
    return rc;
}

START_TEST(parent_handle_in_a_child_is_alive_and_named_after_its_parent)
{
    mproc_process *p = start(child_looks_at_its_parent, NULL);
    ck_assert_int_eq(join_exitcode(p), 0);
    mproc_process_destroy(p);
}
END_TEST

struct parent_wait {
    test_pipe report; /* the grandchild writes its pid here */
    test_pipe hold;   /* the middle child exits at its EOF */
    bool no_pidfd;
    pid_t mid;
};

/* The grandchild: opens its parent, reports, and waits for it to exit. */
static int grandchild_waits_for_parent(void *arg)
{
    struct parent_wait *w = arg;
    mproc__process_test_no_pidfd = w->no_pidfd;
    mproc_process *pp = NULL;
    if (mproc_process_open_parent(&pp) != 0)
        return 90;
    if (strncmp(mproc_process_name(pp), "Process-", 8) != 0 ||
        mproc_process_pid(pp) != w->mid)
        return 91;
    if ((mproc_process_fd(pp) >= 0) == w->no_pidfd)
        return 92;
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    write_str(w->report.w, buf);
    if (mproc_process_join(pp, 30000) != 0)
        return 93;
    int code;
    if (mproc_process_is_alive(pp) != 0 ||
        mproc_process_exitcode(pp, &code) != MPROC_ESRCH ||
        mproc_process_join(pp, 0) != MPROC_ESTATE ||
        mproc_process_kill(pp) != MPROC_ESTATE)
        return 94;
    mproc_process_destroy(pp);
    return 0;
}

/* The middle child: starts the grandchild, then exits once told. */
static int child_starts_a_waiting_grandchild(void *arg)
{
    struct parent_wait *w = arg;
    close(w->hold.w);
    w->mid = getpid();
    mproc_process *g = NULL;
    if (mproc_process_start(&g, grandchild_waits_for_parent, w, NULL) != 0)
        return 95;
    char c;
    while (read(w->hold.r, &c, 1) < 0 && errno == EINTR)
        ;
    return 0; /* g is left to the test, which is a subreaper */
}

START_TEST(parent_handle_join_returns_when_the_parent_exits)
{
    ck_assert_int_eq(mproc__os_set_child_subreaper(), 0);
    for (int no_pidfd = 0; no_pidfd < 2; no_pidfd++) {
        struct parent_wait w = {make_pipe(), make_pipe(), no_pidfd != 0, 0};
        mproc_process *mid = start(child_starts_a_waiting_grandchild, &w);
        close(w.report.w);
        w.report.w = -1;
        pid_t g = read_pid(w.report.r);
        ck_assert_int_gt(g, 0);
        /* The grandchild waits on its parent, which still runs. */
        usleep(100000);
        ck_assert_int_eq(mproc__os_task_alive(g, 0), 1);
        close_pipe(&w.hold);
        ck_assert_int_eq(join_exitcode(mid), 0);
        ck_assert_int_eq(test_wait_status(g), 0);
        mproc_process_destroy(mid);
        close_pipe(&w.report);
    }
}
END_TEST

/* An orphan asks for its parent after it is gone: not the reaper. */
static int grandchild_opens_parent_when_orphaned(void *arg)
{
    struct parent_wait *w = arg;
    char buf[32];
    snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    write_str(w->report.w, buf);
    int64_t t0 = test_now_ms();
    while (getppid() == w->mid && test_now_ms() - t0 < 20000)
        usleep(1000);
    mproc_process *pp = NULL;
    return mproc_process_open_parent(&pp) == MPROC_ESRCH ? 0 : 96;
}

static int child_starts_an_orphan(void *arg)
{
    struct parent_wait *w = arg;
    w->mid = getpid();
    mproc_process *g = NULL;
    return mproc_process_start(&g, grandchild_opens_parent_when_orphaned, w,
                               NULL) == 0
               ? 0
               : 97;
}

START_TEST(parent_handle_of_an_orphan_is_esrch)
{
    ck_assert_int_eq(mproc__os_set_child_subreaper(), 0);
    struct parent_wait w = {make_pipe(), make_pipe(), false, 0};
    mproc_process *mid = start(child_starts_an_orphan, &w);
    close(w.report.w);
    w.report.w = -1;
    pid_t g = read_pid(w.report.r);
    ck_assert_int_gt(g, 0);
    ck_assert_int_eq(join_exitcode(mid), 0);
    ck_assert_int_eq(test_wait_status(g), 0);
    mproc_process_destroy(mid);
    close_pipe(&w.report);
    close_pipe(&w.hold);
}
END_TEST

START_TEST(parent_handle_outside_a_started_child_is_getppid)
{
    ck_assert_int_eq(mproc_process_open_parent(NULL), MPROC_EINVAL);
    mproc_process *pp = NULL;
    ck_assert_int_eq(mproc_process_open_parent(&pp), 0);
    ck_assert_int_eq(mproc_process_pid(pp), getppid());
    ck_assert_str_eq(mproc_process_name(pp), "parent");
    ck_assert_int_eq(mproc_process_is_alive(pp), 1);
    ck_assert_int_eq(mproc_process_join(pp, 0), MPROC_ETIMEDOUT);
    size_t n = 99;
    ck_assert_int_eq(mproc_active_children(NULL, 0, &n), 0);
    ck_assert_uint_eq(n, 0);
    mproc_process_destroy(pp);
}
END_TEST

/* ---- backtraces --------------------------------------------------------- */

static __attribute__((noinline)) void fails_in_a_static_helper(int v)
{
    if (v > 0)
        mproc_fail(MPROC_ERANGE, "static %d", v);
}
static const int static_helper_fail_line = __LINE__ - 2;

static int child_fails_in_a_static_function(void *arg)
{
    fails_in_a_static_helper(*(int *)arg);
    return 0;
}

START_TEST(fail_backtrace_names_a_static_function_with_file_and_line)
{
    if (!mproc__os_backtrace_symbolizes()) {
        test_skip("built without libdw: only exported functions have names");
        return;
    }
    int v = 3;
    mproc_process *p = start(child_fails_in_a_static_function, &v);
    ck_assert_int_eq(join_exitcode(p), 1);
    const mproc_failure *f = mproc_process_error(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_str_eq(f->message, "static 3");
    ck_assert_ptr_nonnull(strstr(f->backtrace, "#0 fails_in_a_static_helper"));
    ck_assert_ptr_nonnull(
        strstr(f->backtrace, "child_fails_in_a_static_function"));
#ifdef MPROC_TEST_DEBUG_INFO
    char where[64];
    snprintf(where, sizeof where, " at test_process.c:%d ",
             static_helper_fail_line);
    ck_assert_ptr_nonnull(strstr(f->backtrace, where));
#endif
    mproc_process_destroy(p);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("process");
    TEST_ADD(s, exitcode_of_normal_return_is_zero_and_no_failure);
    TEST_ADD(s, exitcode_of_nonzero_return_is_that_value);
    TEST_ADD(s, negative_return_exits_1_and_keeps_the_code_in_the_record);
    TEST_ADD(s, fail_sends_code_message_file_line_and_backtrace);
    TEST_ADD(s, fail_in_a_thread_of_the_child_reaches_the_parent);
    TEST_ADD(s, killed_child_has_minus_signal_and_a_parent_record);
    TEST_ADD(s, terminate_gives_minus_15);
    TEST_ADD(s, signal_sends_any_signal);
    TEST_ADD(s, direct_exit_status_gives_a_parent_record);
    TEST_ADD(s, failure_pipe_is_close_on_exec);
    TEST_ADD(s, malformed_record_is_reported_not_trusted);
    TEST_ADD(s, join_does_not_wait_for_a_descendant_holding_the_failure_pipe);
    TEST_ADD(s, failure_format_names_everything);
    TEST_ADD(s, fail_outside_a_started_child_prints_and_exits_1);
    TEST_ADD(s, stdout_is_flushed_by_the_child_and_never_duplicated);
    TEST_ADD(s, join_times_out_and_the_child_stays_joinable);
    TEST_ADD(s, second_join_is_a_state_error_and_changes_nothing);
    TEST_ADD(s, kill_and_terminate_after_join_are_state_errors);
    TEST_ADD(s, kill_of_an_exited_unjoined_child_keeps_its_status);
    TEST_ADD(s, join_rejects_negative_timeouts_and_changes_nothing);
    TEST_ADD(s, pidfd_becomes_readable_when_the_child_exits);
    TEST_ADD(s, concurrent_joins_reap_once);
    TEST_ADD(s, inherited_sibling_handle_cannot_be_joined_in_the_child);
    TEST_ADD(s, destroy_reaps_an_exited_child);
    TEST_ADD(s, join_reports_a_status_lost_to_ignored_sigchld);
    TEST_ADD(s, without_a_pidfd_join_kill_and_exit_codes_still_work);
    TEST_ADD(s, default_names_count_up_as_in_python);
    TEST_ADD(s, grandchild_default_name_is_process_n_colon_m);
    TEST_ADD(s, given_name_is_the_childs_name);
    TEST_ADD(s, current_pid_and_parent_pid_are_the_callers);
    TEST_ADD(s, name_too_long_is_refused_and_changes_nothing);
    TEST_ADD(s, daemon_child_dies_when_its_parent_is_sigkilled);
    TEST_ADD(s, daemon_child_dies_when_its_parent_returns);
    TEST_ADD(s, spawn_of_a_missing_program_is_enoent);
    TEST_ADD(s, spawn_of_a_non_executable_file_is_eacces);
    TEST_ADD(s, spawn_with_stdout_on_a_pipe_delivers_the_output);
    TEST_ADD(s, spawn_redirects_stdin_and_stdout_together);
    TEST_ADD(s, spawned_program_exit_status_gives_a_parent_record);
    TEST_ADD(s, spawned_program_gets_default_sigpipe);
    TEST_ADD(s, spawn_with_an_fd_that_is_not_open_is_ebadf);
    TEST_ADD(s, null_handles_are_rejected);
    TEST_ADD(s, start_and_spawn_reject_null_arguments);
    TEST_ADD(s, bad_arguments_on_a_live_child_change_nothing);
    TEST_ADD(
        s, inherit_only_gives_each_worker_eof_when_the_parent_closes_its_pipe);
    TEST_ADD(s, inherit_only_keeps_the_listed_end_working);
    TEST_ADD(s, inherit_only_closes_an_unlisted_end_in_the_child);
    TEST_ADD(s, inherit_only_keeps_an_end_whose_fd_is_listed);
    TEST_ADD(
        s, inherit_only_closes_other_fds_but_keeps_listed_stdio_and_mproc_fds);
    TEST_ADD(s, inherit_only_child_still_sends_its_failure_record);
    TEST_ADD(s, start_rejects_bad_keep_lists_and_starts_nothing);
    TEST_ADD(s,
             a_fork_while_another_thread_holds_the_registry_leaves_it_usable);
    TEST_ADD(s, active_children_lists_the_running_children_in_start_order);
    TEST_ADD(s, active_children_in_a_child_lists_only_its_own);
    TEST_ADD(s, parent_handle_in_a_child_is_alive_and_named_after_its_parent);
    TEST_ADD(s, parent_handle_join_returns_when_the_parent_exits);
    TEST_ADD(s, parent_handle_of_an_orphan_is_esrch);
    TEST_ADD(s, parent_handle_outside_a_started_child_is_getppid);
    TEST_ADD(s, fail_backtrace_names_a_static_function_with_file_and_line);
    return s;
}
