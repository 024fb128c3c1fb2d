/*
 * mproc/log.h: process-safe logging, formatted like Python's logging.
 *
 * A logger (mproc_log) has a level threshold, a format with Python logging's
 * %(field)s placeholders and up to MPROC_LOG_SINKS_MAX sinks: a file opened
 * O_APPEND, stderr, or any fd. Each record is formatted into one buffer and
 * handed to each sink with one write(2), so records written by many
 * processes (and threads) to one file never interleave: the kernel appends
 * each O_APPEND write whole. On a pipe or FIFO a write of up to PIPE_BUF
 * (4096) bytes is atomic; longer records may interleave with other writers'
 * records on a pipe (never on a regular file on a local file system; NFS
 * does not promise O_APPEND atomicity).
 *
 * Records end with '\n' (added by the logger); newlines inside a message are
 * kept as they are. A record longer than
 * MPROC_LOG_RECORD_MAX bytes is cut and ends with MPROC_LOG_TRUNCATED_MARK,
 * still in one write, never split into two records.
 *
 * Fields of a format (Python logging's names):
 *   %(name)s          the logger's name          %(levelname)s  "INFO", ...
 *   %(levelno)d       the numeric level          %(message)s    the message
 *   %(asctime)s       local time "2026-11-26 22:46:29,123" (or datefmt)
 *   %(created)f       seconds since the Epoch    %(msecs)d      0..999
 *   %(relativeCreated)d  ms since the logger was created
 *   %(process)d       pid                        %(processName)s "MainProcess",
 *                                                  "Process-1", ...
 *   %(thread)d        kernel thread id           %(pathname)s   __FILE__
 *   %(filename)s      basename of __FILE__       %(lineno)d     __LINE__
 *   %(funcName)s      __func__                   %%             a '%'
 *   %(module)s        filename without its extension
 * The location fields are filled by the mproc_log_debug()...critical() macros
 * (mproc_log_write() leaves them "(unknown file)", "(unknown module)", 0,
 * "(unknown function)").
 * Each field takes printf flags, width and precision as in Python
 * ("%(levelname)-8s", "%(msecs)03d", "%(created).3f"; width and precision
 * of at most 4 digits, no '*'). String fields
 * (name, levelname, message, asctime, processName, pathname, filename,
 * module, funcName) take the conversion s; integer fields (levelno, process,
 * thread, lineno) d, i, o, x, X or s; number fields (created, msecs,
 * relativeCreated) f, F, e, E, g, G, d or i. Anything else is rejected when the
 * format is set, never at write time. A non-standard level prints as "Level N".
 *
 * Threads: every call on a logger may run from many threads at once, except
 * mproc_log_destroy(), which must be the last. Writes take no lock; adding
 * a sink or setting a format takes a mutex that writes never take.
 *
 * Fork: a child inherits the logger (the memory and the sinks' fds) and keeps
 * logging to the same sinks; file sinks share one open file description with
 * O_APPEND, so records from parent and children land whole in one file. The
 * %(process)d and %(processName)s fields are read at each write, so they are
 * the child's own. Unrelated processes do not share loggers; they can open the
 * same file and get the same guarantee. A child forked while another thread
 * was inside mproc_log_add_*() or mproc_log_set_format() must not call those
 * two in the child (the mutex may be held); writing is always fine.
 */
#ifndef MPROC_LOG_H
#define MPROC_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "mproc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Levels, the same numbers as Python's logging. A record's level is any int
 * in 1..99 (others print as "Level N"); a threshold is 0..MPROC_LOG_OFF. */
#define MPROC_LOG_NOTSET 0 /* as a threshold: every record passes */
#define MPROC_LOG_DEBUG 10
#define MPROC_LOG_INFO 20
#define MPROC_LOG_WARNING 30
#define MPROC_LOG_ERROR 40
#define MPROC_LOG_CRITICAL 50
#define MPROC_LOG_OFF 100 /* as a threshold: no record passes */

/* The longest record in bytes, newline included. Longer ones are cut to this
 * size, ending with MPROC_LOG_TRUNCATED_MARK. */
