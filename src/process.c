/*
 * Processes: a function in a forked child or a program through posix_spawn,
 * each reaped through its own pidfd. A forked child reports its failure on a
 * close-on-exec pipe made before fork; the parent reads it, without blocking,
 * only after the child is reaped, so a child that dies before writing (or a
 * descendant that still holds the pipe) can never hang a join.
 */
#include "mproc/process.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/process.h"
#include "internal/registry.h"
#include "internal/self.h"
#include "os/os.h"
#include "os/proc.h"

extern char **environ;

_Static_assert(MPROC_PROCESS_NAME_MAX + 1 == MPROC__NAME_MAX,
               "public and internal name limits agree");

/*
 * The failure record on the wire: a fixed header then the strings, without
 * NULs, in the order name, message, file, backtrace. The whole frame fits in
 * PIPE_BUF, so the child's single write is atomic and never blocks on the
 * empty pipe, and the parent finds either all of it or nothing.
 */
#define REC_VERSION 1u
#define REC_MAX 4096 /* whole frame, header included; <= PIPE_BUF */
#define REC_HDR 28
#define MSG_MAX 1024   /* bytes with the NUL */
#define FILE_MAX 256   /* bytes with the NUL */
#define TRACE_MAX 4096 /* bytes with the NUL */

enum { RUNNING = 0, REAPED = 1 };

struct mproc_process {
    pthread_mutex_t mu; /* serialises reaping; never used in a fork child */
    atomic_int state;   /* RUNNING until reaped; REAPED published last */
    pid_t pid;
    pid_t owner; /* getpid() of the starter: only it may reap */
    int pidfd;   /* -1 only where pidfd_open is ENOSYS: see open_pidfd() */
    int errfd;   /* read end of the failure pipe (non-blocking), or -1 */
    bool daemon;
    bool is_parent; /* a handle on the caller's parent, not on a child */
    int wait_rc;    /* 0, or MPROC_ESRCH when the status was lost */
    int exitcode;
    bool failed;
    mproc_failure failure;
    char name[MPROC__NAME_MAX];
    char message[MSG_MAX];
    char file[FILE_MAX];
    char trace[TRACE_MAX];
    mproc__reg_node reg; /* its fds stay open in a child (registry.h) */
};

/* In a started child: its failure pipe's write end and its own pid (a
 * descendant forked by other means inherits the fd but must not use it).
 * Per-process identity like internal/self.c, set once right after fork;
 * -1 in a process mproc did not start. */
static int child_fail_fd = -1;
static pid_t child_fail_pid;
static dev_t child_fail_dev;
static ino_t child_fail_ino;
static atomic_flag failing = ATOMIC_FLAG_INIT;

/* ---- failure records ---------------------------------------------------- */

static void put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Name, file and message always fit beside the header: only the backtrace
 * is ever cut. */
_Static_assert(MPROC__NAME_MAX + FILE_MAX + MSG_MAX <=
                   REC_MAX - MPROC__FRAME_HDR - REC_HDR,
               "failure record: only the trace is cut");
_Static_assert(REC_MAX <= PIPE_BUF, "failure record: one atomic write");

/* Encodes a record into buf (REC_MAX - MPROC__FRAME_HDR bytes), cutting
 * the backtrace to fit. Returns its length. */
static size_t rec_encode(unsigned char *buf, int error, int line,
                         const char *name, const char *msg, const char *file,
                         const char *trace)
{
    const size_t cap = REC_MAX - MPROC__FRAME_HDR - REC_HDR;
    size_t ln = strnlen(name, MPROC__NAME_MAX - 1);
    size_t lf = strnlen(file, FILE_MAX - 1);
    size_t lm = strnlen(msg, MSG_MAX - 1);
    size_t lt = strnlen(trace, TRACE_MAX - 1);
    if (ln + lf + lm + lt > cap) {
        /* Cut after the last whole frame that fits. */
        lt = cap - ln - lf - lm;
        while (lt > 0 && trace[lt - 1] != '\n')
            lt--;
    }
    put32(buf, REC_VERSION);
    put32(buf + 4, (uint32_t)error);
    put32(buf + 8, (uint32_t)line);
    put32(buf + 12, (uint32_t)ln);
    put32(buf + 16, (uint32_t)lm);
    put32(buf + 20, (uint32_t)lf);
    put32(buf + 24, (uint32_t)lt);
    size_t off = REC_HDR;
    memcpy(buf + off, name, ln);
    off += ln;
    memcpy(buf + off, msg, lm);
    off += lm;
    memcpy(buf + off, file, lf);
    off += lf;
    memcpy(buf + off, trace, lt);
    return off + lt;
}

