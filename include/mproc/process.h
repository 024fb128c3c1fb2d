/*
 * mproc/process.h: child processes, as Python's multiprocessing.Process.
 *
 * mproc_process_start() runs a function in a forked child;
 * mproc_process_spawn() runs a program with posix_spawn. Either gives a
 * handle with the child's name ("Process-N" by default, "Process-N:M" for the
 * children of Process-N), pid and pidfd (pollable: readable once the child
 * has exited). mproc_process_join() waits with a timeout and reaps the child
 * through its pidfd; afterwards mproc_process_exitcode() gives its exit status
 * or minus the signal that killed it, and mproc_process_error() a failure
 * record when it did not succeed: exit code, signal, error code, message,
 * source file and line, and a backtrace when the child could take one.
 *
 * No SIGCHLD handler: each child is reaped through its own handle, and
 * mproc_active_children() lists the handles of the children still
 * running. Do not reap mproc's children behind its back
 * (waitpid(-1, ...), wait(), or SIGCHLD set to SIG_IGN): their exit status is
 * then lost and join returns MPROC_ESRCH.
 *
 * Unlike Python, nothing happens to children when their parent exits (no
 * atexit hook joins them or terminates daemons): daemon children are killed
 * by the kernel (see mproc_process_opts.daemon); other children go on,
 * orphaned, until they end. Join what you start.
 *
 * Thread safety: every call on a handle may be made from several threads of
 * the process that started the child, except mproc_process_destroy(), which
 * must be the last. Reaping is serialised inside the handle.
 *
 * There is no handle for a process that was never started: start and spawn
 * write their out-parameter only on success, and every call given a NULL
 * handle returns MPROC_EINVAL (or NULL) and does nothing.
 *
 * Fork behaviour: a handle is usable for join only in the process that
 * started the child (its owner). A child that inherits a copy of a sibling's
 * handle may read its name, pid and fd, ask whether it is alive, and
 * terminate or kill it (the pidfd names that very process, never a reused
 * pid), but mproc_process_join() there returns MPROC_ENOTOWNER, and
 * mproc_process_destroy() there only frees the copy. Handles are not
 * meaningful in unrelated processes.
 */
#ifndef MPROC_PROCESS_H
#define MPROC_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A started child process. Opaque; made by mproc_process_start() or
 * mproc_process_spawn(), freed by mproc_process_destroy(). */
typedef struct mproc_process mproc_process;

/* The longest process name, in bytes, without the terminating NUL. */
#define MPROC_PROCESS_NAME_MAX 63

/* A connection end (mproc/conn.h). */
struct mproc_conn;

/*
 * Options of mproc_process_start(). Start from MPROC_PROCESS_OPTS_INIT.
 *   name    the child's name (copied); NULL gives "Process-N". At most
 *           MPROC_PROCESS_NAME_MAX bytes. The child's number N is consumed
 *           either way, as in Python.
 *   daemon  the child is killed (SIGKILL) when its parent dies, even when
 *           the parent itself is SIGKILLed. Implemented with
 *           PR_SET_PDEATHSIG, which fires when the parent *thread* that
 *           started the child exits: start daemon children from a thread
 *           that outlives them (the main thread, typically). Unlike Python,
 *           a daemon child may start children of its own; its daemon
 *           children die with it, its other children outlive it.
 *   inherit_only, keep, n_keep, keep_fds, n_keep_fds
 *           the child inherits only what it is given. With inherit_only
 *           true, the child, before fn runs:
 *           - closes every connection end (mproc_pipe, mproc_pipe_kernel,
 *             mproc_pipe_bytes, FIFO, client, accepted or received ends,
 *             mproc_conn_from_fd) and every listener of the parent that is
 *             neither listed in keep (n_keep of them) nor has its fd
 *             (mproc_conn_fd, mproc_listener_fd) listed in keep_fds; so a
 *             worker holds no copy of another worker's pipe, and EOF
 *             reaches each worker when the parent closes that worker's end;
 *           - then closes every other fd from 3 up, as Python's
 *             subprocess close_fds, except: the keep_fds (n_keep_fds of
 *             them), the fds of the kept ends, stdin, stdout and stderr,
 *             and the fds mproc holds for objects that stay usable in the
 *             child: loggers' sinks (mproc/log.h), an Event's fd
 *             (mproc_event_fd), process handles' pidfds, and the child's
 *             own failure pipe. An fd of the caller's own that fn needs (a
 *             file, a socket, an epoll fd) must be listed in keep_fds.
 *           An end closed this way stays a valid handle in the child:
 *           mproc_conn_close() (mproc_listener_close()) frees it without
 *           closing anything, so an fd number the child has reused since
 *           is never hit; every other call on it returns MPROC_EBADF
 *           (mproc_conn_fd() and mproc_listener_fd() return -1,
 *           mproc_conn_can_send/can_recv false, and mproc_wait() on it
 *           MPROC_EBADF). The parent's own ends are untouched.
 *           With inherit_only false (the default) the child inherits every
 *           fd, as fork gives it, and keep and keep_fds must be empty.
 *           keep and keep_fds are read during the call only.
 */