#define MPROC_LOG_RECORD_MAX 65536
#define MPROC_LOG_TRUNCATED_MARK "...[truncated]\n"

/* The most sinks one logger has; the longest format string (bytes). */
#define MPROC_LOG_SINKS_MAX 8
#define MPROC_LOG_FORMAT_MAX 1024

/* The default format, Python multiprocessing's DEFAULT_LOGGING_FORMAT. */
#define MPROC_LOG_DEFAULT_FORMAT "[%(levelname)s/%(processName)s] %(message)s"

/* A logger (opaque). */
typedef struct mproc_log mproc_log;

/* Options of mproc_log_create(). */
typedef struct mproc_log_opts {
    int level;           /* threshold: records below it are dropped
                            (default MPROC_LOG_WARNING, as Python) */
    const char *format;  /* NULL: MPROC_LOG_DEFAULT_FORMAT */
    const char *name;    /* %(name)s, up to 63 bytes kept; NULL: "mproc" */
    const char *datefmt; /* strftime format of %(asctime)s (no msecs, as
                            Python); NULL: "%Y-%m-%d %H:%M:%S,mmm" */
} mproc_log_opts;

#define MPROC_LOG_OPTS_INIT                                                    \
    {                                                                          \
        MPROC_LOG_WARNING, NULL, NULL, NULL                                    \
    }

/* Options of the mproc_log_add_*() calls (one sink each). */
typedef struct mproc_log_sink_opts {
    int level;     /* this sink's own threshold, applied after the logger's
                      (default MPROC_LOG_NOTSET: whatever the logger passes) */
    unsigned mode; /* mproc_log_add_file(): mode of a new file (default 0600;
                      0 also means 0600, so a zeroed struct is the default) */
    bool truncate; /* mproc_log_add_file(): empty an existing file first
                      (default false: append) */
    bool close_fd; /* mproc_log_add_fd(): the logger takes the fd and closes
                      it in mproc_log_destroy() (default false: borrowed) */
} mproc_log_sink_opts;

#define MPROC_LOG_SINK_OPTS_INIT                                               \
    {                                                                          \
        MPROC_LOG_NOTSET, 0600, false, false                                   \
    }

/*
 * mproc_log_create: makes a logger with no sinks (add them with
 * mproc_log_add_file/fd/stderr; until then records go nowhere).
 * out: (out) the logger, written only on success. opts: NULL for defaults
 * (MPROC_LOG_OPTS_INIT).
 * Errors: MPROC_EINVAL when out is NULL, the level is outside
 * 0..MPROC_LOG_OFF, the format has an unknown field, a bad conversion, an
 * unfinished "%(" or a lone '%', or is longer than MPROC_LOG_FORMAT_MAX;
 * MPROC_ENOMEM.
 * Ownership: the caller frees the logger with mproc_log_destroy(); the
 * strings in opts are copied.
 * Does not block. Thread-safe (makes a new object).
 */
MPROC_API int mproc_log_create(mproc_log **out, const mproc_log_opts *opts);

/*
 * mproc_log_destroy: closes the sinks the logger owns (files it opened, fds
 * given with close_fd) and frees it. Borrowed fds and stderr stay open.
 * NULL and the default logger (mproc_log_default()) are ignored.
 * Must not run while another thread uses the logger. Never blocks.
 * Fork: destroying a child's copy closes only the child's fds.
 */
MPROC_API void mproc_log_destroy(mproc_log *lg);

/*
 * mproc_log_add_file: adds a sink that appends to the file at path, opened
 * O_WRONLY|O_CREAT|O_APPEND|O_CLOEXEC (plus O_TRUNC when opts->truncate) with
 * mode opts->mode (default 0600, before the umask) for a new file.
 * opts: NULL for MPROC_LOG_SINK_OPTS_INIT.
 * Errors: MPROC_EINVAL (NULL logger or path, bad sink level, mode above
 * 07777); MPROC_ENOSPC when the logger already has MPROC_LOG_SINKS_MAX sinks;
 * any -errno of open(2) (MPROC_ENOENT, MPROC_EACCES, MPROC_EISDIR, ...).
 * Ownership: the logger owns the fd and closes it in mproc_log_destroy().
 * Does not block beyond open(2) (which, for the path of a FIFO, waits for a
 * reader; open FIFOs yourself and use mproc_log_add_fd()).
 * Thread-safe: may run while other threads
 * write; their records reach the new sink from some record on.
 */