/* Copies len bytes of src into dst (capacity cap) as a C string; false when
 * it does not fit or holds a NUL. */
static bool rec_str(char *dst, size_t cap, const unsigned char *src, size_t len)
{
    if (len >= cap || memchr(src, '\0', len) != NULL)
        return false;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

/* Decodes a record into p's failure; MPROC_EPROTO (p's strings then
 * unspecified) when any length or field is out of bounds. */
static int rec_decode(mproc_process *p, const unsigned char *buf, size_t len)
{
    if (len < REC_HDR || get32(buf) != REC_VERSION)
        return MPROC_EPROTO;
    uint32_t ln = get32(buf + 12), lm = get32(buf + 16);
    uint32_t lf = get32(buf + 20), lt = get32(buf + 24);
    if (ln >= MPROC__NAME_MAX || lm >= MSG_MAX || lf >= FILE_MAX ||
        lt >= TRACE_MAX || (size_t)REC_HDR + ln + lm + lf + lt != len)
        return MPROC_EPROTO;
    const unsigned char *s = buf + REC_HDR + ln; /* the name is ours already */
    if (!rec_str(p->message, sizeof p->message, s, lm) ||
        !rec_str(p->file, sizeof p->file, s + lm, lf) ||
        !rec_str(p->trace, sizeof p->trace, s + lm + lf, lt))
        return MPROC_EPROTO;
    int line = (int)get32(buf + 8);
    if (line < 0)
        return MPROC_EPROTO;
    p->failure.error = (int)get32(buf + 4);
    p->failure.line = line;
    return 0;
}

/* In the child: sends one record on the failure pipe. False when there is no
 * pipe (not a started child) or the parent is gone. */
static bool child_send(int error, int line, const char *msg, const char *file,
                       const char *trace)
{
    if (child_fail_fd < 0 || getpid() != child_fail_pid)
        return false;
    /* The user's code may have closed our pipe and reused its number for a
     * file of its own: never write the record anywhere but the pipe. */
    struct stat st;
    if (fstat(child_fail_fd, &st) != 0 || !S_ISFIFO(st.st_mode) ||
        st.st_dev != child_fail_dev || st.st_ino != child_fail_ino)
        return false;
    unsigned char buf[REC_MAX - MPROC__FRAME_HDR];
    size_t len =
        rec_encode(buf, error, line, mproc__self_name(), msg, file, trace);
    /* A parent that closed its end gives EPIPE, never SIGPIPE: the frame
     * layer writes pipes without it. */
    /* The pipe is non-blocking and empty (only this process writes it, once)
     * and a record fits in PIPE_BUF, so one try is enough and nothing here
     * can block: a pipe that is somehow full loses the record, not the exit. */
    mproc__deadline d;
    mproc__deadline_init(&d, 0);
    int rc = mproc__frame_send(child_fail_fd, buf, len, &d);
    return rc == 0;
}

static int exit_status_of(int r)
{
    return r >= 1 && r <= 255 ? r : (r == 0 ? 0 : 1);
}

static MPROC_NORETURN void child_finish(int r)
{
    /* Another thread inside mproc_fail() is about to end the process with
     * its record: let it. Taking the flag also holds off later callers. */
    if (atomic_flag_test_and_set(&failing))
        for (;;)
            pause();
    if (r != 0) {
        char msg[128];
        if (r < 0)
            snprintf(msg, sizeof msg, "returned %d (%s: %s)", r,
                     mproc_errname(r), mproc_strerror(r));
        else
            snprintf(msg, sizeof msg, "returned %d", r);
        child_send(r, 0, msg, "", "");
    }
    fflush(stdout);
    fflush(stderr);
    _exit(exit_status_of(r));
}

void mproc_fail_at(const char *file, int line, int code, const char *fmt, ...)
{
    /* A second thread failing at the same time waits for the first to end
     * the process: the first record wins. */
    if (atomic_flag_test_and_set(&failing))
        for (;;)
            pause();
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    if (fmt != NULL)
        vsnprintf(msg, sizeof msg, fmt, ap);
    else
        msg[0] = '\0';
    va_end(ap);
    if (file == NULL)
        file = "";
    if (line < 0)
        line = 0;
    char trace[TRACE_MAX];
    mproc__os_backtrace(trace, sizeof trace, __builtin_return_address(0));
    if (child_send(code, line, msg, file, trace)) {
        fflush(stdout);
        fflush(stderr);
        _exit(1);
    }
    fflush(stdout);
    fprintf(stderr, "mproc: %s: %s:%d: %s (%s)\n", mproc__self_name(), file,
            line, msg, mproc_errname(code));
    if (child_fail_fd >= 0 && getpid() == child_fail_pid) {
        /* A started child whose parent is gone: no atexit of the parent's. */
        fflush(stderr);
        _exit(1);
    }
    exit(1);
}

/* ---- handles ------------------------------------------------------------ */

static const mproc_process_opts default_opts = MPROC_PROCESS_OPTS_INIT;
static const mproc_spawn_opts default_spawn_opts = MPROC_SPAWN_OPTS_INIT;

static int check_name(const char *name)
{
    if (name != NULL && strnlen(name, MPROC__NAME_MAX) >= MPROC__NAME_MAX)
        return MPROC_ENAMETOOLONG;
    return 0;
}

static mproc_process *handle_new(void)
{
    mproc_process *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p);
        return NULL;
    }
    atomic_init(&p->state, RUNNING);
    p->pidfd = -1;
    p->errfd = -1;
    p->owner = getpid();
    return p;
}