typedef struct mproc_process_opts {
    const char *name;
    bool daemon;
    bool inherit_only;
    struct mproc_conn *const *keep;
    size_t n_keep;
    const int *keep_fds;
    size_t n_keep_fds;
} mproc_process_opts;

#define MPROC_PROCESS_OPTS_INIT                                                \
    {                                                                          \
        NULL, false, false, NULL, 0, NULL, 0                                   \
    }

/*
 * mproc_process_start: forks a child that runs fn(arg) and exits.
 *
 * out   (out) the new handle, written only on success.
 * fn    the child's function. Its return value is the child's result:
 *       0 is success (exit status 0); a value from 1 to 255 is the exit
 *       status; any other value (a negative MPROC_E* code, say) gives exit
 *       status 1. A non-zero return leaves a failure record whose error is
 *       the value returned, in full. fn may also end the child with
 *       mproc_fail() or _exit(). Do not end it with exit(3): that runs the
 *       parent's atexit handlers (inherited by fork) in the child.
 * arg   passed to fn in the child (the child's copy of the parent's memory).
 * opts  NULL for defaults.
 *
 * Before forking, the caller's stdout and stderr are flushed (so buffered
 * output is not written twice). The child flushes stdout and stderr after fn
 * returns (or mproc_fail()) and ends with _exit(); nothing else runs at its
 * end. No atexit handler runs, neither those inherited from the parent nor
 * those fn registered: C cannot tell the two apart, and the parent's (one
 * that removes the parent's files, flushes its buffers or shuts down its
 * services) would act a second time from the child. Other stdio streams are
 * not flushed: fclose what fn opens. Threads fn started are not waited for:
 * they end with the child, so join them before fn returns. The child
 * inherits what fork gives (memory, fds unless opts->inherit_only says
 * otherwise, signal dispositions and mask, only the calling thread); its
 * mproc_current_name() is the child's name. With inherit_only, a child
 * that cannot close the other fds (no memory for the list) fails before fn
 * runs, with a failure record whose error is that code.
 *
 * Returns 0, or
 *   MPROC_EINVAL        out or fn is NULL; keep or keep_fds given without
 *                       inherit_only; keep (keep_fds) NULL with n_keep
 *                       (n_keep_fds) > 0; an entry of keep that is NULL or
 *                       not an open end of this process;
 *   MPROC_EBADF         an entry of keep_fds is not an open fd;
 *   MPROC_ENAMETOOLONG  opts->name is longer than MPROC_PROCESS_NAME_MAX;
 *   MPROC_ENOMEM, MPROC_EMFILE, MPROC_ENFILE, MPROC_EAGAIN (fork: too many
 *                       processes), or another -errno of pidfd_open:
 *                       nothing started (a child forked before a failed
 *                       pidfd_open is killed and reaped; it may have begun
 *                       to run fn). Where pidfd_open does not exist or is
 *                       refused (Linux < 5.3: ENOSYS; a seccomp filter:
 *                       EPERM), the handle works without a pidfd: see
 *                       mproc_process_fd().
 * On any error no child is left and the child counter is unchanged unless the
 * fork itself was attempted.
 *
 * Ownership: the caller owns *out and frees it with mproc_process_destroy().
 * Blocking: the flush of stdout and stderr (which waits when they are a
 * full pipe or a slow terminal), then fork. Thread safety: may be called from
 * several threads at once; each child gets its own number.
 */