MPROC_API int mproc_log_add_file(mproc_log *lg, const char *path,
                                 const mproc_log_sink_opts *opts);

/*
 * mproc_log_add_fd: adds a sink that writes records to an open fd (a file,
 * pipe, FIFO, socket or terminal). Writing to a pipe or socket whose reader
 * is gone returns MPROC_EPIPE from mproc_log_write(), never raises SIGPIPE.
 * The kind of file is checked when the sink is added: an fd that was a
 * regular file then and is later replaced (dup2) by a pipe is written
 * without SIGPIPE protection; add the sink again after such a swap.
 * A non-blocking fd that is full gives MPROC_EAGAIN and the record (or its
 * tail) is dropped for that sink. For records from many processes to land
 * whole in a regular file, open it with O_APPEND (mproc_log_add_file() does).
 * opts: NULL for MPROC_LOG_SINK_OPTS_INIT (mode and truncate are ignored).
 * Errors: MPROC_EINVAL (NULL logger, fd < 0, bad sink level); MPROC_EBADF
 * when fd is not open; MPROC_ENOSPC when the logger is full.
 * Ownership: borrowed: the caller keeps the fd open while the logger lives
 * and closes it after mproc_log_destroy(); with opts->close_fd the logger
 * takes it on success and closes it in mproc_log_destroy().
 * Does not block. Thread-safe as mproc_log_add_file().
 */
MPROC_API int mproc_log_add_fd(mproc_log *lg, int fd,
                               const mproc_log_sink_opts *opts);

/*
 * mproc_log_add_stderr: mproc_log_add_fd() on STDERR_FILENO, borrowed (never
 * closed by the logger; close_fd is ignored). Same errors.
 */
MPROC_API int mproc_log_add_stderr(mproc_log *lg,
                                   const mproc_log_sink_opts *opts);

/*
 * mproc_log_set_level: sets the logger's threshold (0..MPROC_LOG_OFF).
 * Errors: MPROC_EINVAL (NULL logger, level out of range; nothing changes).
 * Thread-safe (an atomic store); never blocks. Fork: affects only the
 * calling process's copy.
 */
MPROC_API int mproc_log_set_level(mproc_log *lg, int level);

/* mproc_log_level: the logger's threshold, or MPROC_EINVAL for NULL. */
MPROC_API int mproc_log_level(const mproc_log *lg);

/*
 * mproc_log_is_enabled: true when a record of this level would pass the
 * logger's threshold (Python's isEnabledFor); false for a NULL logger or a
 * level outside 1..99. Thread-safe, never blocks, no system call.
 */
MPROC_API bool mproc_log_is_enabled(const mproc_log *lg, int level);

/*
 * mproc_log_set_format: replaces the format (see the fields above) and its
 * date format (datefmt NULL: the default asctime). The new format is checked
 * whole first; on error nothing changes.
 * Errors: MPROC_EINVAL (NULL logger or format, unknown field, bad conversion,
 * too long); MPROC_ENOMEM.
 * Ownership: the strings are copied. The replaced format's memory is kept
 * until mproc_log_destroy(), so threads writing meanwhile stay safe: each
 * record uses the old format or the new one whole.
 * Thread-safe; never blocks.
 */
MPROC_API int mproc_log_set_format(mproc_log *lg, const char *format,
                                   const char *datefmt);