static size_t handle_fds(const mproc__reg_node *n, int *out, size_t cap)
{
    const mproc_process *p = n->obj;
    if (cap > 0)
        out[0] = p->pidfd;
    if (cap > 1)
        out[1] = p->errfd;
    return 2;
}

static const mproc__reg_ops handle_reg_ops = {handle_fds, NULL};

static void handle_free(mproc_process *p)
{
    mproc__reg_remove(&p->reg);
    mproc__os_close(p->pidfd);
    mproc__os_close(p->errfd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Names the next child: identity "N" or "<ours>:N", name "Process-<id>". */
static void next_identity(char *identity, char *name, const char *given)
{
    unsigned n = mproc__self_next_child();
    const char *mine = mproc__self_identity();
    if (mine[0] == '\0')
        snprintf(identity, MPROC__NAME_MAX, "%u", n);
    else
        snprintf(identity, MPROC__NAME_MAX, "%.40s:%u", mine, n);
    if (given != NULL)
        snprintf(name, MPROC__NAME_MAX, "%s", given);
    else
        snprintf(name, MPROC__NAME_MAX, "Process-%s", identity);
}

bool mproc__process_test_no_pidfd;

/*
 * A pidfd for a child just started. Where the kernel (< 5.3) or a tool such
 * as valgrind < 3.20 has no pidfd_open, the handle works without one: join
 * polls waitid with a short sleep, signals go by pid (safe while the child
 * is unreaped: its pid cannot be reused), and mproc_process_fd() is
 * MPROC_ENOSYS. Returns the fd, -1 for "none", or another -errno.
 */
static int open_pidfd(pid_t pid)
{
    int fd = mproc__process_test_no_pidfd ? -ENOSYS : mproc__os_pidfd_open(pid);
    /* ESRCH: the child has exited and someone reaped it already (SIGCHLD
     * ignored): killing that pid now could hit a stranger, so keep the
     * handle; its join will report the lost status. */
    /* EPERM: a seccomp filter (some container runtimes) refuses unknown
     * system calls that way; work without a pidfd as on old kernels. */
    return fd == -ENOSYS || fd == -ESRCH || fd == -EPERM ? -1 : fd;
}

/* After a failed pidfd_open the child must not outlive the error. */
static void kill_and_reap(pid_t pid)
{
    int saved = errno;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    errno = saved;
}

/* ---- inherit_only ------------------------------------------------------ */

/* The checks of the keep lists that need no lock. */
static int check_keep_args(const mproc_process_opts *o)
{
    if (!o->inherit_only)
        return o->n_keep > 0 || o->n_keep_fds > 0 ? MPROC_EINVAL : 0;
    if ((o->n_keep > 0 && o->keep == NULL) ||
        (o->n_keep_fds > 0 && o->keep_fds == NULL))
        return MPROC_EINVAL;
    for (size_t i = 0; i < o->n_keep_fds; i++)
        if (o->keep_fds[i] < 0 || fcntl(o->keep_fds[i], F_GETFD) < 0)
            return MPROC_EBADF;
    return 0;
}

/* With the registry locked: every end to keep is open in this process. */
static int check_keep_ends(const mproc_process_opts *o)
{
    for (size_t i = 0; o->inherit_only && i < o->n_keep; i++)
        if (o->keep[i] == NULL || !mproc__reg_is_end(o->keep[i]))
            return MPROC_EINVAL;
    return 0;
}

static bool listed(int fd, const int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] == fd)
            return true;
    return false;
}

