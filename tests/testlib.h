/*
 * Test support shared by every suite: a main() that runs one Check suite
 * (one case per CTest entry through CK_RUN_CASE), fails when no check ran,
 * and fails when a case leaves processes, shared-memory names or files
 * behind; plus helpers for names and time tolerances.
 *
 * Rules for tests: a forked helper never calls ck_assert; it ends with
 * _exit(code) and the parent checks the status. Shared-memory names come
 * from test_shm_name() and paths from test_path(), so leftovers are found.
 */
#ifndef MPROC_TESTLIB_H
#define MPROC_TESTLIB_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/* Each suite file defines this; testlib.c's main() runs it. */
Suite *mproc_test_suite(void);

/* Adds one test as its own TCase named after it, so that CK_RUN_CASE (set
 * by CTest to the START_TEST name) runs exactly that test. */
void test_add(Suite *s, const char *name, const TTest *t);
#define TEST_ADD(suite, fn) test_add((suite), #fn, (fn))

/* A shared-memory name unique to this test run: "/mproc-t<pid>-<what>". */
const char *test_shm_name(char *buf, size_t n, const char *what);

/* A path inside this run's private temporary directory (removed at the end,
 * and the run fails if anything is left in it). */
const char *test_path(char *buf, size_t n, const char *what);

/* ms scaled by MPROC_TEST_TIME_MULT (default 1; sanitizer presets set more). */
int64_t test_ms(int64_t ms);

/* Monotonic milliseconds, for generous elapsed-time checks. */
int64_t test_now_ms(void);

/* Waits for pid (not an mproc process) and returns its exit code, or
 * 128+signal when it was killed, or -1 on error. */
int test_wait_status(int pid);

/* Waits until process (or thread) pid sleeps in the kernel in a function
 * whose name contains `in` (its /proc wchan: "futex", "poll"), or, where
 * wchan is hidden (reads "0"), in state 'S'; up to test_ms(ms). True when
 * seen. */
int test_wait_asleep(int pid, const char *in, int64_t ms);

/* Death at an instruction: test_traced_start runs prep(arg) (may be NULL;
 * a non-zero result ends the child with it) in a forked child, then stops
 * the child under ptrace just before it calls fn(arg) and exits with its
 * result. Returns the child's pid, or -1 when it did not stop there (ptrace
 * not permitted, or prep failed: *code, when not NULL, says which: 77 or
 * prep's result). test_traced_step single-steps it up to n instructions:
 * the steps made, fewer than n when the child ended (it is then reaped,
 * its status as test_wait_status gives it in *code). The caller kills and
 * reaps a child it leaves stopped. */
int test_traced_start(int (*prep)(void *), int (*fn)(void *), void *arg,
                      int *code);
long test_traced_step(int pid, long n, int *code);
/* Lets a stopped traced child run on untraced; its status as
 * test_wait_status gives it once it ends (-1 when it could not be let go:
 * it is then killed). */
int test_traced_finish(int pid);
/* Lets a stopped traced child run until it is about to open path (the
 * openat system call's entry; x86-64 only): 0 (stopped there), -1 when it
 * ended first (reaped, its status in *code), -2 when that cannot be
 * traced here. */
int test_traced_until_open(int pid, const char *path, int *code);

/* Fills b with a pattern of n bytes that depends on seed and position;
 * test_pattern_ok is true when b holds exactly that pattern. */
void test_pattern(unsigned char *b, size_t n, unsigned seed);
int test_pattern_ok(const unsigned char *b, size_t n, unsigned seed);

/* Marks the running case as skipped (what it is about could not happen
 * here), with the reason on stderr; the case should return. CTest then
 * reports it as not run rather than passed. */
#define TEST_SKIP_CODE 77
void test_skip(const char *why);

/* The uid and gid tests use for "another user" (nobody), and a call that
 * makes the calling process that user (setgroups, setresgid, setresuid):
 * 1 on success, 0 when it cannot (not root). For forked children. */
#define TEST_NOBODY 65534
int test_become_nobody(void);

/* The ring size the connection tests give their mproc_pipe() pairs
 * (mproc_pipe_opts.ring_size), so that their edge sizes (whole or
 * streamed, a full ring) stay those they were written for. */
#define TEST_RING (64u * 1024u)

/* Reads fd until EOF (or n - 1 bytes), retrying EINTR; NUL-terminates buf
 * and returns the length read. */
size_t test_read_to_eof(int fd, char *buf, size_t n);

#endif