MPROC_API int mproc_process_start(mproc_process **out, int (*fn)(void *arg),
                                  void *arg, const mproc_process_opts *opts);

/*
 * Options of mproc_process_spawn(). Start from MPROC_SPAWN_OPTS_INIT.
 *   name       as in mproc_process_opts (a label in the parent only: the
 *              program's own mproc_current_name() is "MainProcess").
 *   stdin_fd, stdout_fd, stderr_fd
 *              an open fd of the caller to become the program's fd 0, 1 or
 *              2; -1 keeps the caller's own. The caller keeps its fds.
 *   envp       the environment; NULL passes the caller's environ.
 */
typedef struct mproc_spawn_opts {
    const char *name;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    char *const *envp;
} mproc_spawn_opts;

#define MPROC_SPAWN_OPTS_INIT                                                  \
    {                                                                          \
        NULL, -1, -1, -1, NULL                                                 \
    }

/*
 * mproc_process_spawn: starts a program with posix_spawn.
 *
 * out    (out) the new handle, written only on success.
 * path   the program; without a '/' it is searched in PATH (execvp rules).
 * argv   NULL-terminated arguments, argv[0] first; NULL gives {path, NULL}.
 * opts   NULL for defaults.
 *
 * The program gets an empty signal mask and the default action for SIGPIPE
 * and SIGXFSZ (a parent that ignores SIGPIPE does not pass that on); every
 * other fd of the caller that is close-on-exec (all of mproc's) is closed.
 * A spawned program is never a daemon child and sends no failure record:
 * after join, mproc_process_error() describes a non-zero exit or a signal
 * from the wait status alone.
 *
 * Returns 0, or
 *   MPROC_EINVAL        out or path is NULL;
 *   MPROC_ENAMETOOLONG  opts->name too long;
 *   MPROC_EBADF         a stdio fd in opts is neither -1 nor open;
 *   MPROC_ENOENT, MPROC_EACCES, ... the program could not be executed: the
 *                       exec's own errno from the child (missing program,
 *                       no execute permission, or another -errno such as
 *                       -ENOEXEC), never guessed from exit code 127;
 *                       the failed child is already reaped;
 *   MPROC_ENOMEM, MPROC_EMFILE, MPROC_EAGAIN as for start.
 * Ownership, blocking and thread safety as mproc_process_start() (the
 * caller's thread is suspended until the program has exec'ed).
 */
MPROC_API int mproc_process_spawn(mproc_process **out, const char *path,
                                  char *const argv[],
                                  const mproc_spawn_opts *opts);

/*
 * mproc_process_join: waits until the child has exited and reaps it.
 *
 * timeout_ms  MPROC_FOREVER, 0 (try once), or a positive bound.
 *
 * Returns 0 once the child is reaped, whatever its exit status (read it with
 * mproc_process_exitcode() and mproc_process_error()), or
 *   MPROC_EINVAL     p is NULL, or timeout_ms < -1;
 *   MPROC_ETIMEDOUT  the child is still running (nothing changed; join
 *                    again later);
 *   MPROC_ESTATE     the child was already reaped by an earlier join
 *                    (nothing changes);
 *   MPROC_ENOTOWNER  the caller is not the process that started the child
 *                    (or, for a parent handle, that opened the handle);
 *   MPROC_ESRCH      someone else reaped the child (waitpid(-1), SIGCHLD
 *                    ignored): it counts as joined, its status is unknown and
 *                    mproc_process_exitcode() returns MPROC_ESRCH too;
 *   another -errno   poll(2) or waitid(2) failed (MPROC_ENOMEM, say); the
 *                    child is still joinable.
 * On a handle from mproc_process_open_parent() join waits for the parent
 * to exit and reaps nothing (see there).
 * Blocking: up to timeout_ms (polls the pidfd; EINTR never lengthens it).
 * Thread safety: several threads may join the same handle; exactly one gets
 * 0 and the others MPROC_ESTATE (or MPROC_ETIMEDOUT if their time ran out
 * first). Fork: see the top of this header.
 */