/* An end stays when it is listed in keep, or its fd is in keep_fds. */
static bool end_kept(const mproc__reg_node *n, const mproc_process_opts *o)
{
    for (size_t i = 0; i < o->n_keep; i++)
        if (n->obj == (const void *)o->keep[i])
            return true;
    int fd = -1;
    n->ops->fds(n, &fd, 1);
    return fd >= 0 && listed(fd, o->keep_fds, o->n_keep_fds);
}

/* Every fd to keep into out (cap of them); returns how many there are. */
static size_t gather_kept(int *out, size_t cap, const mproc_process_opts *o,
                          int failfd)
{
    size_t k = 0;
    for (mproc__reg_node *n = mproc__reg_first(); n != NULL;
         n = mproc__reg_next(n))
        k += n->ops->fds(n, k < cap ? out + k : NULL, k < cap ? cap - k : 0);
    for (size_t i = 0; i < o->n_keep_fds; i++, k++)
        if (k < cap)
            out[k] = o->keep_fds[i];
    if (k < cap)
        out[k] = failfd;
    return k + 1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* In a child started with inherit_only, before fn: severs every end not
 * kept, then closes every fd from 3 up that nothing kept holds. The
 * registry is locked (held across fork). */
static int keep_only(const mproc_process_opts *o, int failfd)
{
    mproc__reg_node *next;
    for (mproc__reg_node *n = mproc__reg_first(); n != NULL; n = next) {
        next = mproc__reg_next(n);
        if (n->ops->sever != NULL && !end_kept(n, o))
            mproc__reg_sever(n);
    }
    int small[256], *fds = small;
    size_t k = gather_kept(fds, 256, o, failfd);
    if (k > 256) {
        fds = malloc(k * sizeof *fds);
        if (fds == NULL)
            return MPROC_ENOMEM;
        k = gather_kept(fds, k, o, failfd);
    }
    qsort(fds, k, sizeof *fds, cmp_int);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (fds[i] >= 3 && (m == 0 || fds[m - 1] != fds[i]))
            fds[m++] = fds[i];
    int rc = mproc__os_close_fds_except(fds, m);
    if (fds != small)
        free(fds);
    return rc;
}

/* The child's side of start: p is the child's copy of the new handle,
 * which it does not need beyond its name. */
static MPROC_NORETURN void child_main(mproc_process *p, int (*fn)(void *),
                                      void *arg, int wfd, int rfd,
                                      const char *identity, pid_t parent,
                                      const mproc_process_opts *o)
{
    if (p->daemon) {
        mproc__os_set_parent_death_signal(SIGKILL);
        /* The parent may have died before prctl: then nobody will send the
         * signal, so take it now. */
        if (getppid() != parent)
            raise(SIGKILL);
    }
    mproc__os_close(rfd);
    mproc__self_set_parent(parent, mproc__self_name());
    mproc__self_set_name(p->name);
    mproc__self_set_identity(identity);
    pthread_mutex_destroy(&p->mu);
    free(p);
    mproc__self_reset_children();
    struct stat st;
    if (fstat(wfd, &st) == 0 &&
        fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK) == 0) {
        child_fail_fd = wfd;
        child_fail_dev = st.st_dev;
        child_fail_ino = st.st_ino;
    }
    child_fail_pid = getpid();
    atomic_flag_clear(&failing);
    int rc = o->inherit_only ? keep_only(o, wfd) : 0;
    mproc__reg_release_in_child();
    if (rc < 0)
        mproc_fail(rc, "inherit_only: the other fds could not be closed");
    child_finish(fn(arg));
}

