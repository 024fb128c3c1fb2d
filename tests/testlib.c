/*
 * main() for every test suite, and the leftover checks that make a test
 * which leaks a process, a shared-memory name or a file fail.
 */
#include "testlib.h"

#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256];
static int main_pid;
/* Set by test_skip in the forked case, read by main: shared memory. */
static volatile int *skipped;

void test_skip(const char *why)
{
    fprintf(stderr, "SKIPPED: %s\n", why);
    if (skipped != NULL)
        *skipped = 1;
}

/* Live processes in the caller's process group other than itself. Check
 * runs each test in a process group of its own and kills that group when the
 * test ends, which would hide a leak from the check in main(); this one runs
 * inside the test, before that. */
static int alive_in_my_group(void)
{
    pid_t self = getpid(), group = getpgrp();
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == self)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* "pid (comm) state ppid pgrp ...": comm may hold spaces and ')'. */
        char *close_paren = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (close_paren == NULL ||
            sscanf(close_paren + 1, " %c %d %d", &state, &ppid, &pgrp) != 3)
            continue;
        if (pgrp == group && state != 'Z' && state != 'X')
            n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static void teardown_no_leftover_processes(void)
{
    int64_t until = test_now_ms() + test_ms(3000);
    int n;
    while ((n = alive_in_my_group()) > 0 && test_now_ms() < until) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        usleep(10000);
    }
    ck_assert_msg(n == 0, "the test left %d process(es) running", n);
}

void test_add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, NULL, teardown_no_leftover_processes);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

const char *test_shm_name(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "/mproc-t%d-%s", main_pid, what);
    return buf;
}

const char *test_path(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "%s/%s", tmpdir, what);
    return buf;
}

int64_t test_ms(int64_t ms)
{
    const char *m = getenv("MPROC_TEST_TIME_MULT");
    long mult = m != NULL ? strtol(m, NULL, 10) : 1;
    return ms * (mult > 0 ? mult : 1);
}

int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t test_read_to_eof(int fd, char *buf, size_t n)
{
    size_t len = 0;
    while (len + 1 < n) {
        ssize_t r = read(fd, buf + len, n - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return len;
}

int test_wait_status(int pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

int test_traced_start(int (*prep)(void *), int (*fn)(void *), void *arg,
                      int *code)
{
    int pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(TEST_SKIP_CODE);
        int rc = prep != NULL ? prep(arg) : 0;
        if (rc != 0)
            _exit(rc);
        raise(SIGSTOP);
        _exit(fn(arg));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSTOPPED(st))
        return pid;
    if (code != NULL)
        *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return -1;
}

long test_traced_step(int pid, long n, int *code)
{
    int sig = 0;
    for (long i = 0; i < n; i++) {
        int st;
        if (ptrace(PTRACE_SINGLESTEP, pid, NULL, (void *)(long)sig) != 0)
            return i;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                return i;
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            if (code != NULL)
                *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return i;
        }
        /* A signal other than the step's trap goes to the child with the
         * next step. */
        sig = WSTOPSIG(st) == SIGTRAP ? 0 : WSTOPSIG(st);
    }
    return n;
}

int test_traced_until_open(int pid, const char *path, int *code)
{
#if defined(__x86_64__)
    if (ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)PTRACE_O_TRACESYSGOOD) !=
        0)
        return -2;
    int sig = 0;
    bool entry = false; /* the next syscall stop is an entry */
    for (;;) {
        int st;
        if (ptrace(PTRACE_SYSCALL, pid, NULL, (void *)(long)sig) != 0)
            return -2;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                return -2;
        if (WIFEXITED(st) || WIFSIGNALED(st)) {
            if (code != NULL)
                *code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return -1;
        }
        sig = 0;
        if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
            if (WSTOPSIG(st) != SIGTRAP)
                sig = WSTOPSIG(st);
            continue;
        }
        entry = !entry;
        struct user_regs_struct r;
        if (!entry || ptrace(PTRACE_GETREGS, pid, NULL, &r) != 0 ||
            r.orig_rax != SYS_openat)
            continue;
        /* The path, a word at a time. */
        char got[256] = {0};
        size_t n = 0;
        for (; n + sizeof(long) <= sizeof got; n += sizeof(long)) {
            errno = 0;
            long w = ptrace(PTRACE_PEEKDATA, pid, (void *)(r.rsi + n), NULL);
            if (errno != 0)
                break;
            memcpy(got + n, &w, sizeof w);
            if (memchr(&w, 0, sizeof w) != NULL)
                break;
        }
        got[sizeof got - 1] = '\0';
        if (strcmp(got, path) == 0)
            return 0;
    }
#else
    (void)pid;
    (void)path;
    (void)code;
    return -2;
#endif
}

int test_traced_finish(int pid)
{
    if (ptrace(PTRACE_DETACH, pid, NULL, NULL) != 0) {
        kill(pid, SIGKILL);
        test_wait_status(pid);
        return -1;
    }
    return test_wait_status(pid);
}