/*
 * mproc_log_write: formats one record (printf-style fmt and arguments for
 * %(message)s) and writes it to every sink whose threshold it passes, one
 * write(2) per sink. A record below the logger's threshold costs no system
 * call and returns 0.
 * Errors: MPROC_EINVAL (NULL logger or fmt, level outside 1..99); a write
 * failure of a sink as -errno (MPROC_EPIPE, MPROC_ENOSPC, MPROC_EAGAIN,
 * MPROC_EBADF, MPROC_EIO, ...): the first failing sink's code, after all
 * sinks were tried. A record longer than MPROC_LOG_RECORD_MAX is truncated
 * (not an error).
 * The caller's errno is kept across the call.
 * Memory: a message up to 1 KiB and a record up to 2 KiB are built on the
 * stack, longer ones in heap buffers freed before returning; when that
 * allocation fails the record is cut at what the stack holds, with the mark.
 * Blocking: as write(2) on the sinks (a full pipe blocks the writer, as in
 * Python); EINTR is retried, and a short write (a pipe record above
 * PIPE_BUF, a nearly full disk) goes on with the rest of the record.
 * Thread-safe: many threads may write at once (records never interleave on
 * a file). Not async-signal-safe (it calls vsnprintf and localtime_r).
 * Fork: usable in a child (see the top of this file). A child forked while
 * another thread is inside localtime_r may deadlock in its first write with
 * %(asctime)s, as with any libc call after fork in a threaded program.
 */
MPROC_API int mproc_log_write(mproc_log *lg, int level, const char *fmt, ...)
    MPROC_PRINTF(3, 4);

/* mproc_log_write() with a source location (%(pathname)s, %(filename)s,
 * %(lineno)d, %(funcName)s); file and func may be NULL. */
MPROC_API int mproc_log_write_at(mproc_log *lg, int level, const char *file,
                                 int line, const char *func, const char *fmt,
                                 ...) MPROC_PRINTF(6, 7);

/* mproc_log_write_at() with a va_list (the caller va_ends it). */
MPROC_API int mproc_log_vwrite_at(mproc_log *lg, int level, const char *file,
                                  int line, const char *func, const char *fmt,
                                  va_list ap) MPROC_PRINTF(6, 0);

/* One macro per level, capturing the caller's location. They return what
 * mproc_log_write_at() returns. */
#define mproc_log_debug(lg, ...)                                               \
    mproc_log_write_at((lg), MPROC_LOG_DEBUG, __FILE__, __LINE__, __func__,    \
                       __VA_ARGS__)
#define mproc_log_info(lg, ...)                                                \
    mproc_log_write_at((lg), MPROC_LOG_INFO, __FILE__, __LINE__, __func__,     \
                       __VA_ARGS__)
#define mproc_log_warning(lg, ...)                                             \
    mproc_log_write_at((lg), MPROC_LOG_WARNING, __FILE__, __LINE__, __func__,  \
                       __VA_ARGS__)
#define mproc_log_error(lg, ...)                                               \
    mproc_log_write_at((lg), MPROC_LOG_ERROR, __FILE__, __LINE__, __func__,    \
                       __VA_ARGS__)
#define mproc_log_critical(lg, ...)                                            \
    mproc_log_write_at((lg), MPROC_LOG_CRITICAL, __FILE__, __LINE__, __func__, \
                       __VA_ARGS__)

/*
 * mproc_log_default: the process-wide default logger (Python's
 * multiprocessing.get_logger()): name "mproc", MPROC_LOG_DEFAULT_FORMAT,
 * threshold MPROC_LOG_WARNING and no sinks until mproc_log_to_stderr() or
 * mproc_log_add_*() gives it some. Never NULL; lives as long as the process
 * (mproc_log_destroy() ignores it; its sinks are closed at exit by the
 * kernel). Thread-safe. Fork: the child has its own copy with the same sinks.
 */
MPROC_API mproc_log *mproc_log_default(void);

/*
 * mproc_log_to_stderr: the one-line start (Python's
 * multiprocessing.log_to_stderr()): gives the default logger a stderr sink
 * (once; later calls add no second one) and sets its threshold to level.
 * Errors: MPROC_EINVAL (level outside 0..MPROC_LOG_OFF); MPROC_EBADF when
 * stderr is not open for writing; MPROC_ENOSPC when the default logger is
 * full of other sinks. On error nothing changes.
 * Thread-safe; never blocks.
 */
MPROC_API int mproc_log_to_stderr(int level);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_LOG_H */