int mproc_process_start(mproc_process **out, int (*fn)(void *arg), void *arg,
                        const mproc_process_opts *opts)
{
    if (out == NULL || fn == NULL)
        return MPROC_EINVAL;
    if (opts == NULL)
        opts = &default_opts;
    int rc = check_name(opts->name);
    if (rc == 0)
        rc = check_keep_args(opts);
    if (rc < 0)
        return rc;
    mproc_process *p = handle_new();
    if (p == NULL)
        return MPROC_ENOMEM;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        rc = -errno;
        handle_free(p);
        return rc;
    }
    /* The parent reads only after the child is reaped, and never waits. */
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    char identity[MPROC__NAME_MAX];
    pid_t parent = getpid(), pid = -1;
    fflush(stdout);
    fflush(stderr);
    /* Held across fork: the child finds the registry whole and unlocked
     * by any thread that does not exist there. */
    mproc__reg_lock();
    rc = check_keep_ends(opts);
    if (rc == 0) {
        next_identity(identity, p->name, opts->name);
        p->daemon = opts->daemon;
        pid = fork();
        if (pid == 0)
            child_main(p, fn, arg, fds[1], fds[0], identity, parent, opts);
        if (pid < 0)
            rc = -errno;
    }
    mproc__reg_unlock();
    mproc__os_close(fds[1]);
    if (rc == 0) {
        int pidfd = open_pidfd(pid);
        if (pidfd < -1) {
            rc = pidfd;
            kill_and_reap(pid);
        }
        p->pidfd = pidfd;
    }
    if (rc < 0) {
        mproc__os_close(fds[0]);
        handle_free(p);
        return rc;
    }
    p->pid = pid;
    p->errfd = fds[0];
    mproc__reg_add(&p->reg, &handle_reg_ops, p);
    *out = p;
    return 0;
}

/* Returns fd itself when it is -1 or open, a private copy above 2 when it is
 * one of 0..2 other than target (so the dup2 of one stdio slot cannot
 * overwrite the source of another), or MPROC_EBADF. *copy is the fd to
 * close afterwards (-1 for none). */
static int stdio_source(int fd, int target, int *copy)
{
    *copy = -1;
    if (fd == -1)
        return -1;
    if (fd < -1 || fcntl(fd, F_GETFD) < 0)
        return MPROC_EBADF;
    if (fd <= 2 && fd != target) {
        int c = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (c < 0)
            return -errno;
        *copy = c;
        return c;
    }
    return fd;
}

int mproc_process_spawn(mproc_process **out, const char *path,
                        char *const argv[], const mproc_spawn_opts *opts)
{
    if (out == NULL || path == NULL)
        return MPROC_EINVAL;
    if (opts == NULL)
        opts = &default_spawn_opts;
    int rc = check_name(opts->name);
    if (rc < 0)
        return rc;
    const int want[3] = {opts->stdin_fd, opts->stdout_fd, opts->stderr_fd};
    int src[3], copy[3] = {-1, -1, -1};
    for (int i = 0; i < 3 && rc == 0; i++) {
        src[i] = stdio_source(want[i], i, &copy[i]);
        if (src[i] < -1)
            rc = src[i];
    }
    mproc_process *p = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool have_fa = false, have_attr = false;
    if (rc < 0)
        goto out;
    p = handle_new();
    if (p == NULL) {
        rc = MPROC_ENOMEM;
        goto out;
    }
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        rc = -rc;
        goto out;
    }
    have_fa = true;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        rc = -rc;
        goto out;
    }
    have_attr = true;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (src[i] >= 0)
            rc = -posix_spawn_file_actions_adddup2(&fa, src[i], i);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGXFSZ);
    if (rc == 0)
        rc = -posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0)
        rc = -posix_spawnattr_setsigdefault(&attr, &def);
    if (rc == 0)
        rc = -posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK |
                                                  POSIX_SPAWN_SETSIGDEF);
    if (rc < 0)
        goto out;
    char *const default_argv[] = {(char *)path, NULL};
    char identity[MPROC__NAME_MAX];
    next_identity(identity, p->name, opts->name);
    pid_t pid;
    /* glibc's posix_spawn reports the child's exec errno itself (and reaps
     * the failed child), so ENOENT/EACCES arrive as such. */
    int err = (strchr(path, '/') != NULL ? posix_spawn : posix_spawnp)(
        &pid, path, &fa, &attr, argv != NULL ? argv : default_argv,
        opts->envp != NULL ? opts->envp : environ);
    if (err != 0) {
        rc = -err;
        goto out;
    }
    int pidfd = open_pidfd(pid);
    if (pidfd < -1) {
        rc = pidfd;
        kill_and_reap(pid);
        goto out;
    }
    p->pid = pid;
    p->pidfd = pidfd;
    mproc__reg_add(&p->reg, &handle_reg_ops, p);
    *out = p;
    p = NULL;
    rc = 0;