/* Descendants still alive after the suite: as subreaper we inherit every
 * orphan, so any child left is something a test started and did not end.
 * Allow a grace period for processes that are on their way out (daemon
 * children dying with their parent). */
static void kill_children(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        int pid = atoi(e->d_name);
        char path[64], line[256];
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/status", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) != NULL)
            if (strncmp(line, "PPid:", 5) == 0 && atoi(line + 5) == main_pid) {
                fprintf(stderr, "testlib: killing leftover process %d\n", pid);
                kill(pid, SIGKILL);
            }
        fclose(f);
    }
    if (d != NULL)
        closedir(d);
}

static int check_processes(void)
{
    int64_t until = test_now_ms() + test_ms(3000);
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0)
            continue; /* an orphan that exited on its own: reaped */
        if (p < 0)
            return 0; /* ECHILD: nothing left */
        if (test_now_ms() > until)
            break;
        usleep(10000);
    }
    fprintf(stderr, "testlib: a test left processes running\n");
    /* Killing a leftover may orphan its own children to us: sweep until
     * none is left, for a bounded time. */
    for (int i = 0; i < 300; i++) {
        kill_children();
        pid_t p;
        while ((p = waitpid(-1, NULL, WNOHANG)) > 0)
            ;
        if (p < 0 && errno == ECHILD)
            break;
        usleep(10000);
    }
    return 1;
}

static int check_shm(void)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "mproc-t%d-", main_pid);
    int leaked = 0;
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)n) == 0) {
            fprintf(stderr, "testlib: leftover /dev/shm/%s\n", e->d_name);
            char path[512];
            snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
            unlink(path);
            leaked = 1;
        }
    }
    if (d != NULL)
        closedir(d);
    return leaked;
}

static int check_tmpdir(void)
{
    int leaked = 0;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        fprintf(stderr, "testlib: leftover %s/%s\n", tmpdir, e->d_name);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
        leaked = 1;
    }
    if (d != NULL)
        closedir(d);
    rmdir(tmpdir);
    return leaked;
}

int main(void)
{
    main_pid = getpid();
    /* Orphans of the tests come to us, so leaks are visible. */
    prctl(PR_SET_CHILD_SUBREAPER, 1UL);
    /* Check's default of 4 s per case is too short under sanitizers; CTest's
     * own timeout is the real bound. */
    setenv("CK_DEFAULT_TIMEOUT", "100", 0);
    const char *base = getenv("TMPDIR");
    /* A name of its own even beside one a killed run left with this pid
     * (seen: "File exists" failed a case that had not begun). */
    snprintf(tmpdir, sizeof tmpdir, "%s/mproc-test-%d-XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp", main_pid);
    if (mkdtemp(tmpdir) == NULL) {
        perror("testlib: mkdtemp");
        return 2;
    }

    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED)
        skipped = page;
    SRunner *sr = srunner_create(mproc_test_suite());
    srunner_run_all(sr, CK_NORMAL);
    int ran = srunner_ntests_run(sr);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    int leaks = check_processes() | check_shm() | check_tmpdir();
    if (ran == 0) {
        fprintf(stderr, "testlib: no test case ran (CK_RUN_CASE=%s)\n",
                getenv("CK_RUN_CASE") ? getenv("CK_RUN_CASE") : "");
        return 1;
    }
    if (leaks)
        return 1;
    if (failed != 0)
        return 1;
    return skipped != NULL && *skipped ? TEST_SKIP_CODE : 0;
}

int test_wait_asleep(int pid, const char *in, int64_t ms)
{
    int64_t until = test_now_ms() + test_ms(ms);
    char path[64], buf[128];
    for (;;) {
        snprintf(path, sizeof path, "/proc/%d/wchan", pid);
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        buf[n] = '\0';
        if (strstr(buf, in) != NULL)
            return 1;
        if (n == 0 || strcmp(buf, "0") == 0) {
            snprintf(path, sizeof path, "/proc/%d/stat", pid);
            f = fopen(path, "r");
            n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f != NULL)
                fclose(f);
            buf[n] = '\0';
            char *rp = strrchr(buf, ')');
            if (rp != NULL && rp[1] == ' ' && rp[2] == 'S')
                return 1;
        }
        if (test_now_ms() > until)
            return 0;
        usleep(1000);
    }
}

void test_pattern(unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31u + seed);
}

int test_pattern_ok(const unsigned char *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(i * 31u + seed))
            return 0;
    return 1;
}

int test_become_nobody(void)
{
    return setgroups(0, NULL) == 0 &&
           setresgid(TEST_NOBODY, TEST_NOBODY, TEST_NOBODY) == 0 &&
           setresuid(TEST_NOBODY, TEST_NOBODY, TEST_NOBODY) == 0;
}