MPROC_API int mproc_process_join(mproc_process *p, int64_t timeout_ms);

/*
 * mproc_process_is_alive: whether the child is still running.
 * Returns 1 while it runs, 0 once it has exited (joined or not),
 * MPROC_EINVAL for a NULL handle, or another -errno when poll(2) on the
 * pidfd fails (MPROC_ENOMEM). Does not reap. Non-blocking, thread-safe,
 * usable in any process that holds a copy of the handle (there, without a
 * pidfd, an exited child not yet joined still counts as running).
 */
MPROC_API int mproc_process_is_alive(const mproc_process *p);

/*
 * mproc_process_exitcode: the child's exit code after join.
 * code  (out) the exit status (0..255), or minus the signal number when a
 *       signal ended the child (-9 for SIGKILL, -15 for SIGTERM), as Python.
 * Returns 0, or MPROC_EINVAL (p or code NULL), MPROC_ESTATE (not joined yet;
 * *code untouched), MPROC_ESRCH (see join). Thread-safe, non-blocking.
 */
MPROC_API int mproc_process_exitcode(const mproc_process *p, int *code);

/*
 * mproc_process_terminate / mproc_process_kill: send SIGTERM / SIGKILL to
 * the child (through its pidfd, so a reused pid is never hit; where there
 * is no pidfd, see mproc_process_fd(), it is a plain kill(2) by pid, which
 * in a process other than the parent can hit a reused pid). Join it
 * afterwards. Returns 0 (also when the child has exited but is not yet
 * joined: the signal then has no effect), or MPROC_EINVAL (NULL handle),
 * MPROC_ESTATE (already joined: nothing is sent), or another -errno from
 * pidfd_send_signal (MPROC_EPERM). Non-blocking, thread-safe, usable in any
 * process that holds a copy of the handle.
 */
MPROC_API int mproc_process_terminate(mproc_process *p);
MPROC_API int mproc_process_kill(mproc_process *p);

/*
 * mproc_process_signal: sends any signal sig (1..64) to the child, as
 * terminate and kill do. MPROC_EINVAL also for a bad signal number.
 */
MPROC_API int mproc_process_signal(mproc_process *p, int sig);

/*
 * mproc_process_fd: the child's pidfd, for poll/epoll (readable once the
 * child has exited; it stays readable after join). Returns the fd (>= 0),
 * MPROC_EINVAL for a NULL handle, or MPROC_ENOSYS where the system has no
 * pidfd_open (Linux < 5.3, valgrind < 3.20; every other call still works
 * there: join then polls the child's status with short sleeps). Borrowed:
 * owned by the handle, closed by mproc_process_destroy(); do not close it
 * or read from it.
 */
MPROC_API int mproc_process_fd(const mproc_process *p);

/* mproc_process_pid: the child's pid, or MPROC_EINVAL for a NULL handle.
 * The pid may be reused by another process once the child is joined. */
MPROC_API pid_t mproc_process_pid(const mproc_process *p);

/* mproc_process_name: the child's name; NULL for a NULL handle. Borrowed,
 * valid until mproc_process_destroy(). */
MPROC_API const char *mproc_process_name(const mproc_process *p);

/* mproc_process_is_daemon: 1 for a daemon child, 0 otherwise, MPROC_EINVAL
 * for a NULL handle. */
MPROC_API int mproc_process_is_daemon(const mproc_process *p);