out:
    if (have_attr)
        posix_spawnattr_destroy(&attr);
    if (have_fa)
        posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 3; i++)
        mproc__os_close(copy[i]);
    if (p != NULL)
        handle_free(p);
    return rc;
}

/* Fills p's exit code and failure record from the wait status and what the
 * child sent. Called once, under p->mu, before state becomes REAPED. */
static void collect(mproc_process *p, int status, int sig)
{
    p->exitcode = sig != 0 ? -sig : status;
    void *buf = NULL;
    size_t len = 0;
    int rc = MPROC_ECLOSED;
    if (p->errfd >= 0) {
        /* The child is gone, so all it wrote is in the pipe: try once. A
         * descendant holding the write end cannot make us wait. */
        mproc__deadline now;
        mproc__deadline_init(&now, 0);
        rc = mproc__frame_recv_alloc(p->errfd, &buf, &len,
                                     REC_MAX - MPROC__FRAME_HDR, &now);
        mproc__os_close(p->errfd);
        p->errfd = -1;
    }
    if (p->exitcode == 0) {
        free(buf);
        return;
    }
    mproc_failure *f = &p->failure;
    f->exitcode = p->exitcode;
    f->signal = sig;
    f->pid = p->pid;
    f->name = p->name;
    f->message = p->message;
    f->file = p->file;
    f->backtrace = p->trace;
    f->error = MPROC_ECHILD;
    f->line = 0;
    f->from_child = false;
    p->file[0] = '\0';
    p->trace[0] = '\0';
    if (rc == 0 && rec_decode(p, buf, len) == 0) {
        f->from_child = true;
    } else if (rc == 0 || rc == MPROC_EPROTO || rc == MPROC_EMSGSIZE) {
        f->error = MPROC_EPROTO;
        f->line = 0;
        p->file[0] = '\0';
        p->trace[0] = '\0';
        snprintf(p->message, sizeof p->message,
                 "malformed failure record from the child");
    } else if (sig != 0) {
        snprintf(p->message, sizeof p->message, "killed by signal %d (%s)", sig,
                 mproc__os_signal_abbrev(sig));
    } else {
        snprintf(p->message, sizeof p->message, "exited with status %d",
                 status);
    }
    free(buf);
    p->failed = true;
}

/* Whether the parent behind a handle from mproc_process_open_parent() has
 * exited: its pidfd is readable, or, without one, the caller (the process
 * that opened the handle) has been reparented. 1 exited, 0 running,
 * -errno. */
static int parent_gone(const mproc_process *p)
{
    if (p->pidfd < 0)
        return getppid() != p->pid;
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN, .revents = 0};
    int n;
    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR)
        ;
    return n < 0 ? -errno : n > 0;
}

/* One reap attempt under the lock: 0 reaped now, 1 still running,
 * MPROC_ESTATE already reaped, MPROC_ESRCH status lost. A parent handle
 * is not reaped: its "reaping" records that it has exited, status
 * unknown. */
