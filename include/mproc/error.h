/*
 * mproc/error.h: error codes, their names and messages, and the timeout
 * convention shared by every mproc call.
 *
 * Every fallible mproc function returns int: 0 on success or a negative
 * MPROC_E* code. Codes that come from the system are -errno
 * (MPROC_ETIMEDOUT == -ETIMEDOUT); the library's own codes sit in a reserved
 * range below MPROC_ERR_BASE so they never collide with an errno value.
 * The caller never needs to read errno.
 */
#ifndef MPROC_ERROR_H
#define MPROC_ERROR_H

#include <errno.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MPROC_BUILDING)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

#if defined(__GNUC__)
#define MPROC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define MPROC_NORETURN __attribute__((noreturn))
#else
#define MPROC_PRINTF(fmt, args)
#define MPROC_NORETURN
#endif

/*
 * Timeouts. Every call that can block takes `int64_t timeout_ms`:
 * MPROC_FOREVER (-1) waits without bound, 0 tries once without blocking,
 * a positive value waits at most that many milliseconds and then returns
 * MPROC_ETIMEDOUT. Any other negative value is MPROC_EINVAL. The timeout is
 * converted once into a CLOCK_MONOTONIC deadline, so signals (EINTR) never
 * lengthen a wait.
 */
#define MPROC_FOREVER ((int64_t)-1)

/* The first of the library's own codes; all of them are <= this value. */
#define MPROC_ERR_BASE (-10000)

/*
 * The table of every code: X(NAME, value, message). System codes first
 * (value -errno), then the library's own.
 */
#define MPROC_ERRNO_MAP(X)                                                     \
    X(EPERM, -EPERM, "operation not permitted")                                \
    X(ENOENT, -ENOENT, "no such file, name or program")                        \
    X(ESRCH, -ESRCH, "no such process")                                        \
    X(EINTR, -EINTR, "interrupted by a signal")                                \
    X(EIO, -EIO, "input/output error")                                         \
    X(E2BIG, -E2BIG, "argument list too long")                                 \
    X(EBADF, -EBADF,                                                           \
      "bad file descriptor (not open, or not open for this use)")              \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable, try again")          \
    X(ENOMEM, -ENOMEM, "out of memory")                                        \
    X(EACCES, -EACCES, "permission denied")                                    \
    X(EFAULT, -EFAULT, "bad address")                                          \
    X(EBUSY, -EBUSY, "resource busy")                                          \
    X(EEXIST, -EEXIST, "already exists")                                       \
    X(ENOTDIR, -ENOTDIR, "not a directory")                                    \
    X(EISDIR, -EISDIR, "is a directory")                                       \
    X(EINVAL, -EINVAL, "invalid argument")                                     \
    X(ENFILE, -ENFILE, "too many open files in system")                        \
    X(EMFILE, -EMFILE, "too many open files")                                  \
    X(ENOSPC, -ENOSPC, "no space left (on the device, or in a full table)")    \
    X(EPIPE, -EPIPE, "broken pipe")                                            \
    X(ERANGE, -ERANGE, "value or index out of range")                          \
    X(EDEADLK, -EDEADLK, "resource deadlock would occur")                      \
    X(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                            \
    X(ENOSYS, -ENOSYS, "function not implemented")                             \
    X(EOVERFLOW, -EOVERFLOW, "value too large")                                \
    X(ENOTSOCK, -ENOTSOCK, "not a socket")                                     \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                       \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                       \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                     \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                      \
    X(ECANCELED, -ECANCELED, "operation canceled")                             \
    X(ECLOSED, MPROC_ERR_BASE - 1, "connection or object closed by its peer")  \
    X(EOWNERDEAD, MPROC_ERR_BASE - 2,                                          \
      "previous owner died; state may be inconsistent")                        \
    X(ENOTRECOVERABLE, MPROC_ERR_BASE - 3,                                     \
      "state not recoverable: owner died and nobody marked it consistent")     \
    X(EBROKEN, MPROC_ERR_BASE - 4,                                             \
      "object broken: a participant died, it was aborted, or a transfer was "  \
      "cut off halfway")                                                       \
    X(ECHILD, MPROC_ERR_BASE - 5, "child process failed")                      \
    X(EPROTO, MPROC_ERR_BASE - 6,                                              \
      "protocol error: malformed or cut-off data from the peer")               \
    X(EMSGSIZE, MPROC_ERR_BASE - 7,                                            \
      "message too large for the buffer or the size limit")                    \
    X(EBADOBJ, MPROC_ERR_BASE - 8, "not a valid object of the expected kind")  \
    X(EVERSION, MPROC_ERR_BASE - 9,                                            \
      "mproc object made by an incompatible version")                          \
    X(ENOTOWNER, MPROC_ERR_BASE - 10, "caller does not hold or own it")        \
    X(EOVERRELEASE, MPROC_ERR_BASE - 11, "released more times than acquired")  \
    X(EDENIED, MPROC_ERR_BASE - 12,                                            \
      "not allowed by the access rules (owner, mode or peer credentials)")     \
    X(ESTATE, MPROC_ERR_BASE - 13,                                             \
      "object in the wrong state for this call, or next message of another "   \
      "kind")                                                                  \
    X(EUNKNOWN, MPROC_ERR_BASE - 15, "unknown error")

/* MPROC_EPERM, MPROC_ETIMEDOUT, ..., MPROC_ECLOSED, ... */
enum mproc_error {
#define MPROC__ERR_ENUM(name, value, msg) MPROC_##name = (value),
    MPROC_ERRNO_MAP(MPROC__ERR_ENUM)
#undef MPROC__ERR_ENUM
        MPROC_OK = 0
};

/*
 * mproc_strerror: a human message for an error code.
 * Accepts every int: 0 gives "success", a negative errno without its own
 * entry gives the system's description, anything else "unknown error".
 * Returns a static string (never NULL, never freed). Never allocates,
 * thread-safe and async-signal-safe.
 */
MPROC_API const char *mproc_strerror(int code);

/*
 * mproc_errname: the symbolic name of an error code, such as "MPROC_ETIMEDOUT".
 * 0 gives "MPROC_OK", a negative errno without an entry "E<NAME>" from the
 * system, anything else "MPROC_EUNKNOWN". Static string, thread-safe.
 */
MPROC_API const char *mproc_errname(int code);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_ERROR_H */