/*
 * A child's failure, as the parent sees it after join. Every string is
 * NUL-terminated and never NULL ("" when unknown).
 *   exitcode    as mproc_process_exitcode(): status, or -signal.
 *   signal      the signal that ended the child, 0 when it exited.
 *   error       the code given to mproc_fail() or returned by fn; for a
 *               failure the child did not describe (a signal, exit() with a
 *               non-zero status, a spawned program) MPROC_ECHILD; for a
 *               malformed record from the child MPROC_EPROTO.
 *   pid, name   the child's.
 *   message     mproc_fail()'s formatted message (at most 1023 bytes), or a
 *               description the parent wrote ("killed by signal 9 (KILL)",
 *               "exited with status 3").
 *   file, line  where mproc_fail() was called ("" and 0 otherwise).
 *   backtrace   the child's stack at mproc_fail(), innermost first, one
 *               frame a line, as
 *                 "#0 parse_port+0x65 at config.c:18 (myprog)"
 *               The child names the frames itself, in its own address
 *               space, before it sends the record. When mproc is built
 *               with elfutils' libdw (scripts/setup-debian.sh installs
 *               it), every function is named, static ones too (from the
 *               binaries' symbol tables, so not in a stripped binary), with
 *               file and line where the binary has debug information (-g;
 *               separate debug files under /usr/lib/debug are found too;
 *               a debuginfod server is never asked). Without libdw, names
 *               are those dladdr(3) gives: exported functions only (link
 *               with -rdynamic for more), others as "#1 (myprog+0x1435)".
 *               Frames that do not fit in the record (see design.md) are
 *               left off at the end. "" when none was taken: always for a
 *               child killed by a signal (a dying process cannot be
 *               asked) and for a non-zero return from fn.
 *   from_child  true when the child sent the record (mproc_fail() or a
 *               non-zero return), false when the parent built it.
 * The exitcode and signal always come from the kernel's wait status, even
 * when the child sent a record and was killed afterwards.
 */
typedef struct mproc_failure {
    int exitcode;
    int signal;
    int error;
    pid_t pid;
    const char *name;
    const char *message;
    const char *file;
    int line;
    const char *backtrace;
    bool from_child;
} mproc_failure;

/*
 * mproc_process_error: the failure record of a joined child whose exit code
 * is not 0; NULL when p is NULL, the child is not joined yet, or it
 * succeeded. Borrowed: valid until mproc_process_destroy(p). Thread-safe.
 */
MPROC_API const mproc_failure *mproc_process_error(const mproc_process *p);

/*
 * mproc_failure_format: writes a human description of f into buf (always
 * NUL-terminated when size > 0), like
 *   "Process-1 (pid 42) failed with exit code 1: MPROC_EINVAL: bad input
 *     at worker.c:17"
 * followed by the backtrace lines, if any. Returns the length the full text
 * needs (as snprintf), or MPROC_EINVAL when f is NULL or buf is NULL with a
 * size > 0. Thread-safe, never allocates.
 */
MPROC_API int mproc_failure_format(const mproc_failure *f, char *buf,
                                   size_t size);

/*
 * mproc_process_destroy: frees the handle and closes its fds. Accepts NULL.
 * A child not yet joined is reaped if it has already exited; a child still
 * running is left running (it is not killed; as nobody will reap it, it
 * stays a zombie after it exits until the caller's process ends). Join
 * before destroying, or kill and then join. Never blocks. The handle must
 * not be in use by another thread.
 */
MPROC_API void mproc_process_destroy(mproc_process *p);

/* mproc_current_name: the caller's mproc name: "MainProcess" in a process
 * mproc did not start, the child's name in a started child. Static storage,
 * valid for the life of the process; thread-safe. */
MPROC_API const char *mproc_current_name(void);

/* mproc_current_pid / mproc_parent_pid: getpid() and getppid(). */
MPROC_API pid_t mproc_current_pid(void);
MPROC_API pid_t mproc_parent_pid(void);