static int try_reap(mproc_process *p)
{
    pthread_mutex_lock(&p->mu);
    int rc;
    if (atomic_load(&p->state) == REAPED) {
        rc = MPROC_ESTATE;
    } else if (p->is_parent) {
        rc = parent_gone(p);
        if (rc == 1) {
            p->wait_rc = MPROC_ESRCH;
            atomic_store(&p->state, REAPED);
            rc = 0;
        } else if (rc == 0) {
            rc = 1;
        }
    } else {
        int status = 0, sig = 0;
        int r = mproc__os_pidfd_reap(p->pidfd, p->pid, &status, &sig);
        if (r == 0) {
            rc = 1;
        } else if (r == 1) {
            collect(p, status, sig);
            atomic_store(&p->state, REAPED);
            rc = 0;
        } else if (r == -ECHILD) {
            /* Reaped behind our back; nothing will ever tell. */
            p->wait_rc = MPROC_ESRCH;
            mproc__os_close(p->errfd);
            p->errfd = -1;
            atomic_store(&p->state, REAPED);
            rc = MPROC_ESRCH;
        } else {
            rc = r; /* waitid failed otherwise: still joinable */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int mproc_process_join(mproc_process *p, int64_t timeout_ms)
{
    if (p == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if (getpid() != p->owner)
        return MPROC_ENOTOWNER;
    int nap_ms = 0;
    for (;;) {
        rc = try_reap(p);
        if (rc <= 0)
            return rc;
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        int ms = mproc__deadline_poll_ms(&d);
        struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN, .revents = 0};
        if (p->pidfd < 0) {
            /* No pidfd: look again after a short sleep, growing to 20 ms. */
            nap_ms = nap_ms < 20 ? nap_ms + 1 : 20;
            if (ms < 0 || ms > nap_ms)
                ms = nap_ms;
        }
        int n = poll(&pfd, p->pidfd < 0 ? 0 : 1, ms);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0 && mproc__deadline_expired(&d)) {
            /* One last look: it may have exited right at the deadline. */
            rc = try_reap(p);
            return rc == 1 ? MPROC_ETIMEDOUT : rc;
        }
    }
}

int mproc_process_is_alive(const mproc_process *p)
{
    if (p == NULL)
        return MPROC_EINVAL;
    if (atomic_load(&p->state) == REAPED)
        return 0;
    bool owner = getpid() == p->owner;
    if (p->is_parent && (owner || p->pidfd >= 0)) {
        int g = parent_gone(p);
        return g < 0 ? g : !g;
    }
    if (p->pidfd < 0)
        return mproc__os_pid_exited(p->pid, owner) == 0;
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN, .revents = 0};
    int n;
    while ((n = poll(&pfd, 1, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -errno;
    return n == 0 ? 1 : 0;
}

int mproc_process_exitcode(const mproc_process *p, int *code)
{
    if (p == NULL || code == NULL)
        return MPROC_EINVAL;
    if (atomic_load(&p->state) != REAPED)
        return MPROC_ESTATE;
    if (p->wait_rc < 0)
        return p->wait_rc;
    *code = p->exitcode;
    return 0;
}

int mproc_process_signal(mproc_process *p, int sig)
{
    if (p == NULL || sig < 1 || sig > SIGRTMAX)
        return MPROC_EINVAL;
    if (atomic_load(&p->state) == REAPED)
        return MPROC_ESTATE;
    int rc;
    if (p->pidfd >= 0) {
        rc = mproc__os_pidfd_send_signal(p->pidfd, sig);
    } else if (getpid() == p->owner) {
        /* By pid: under the lock, so no join can reap the child (and free
         * its pid for reuse) between the check and the kill. */
        pthread_mutex_lock(&p->mu);
        if (atomic_load(&p->state) == REAPED)
            rc = MPROC_ESTATE;
        else if (p->is_parent && getppid() != p->pid)
            rc = 0; /* the parent is gone: its pid may be reused */
        else
            rc = mproc__os_kill(p->pid, sig);
        pthread_mutex_unlock(&p->mu);
    } else {
        rc = mproc__os_kill(p->pid, sig);
    }
    /* Exited but not yet joined: the signal is moot, not an error. */
    return rc == -ESRCH ? 0 : rc;
}

int mproc_process_terminate(mproc_process *p)
{
    return mproc_process_signal(p, SIGTERM);
}

int mproc_process_kill(mproc_process *p)
{
    return mproc_process_signal(p, SIGKILL);
}

int mproc_process_fd(const mproc_process *p)
{
    if (p == NULL)
        return MPROC_EINVAL;
    return p->pidfd >= 0 ? p->pidfd : MPROC_ENOSYS;
}

pid_t mproc_process_pid(const mproc_process *p)
{
    return p != NULL ? p->pid : MPROC_EINVAL;
}

const char *mproc_process_name(const mproc_process *p)
{
    return p != NULL ? p->name : NULL;
}

int mproc_process_is_daemon(const mproc_process *p)
{
    return p != NULL ? (int)p->daemon : MPROC_EINVAL;
}

const mproc_failure *mproc_process_error(const mproc_process *p)
{
    if (p == NULL || atomic_load(&p->state) != REAPED || !p->failed)
        return NULL;
    return &p->failure;
}

int mproc_failure_format(const mproc_failure *f, char *buf, size_t size)
{
    if (f == NULL || (buf == NULL && size > 0))
        return MPROC_EINVAL;
    char where[FILE_MAX + 32] = "";
    if (f->file != NULL && f->file[0] != '\0')
        snprintf(where, sizeof where, "\n  at %s:%d", f->file, f->line);
    const char *bt = f->backtrace != NULL ? f->backtrace : "";
    int n = snprintf(
        buf, size, "%s (pid %d) failed with exit code %d: %s: %s%s%s%s",
        f->name != NULL ? f->name : "?", (int)f->pid, f->exitcode,
        mproc_errname(f->error), f->message != NULL ? f->message : "", where,
        bt[0] != '\0' ? "\n" : "", bt);
    return n < 0 ? MPROC_EINVAL : n;
}

void mproc_process_destroy(mproc_process *p)
{
    if (p == NULL)
        return;
    /* Reap a child that has already exited, so it leaves no zombie; one
     * still running is left alone (see the header). */
    if (getpid() == p->owner && atomic_load(&p->state) == RUNNING)
        try_reap(p);
    handle_free(p);
}

const char *mproc_current_name(void)
{
    return mproc__self_name();
}

pid_t mproc_current_pid(void)
{
    return getpid();
}

pid_t mproc_parent_pid(void)
{
    return getppid();
}

int mproc_process_open_parent(mproc_process **out)
{
    if (out == NULL)
        return MPROC_EINVAL;
    const char *name = "parent";
    pid_t want = mproc__self_parent(&name);
    if (want == 0) {
        want = getppid();
        name = "parent";
    }
    if (want <= 0)
        return MPROC_ESRCH; /* outside our pid namespace */
    mproc_process *p = handle_new();
    if (p == NULL)
        return MPROC_ENOMEM;
    int fd = open_pidfd(want);
    if (fd < -1) {
        handle_free(p);
        return fd;
    }
    /* Still our parent after the open means it had not exited before it
     * (an orphan is reparented as its parent exits), so the pidfd names
     * that very process and not a stranger that reused its pid. */
    if (getppid() != want) {
        mproc__os_close(fd);
        handle_free(p);
        return MPROC_ESRCH;
    }
    p->pid = want;
    p->pidfd = fd;
    p->is_parent = true;
    snprintf(p->name, sizeof p->name, "%s", name);
    mproc__reg_add(&p->reg, &handle_reg_ops, p);
    *out = p;
    return 0;
}

int mproc_active_children(mproc_process **out, size_t cap, size_t *count)
{
    if (count == NULL || (out == NULL && cap > 0))
        return MPROC_EINVAL;
    pid_t me = getpid();
    size_t k = 0;
    /* Under the registry lock no handle can be freed meanwhile. */
    mproc__reg_lock();
    for (mproc__reg_node *n = mproc__reg_first(); n != NULL;
         n = mproc__reg_next(n)) {
        if (n->ops != &handle_reg_ops)
            continue;
        mproc_process *p = (mproc_process *)n->obj;
        /* Live, or its state could not be read (counted as live). */
        if (p->owner == me && !p->is_parent && mproc_process_is_alive(p) != 0) {
            if (k < cap)
                out[k] = p;
            k++;
        }
    }
    mproc__reg_unlock();
    *count = k;
    return 0;
}