/*
 * mproc_process_open_parent: a handle on the process that started the
 * caller (Python's parent_process()), to ask whether it is alive and to wait
 * for it to exit.
 *
 * out  (out) the new handle, written only on success.
 *
 * The parent is the process that started the caller with
 * mproc_process_start(), or, in a process mproc did not start that way,
 * getppid(). The handle holds a pidfd of that very process: it is opened
 * and then checked against getppid(), so a pid reused after the parent's
 * exit is never taken for it. Its name is the parent's mproc name in a
 * child of mproc_process_start() ("MainProcess", "Process-1"), else
 * "parent". On it:
 *   mproc_process_is_alive()  1 until the parent exits;
 *   mproc_process_join()      waits, with a timeout, until the parent has
 *                             exited, and returns 0 then (MPROC_ETIMEDOUT
 *                             before); nothing is reaped: the parent's exit
 *                             status is not the caller's to read, so
 *                             mproc_process_exitcode() then returns
 *                             MPROC_ESRCH and mproc_process_error() NULL;
 *   mproc_process_fd()        the pidfd, for mproc_wait() or poll
 *                             (MPROC_WAIT_PROCESS): readable once the
 *                             parent has exited;
 *   mproc_process_pid(), _name(), _signal(), _terminate(), _kill() as on a
 *                             child; mproc_process_destroy() frees it.
 * Where pidfd_open is missing or refused (see mproc_process_fd()) the
 * handle works without one: alive means getppid() still gives the
 * parent's pid, and join polls that with short sleeps.
 *
 * Returns 0, or
 *   MPROC_EINVAL  out is NULL;
 *   MPROC_ESRCH   the parent has exited already (the caller was
 *                 reparented), or it is outside the caller's pid namespace;
 *   MPROC_ENOMEM, MPROC_EMFILE, MPROC_ENFILE, or another -errno of
 *                 pidfd_open.
 * Ownership: the caller frees *out with mproc_process_destroy(). Never
 * blocks. Thread-safe. Fork: as for any handle (join only in the process
 * that opened it; a forked copy answers is_alive through the pidfd).
 */
MPROC_API int mproc_process_open_parent(mproc_process **out);

/*
 * mproc_active_children: the children the caller started (with
 * mproc_process_start() or mproc_process_spawn()) that are still running,
 * as Python's active_children().
 *
 * out    (out) room for cap handles, filled in the order the children were
 *        started; may be NULL when cap is 0.
 * cap    how many fit in out.
 * count  (out) how many children are running; when it exceeds cap only the
 *        first cap are written, so a call with cap 0 asks for the size.
 *
 * A child counts while mproc_process_is_alive() says so (a child whose
 * state cannot be read counts as running): one that has exited is left
 * out whether joined or not. Handles inherited from a parent and handles
 * from mproc_process_open_parent() are never listed.
 * Nothing is reaped: a child that has exited stays a zombie until its
 * handle is joined or destroyed, so that join still returns 0 and its exit
 * status (reaping here would leave join only MPROC_ESTATE). Join what you
 * start, or destroy it.
 *
 * Returns 0, or MPROC_EINVAL (count NULL, or out NULL with cap > 0).
 * Ownership: the handles are borrowed, still owned by whoever started the
 * children, and valid until mproc_process_destroy(); out is the caller's.
 * Non-blocking (a poll of each child's pidfd). Thread-safe; a handle listed
 * may be destroyed by another thread right after, so do not list while
 * another thread destroys handles. Fork: a child has no children of its
 * own at first (count 0).
 */
MPROC_API int mproc_active_children(mproc_process **out, size_t cap,
                                    size_t *count);

/*
 * mproc_fail: ends the calling process with a failure record for its parent.
 * A macro: the record carries the caller's __FILE__ and __LINE__, the error
 * code (any int; normally a negative MPROC_E* code), the printf-formatted
 * message (truncated to 1023 bytes) and a backtrace.
 *
 * In a child started by mproc_process_start(): sends the record on the
 * child's close-on-exec failure pipe, flushes stdout and stderr and ends
 * the child with _exit(1); the parent reads the record with
 * mproc_process_error() after join. Nothing is printed by the child.
 * Elsewhere (the main process, a program spawned by mproc, a child forked
 * by other means): prints "mproc: <name>: <file>:<line>: <message>
 * (<error name>)" to stderr and calls exit(1).
 * Never returns. Not async-signal-safe (do not call it from a signal
 * handler). Thread-safe: the first caller's record wins.
 */
#define mproc_fail(code, ...)                                                  \
    mproc_fail_at(__FILE__, __LINE__, (code), __VA_ARGS__)

/* The function behind mproc_fail(); call the macro instead. */
MPROC_API MPROC_NORETURN void mproc_fail_at(const char *file, int line,
                                            int code, const char *fmt, ...)
    MPROC_PRINTF(4, 5);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_PROCESS_H */
