/*
 * mproc/manager.h: a server process that holds named shared objects
 * (dicts, lists, queues, joinable queues, values, locks, events,
 * semaphores, barriers) for forked children and unrelated processes, as
 * Python's multiprocessing.Manager(), and the client that uses them.
 *
 * The server speaks RESP2, the Redis protocol, over a Unix socket (and
 * optionally TCP): objects that Redis has use Redis's commands and
 * meanings (a dict is a hash, a list a list, a value a string, a queue a
 * list), so `redis-cli -s SOCKET` inspects a running manager, and the
 * client below drives a real redis-server with the same calls for those
 * objects. docs/manager-protocol.md specifies every command, its replies
 * and errors. The manager is part of the library when it was built with
 * hiredis (CMake finds it: MPROC_HAVE_MANAGER in the build).
 *
 * Addresses (server and client): "unix:PATH" or a plain path for a Unix
 * socket file; "unix:@NAME" or "@NAME" for a Linux abstract socket name;
 * "tcp:HOST:PORT" (client only; the server listens on TCP besides its Unix
 * socket, mproc_manager_opts.tcp).
 *
 * Which call works where. With a manager: every call. With a real
 * redis-server: mproc_mclient_*, mproc_mbatch_*, every mproc_mdict_*,
 * mproc_mlist_* and mproc_mvalue_* call, and mproc_mqueue_open (with
 * maxsize 0), _put, _get, _qsize and _close. The others (a bounded queue,
 * task_done and join, locks, events, semaphores, barriers) return
 * MPROC_ENOSYS on a Redis connection without sending anything.
 *
 * Values are bytes: every data argument is a pointer and a length, and a
 * length of MPROC_MSTR means "a NUL-terminated string". Numbers travel as
 * their decimal text, as in Redis (the _i64 and _double calls convert).
 * A result that is bytes is returned in memory the library allocates with
 * malloc: *out holds *len bytes and one more NUL byte; free it with free().
 *
 * Errors common to the client calls: MPROC_EINVAL (a NULL handle or
 * out-parameter, a bad timeout, a name or key that is empty), MPROC_ENOENT
 * (no such object or entry, where the call says so), MPROC_EBADOBJ (the
 * name holds another kind of object: Redis's WRONGTYPE), MPROC_ERANGE (a
 * value is not a number of the kind asked for, or an index out of range),
 * MPROC_ENOSYS (the server does not have this command: a real Redis),
 * MPROC_ETIMEDOUT (the reply did not come in time; see "Timeouts"),
 * MPROC_ECLOSED (the server closed the connection or is gone),
 * MPROC_EDENIED (the server refused this process or its password),
 * MPROC_EPROTO (the server sent something that is not RESP, or an error
 * reply the client has no code for: mproc_mclient_error() has its text),
 * MPROC_ENOMEM. The text of the last error reply is kept:
 * mproc_mclient_error().
 *
 * Timeouts. Every client call that talks to the server takes timeout_ms.
 * A command that waits in the server (a queue get or bounded put, a lock
 * or semaphore acquire, a join, an event or barrier wait) waits there up
 * to timeout_ms (MPROC_FOREVER: without bound; 0: it tries once) and then
 * answers with its timeout: MPROC_ETIMEDOUT. The exchange itself (sending,
 * the reply, connecting again in a forked child) may take up to 1 s more
 * than timeout_ms, so that the server's own timeout reply gets through;
 * when no reply comes by then (a server that hangs, a network that
 * stalls), the connection is dropped, since a late reply would be taken
 * for the next call's: the call returns MPROC_ETIMEDOUT, the next call
 * connects again, and the command may or may not have been done. So 0
 * means "do not wait in the server"; any other command on a live server
 * is answered within that second.
 *
 * Threads and processes. An mproc_mclient may be used by several threads:
 * their calls are serialized on one connection (a blocking call holds it
 * for its duration: give a thread that blocks its own mproc_mclient). A
 * forked child may go on using every handle it inherited: the first call
 * in the child notices the new pid and opens the child's own connection
 * to the same address (the parent's stays the parent's), so children need
 * no help from the user. An unrelated process opens the address itself.
 * Locks are owned by a connection, so by the process that acquired them;
 * threads of one process share ownership.
 *
 * Speed. With a manager on a Unix socket the client asks, at open, for a
 * pair of shared-memory rings (an mproc_pipe, whose end the server sends
 * over the socket) and carries the same RESP bytes through them; while the
 * two sides are busy a request and its reply make no system call. The
 * server polls busy rings for a moment before it sleeps. redis-cli and
 * Redis keep to the socket.
 */
#ifndef MPROC_MANAGER_H
#define MPROC_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/error.h"
#include "mproc/named.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A data length meaning "the data is a NUL-terminated string". */
#define MPROC_MSTR ((size_t)-1)

/* ======================================================================
 * The server
 * ==================================================================== */

/* A manager started by this process. Opaque. */
typedef struct mproc_manager mproc_manager;

/*
 * Options of mproc_manager_start() and mproc_manager_serve().
 *   access         who may connect over the Unix socket, by the peer's
 *                  credentials (SO_PEERCRED): the server's own effective
 *                  uid always, and the uids and gids listed (see
 *                  mproc_listener_opts). The arrays are copied.
 *   mode           the socket file's mode (0: 0600).
 *   tcp            "HOST:PORT" to listen on TCP as well (port 0: the
 *                  system picks one; mproc_manager_tcp_address() tells
 *                  it), NULL for none. HOST must be a loopback address
 *                  unless tcp_any_host is set. TCP carries no credentials,
 *                  so it needs password_file.
 *   tcp_any_host   allow a HOST that is not loopback.
 *   password_file  a file holding the password (its first line) that a
 *                  TCP client must give with AUTH before anything else; it
 *                  must belong to the server's user and be neither
 *                  readable nor writable by group or others. Compared in
 *                  constant time. Unix-socket clients need no password.
 *   max_clients    connections at once (0: 1024); one more is told
 *                  "-ERR max number of clients reached" and closed.
 *   max_request    the largest request in bytes, and so the largest bulk
 *                  string (0: 64 MiB); a longer one is told
 *                  "-ERR Protocol error: ..." and its connection closed.
 *   max_pending    requests a client may have waiting behind one that is
 *                  parked or behind replies it does not read (0: 1024);
 *                  one more closes the connection with an error.
 *   request_timeout_ms  how long a request may stay half sent (0: 30000;
 *                  MPROC_FOREVER: no bound; at most 2^40); then the
 *                  connection is told "-ERR request timed out" and closed.
 *   spin_us        how long the server polls busy ring clients before it
 *                  sleeps (0: 50, or as long as a wake-up costs on this
 *                  machine, measured from its clients' doorbells, when that
 *                  is longer, up to 100, and none with one CPU; negative:
 *                  never polls; at most 1000000).
 *   handle_signals mproc_manager_serve() only: block SIGINT and SIGTERM in
 *                  the calling thread and end cleanly when one arrives.
 */
typedef struct mproc_manager_opts {
    mproc_access access;
    unsigned mode;
    const char *tcp;
    bool tcp_any_host;
    const char *password_file;
    size_t max_clients;
    size_t max_request;
    size_t max_pending;
    int64_t request_timeout_ms;
    int64_t spin_us;
    bool handle_signals;
} mproc_manager_opts;

#define MPROC_MANAGER_OPTS_INIT                                                \
    {                                                                          \
        MPROC_ACCESS_INIT, 0600u, NULL, false, NULL, 0, 0, 0, 0, 0, false      \
    }

/*
 * mproc_manager_start: forks a server process that listens at address
 * (see the header comment; NULL: a new abstract name "@mproc-mgr-...") and
 * returns once it accepts connections.
 * out      (out) the handle, written only on success.
 * The server ends when mproc_manager_terminate() asks it to, when a
 * client sends MPROC.SHUTDOWN, or when the process that started it ends
 * (it watches that process, and removes its socket file when it goes). It
 * starts with inherit_only: it holds none of the caller's fds.
 * Returns 0, or MPROC_EINVAL (out NULL, a bad address or option (one
 * above its bound), tcp
 * without password_file, a HOST that is not loopback without
 * tcp_any_host), MPROC_EEXIST (the path exists and is not a socket, or is
 * a socket some process listens on), MPROC_EADDRINUSE (the abstract name
 * or TCP port is taken), MPROC_EDENIED (password_file is readable or
 * writable by others, or not the caller's), MPROC_ENOENT, MPROC_EACCES,
 * MPROC_ENAMETOOLONG, MPROC_ENOMEM, MPROC_EAGAIN (fork), -errno, or
 * MPROC_ETIMEDOUT (the server did not report ready within 10 s). A stale
 * socket file (nothing listens on it) owned by the caller is replaced.
 * Blocking: until the server is ready. Fork: a child that inherits the
 * handle may read it; only the process that started the server can
 * join, terminate or destroy it (elsewhere MPROC_ENOTOWNER, destroy only
 * frees).
 */
MPROC_API int mproc_manager_start(mproc_manager **out, const char *address,
                                  const mproc_manager_opts *opts);

/*
 * mproc_manager_address: the address clients open ("unix:PATH" or
 * "unix:@NAME"), owned by the handle, valid until destroy. NULL for NULL.
 */
MPROC_API const char *mproc_manager_address(const mproc_manager *m);

/*
 * mproc_manager_tcp_address: "tcp:HOST:PORT" when the server listens on
 * TCP (the port the system chose when asked for 0), NULL otherwise.
 * Owned by the handle.
 */
MPROC_API const char *mproc_manager_tcp_address(const mproc_manager *m);

/* mproc_manager_pid: the server's pid (0 for NULL). */
MPROC_API pid_t mproc_manager_pid(const mproc_manager *m);

/*
 * mproc_manager_terminate: asks the server to end (it closes every
 * connection, removes its socket file and exits 0); does not wait.
 * Returns 0, MPROC_EINVAL (NULL), MPROC_ENOTOWNER (not the process that
 * started it). Never blocks.
 */
MPROC_API int mproc_manager_terminate(mproc_manager *m);

/*
 * mproc_manager_join: waits up to timeout_ms for the server to end and
 * reaps it. Returns 0 when it ended cleanly, MPROC_ETIMEDOUT,
 * MPROC_ECHILD (it ended by a signal or a non-zero status),
 * MPROC_ENOTOWNER, MPROC_EINVAL.
 */
MPROC_API int mproc_manager_join(mproc_manager *m, int64_t timeout_ms);

/*
 * mproc_manager_destroy: in the process that started the server: asks it
 * to end, waits up to 2 s, kills it if it is still there, and frees the
 * handle; elsewhere only frees the copy. Accepts NULL.
 */
MPROC_API void mproc_manager_destroy(mproc_manager *m);

/*
 * mproc_manager_serve: runs a server in the calling process (what
 * `mproc manager serve SOCKET` does) until a client sends MPROC.SHUTDOWN
 * or, with opts->handle_signals, SIGINT or SIGTERM comes; then closes
 * every connection and removes the socket file. When ready_fd >= 0, one
 * byte is written to it (and it is closed) once the server accepts
 * connections. Returns 0 when it ended as asked, or the errors of
 * mproc_manager_start before it was ready. Blocks.
 */
MPROC_API int mproc_manager_serve(const char *address,
                                  const mproc_manager_opts *opts, int ready_fd);

/* ======================================================================
 * The client
 * ==================================================================== */

/* A connection to a manager or a Redis server (one per process that uses
 * it, made as needed). Opaque. */
typedef struct mproc_mclient mproc_mclient;

/*
 * Options of mproc_mclient_open().
 *   password       sent with AUTH right after connecting (TCP to a
 *                  manager, or a Redis that asks for one); NULL for none.
 *   password_file  read the password from this file's first line instead.
 *   no_rings       stay on the socket even with a manager (for tests and
 *                  measurements).
 */
typedef struct mproc_mclient_opts {
    const char *password;
    const char *password_file;
    bool no_rings;
} mproc_mclient_opts;

#define MPROC_MCLIENT_OPTS_INIT                                                \
    {                                                                          \
        NULL, NULL, false                                                      \
    }

/* What is at the other end of a client (mproc_mclient_server). */
#define MPROC_MSERVER_MANAGER 1
#define MPROC_MSERVER_REDIS 2

/*
 * mproc_mclient_open: connects to the server at address (see the header
 * comment), retrying until timeout_ms while nothing listens there yet, and
 * learns whether it is a manager or a Redis (one PING-like exchange).
 * out  (out) the handle, written only on success; close it with
 *      mproc_mclient_close().
 * Returns 0, MPROC_EINVAL (bad address), MPROC_ETIMEDOUT (nobody listened
 * in time), MPROC_EDENIED (the server refused this process: not allowed
 * by its access list, or a wrong password), MPROC_EAGAIN (the manager
 * has max_clients connections), MPROC_ECLOSED (the server closed the
 * connection without a word: a manager does so to a peer its access list
 * does not allow),
 * MPROC_ECONNREFUSED (TCP), MPROC_EACCES, MPROC_ENOMEM, -errno.
 * opts and its strings are copied. Thread-safe. Fork: see the header.
 */
MPROC_API int mproc_mclient_open(mproc_mclient **out, const char *address,
                                 const mproc_mclient_opts *opts,
                                 int64_t timeout_ms);

/* mproc_mclient_close: closes this process's connection and frees the
 * handle (object handles made from it must be closed first). Accepts
 * NULL. Never blocks. In a forked child it closes the child's own
 * connection only. */
MPROC_API void mproc_mclient_close(mproc_mclient *c);

/* mproc_mclient_server: MPROC_MSERVER_MANAGER or MPROC_MSERVER_REDIS
 * (MPROC_EINVAL for NULL). */
MPROC_API int mproc_mclient_server(const mproc_mclient *c);

/* mproc_mclient_transport: how this process talks to the server now:
 * "rings", "unix" or "tcp" (a static string; "none" before the first call
 * in a forked child, NULL for NULL). */
MPROC_API const char *mproc_mclient_transport(const mproc_mclient *c);

/*
 * mproc_mclient_error: the text of the last error reply this client got
 * ("WRONGTYPE Operation against a key holding the wrong kind of value"),
 * or "" when there was none. A copy: at most 255 bytes and a NUL written
 * into buf (cap bytes), truncated to fit; returns buf.
 */
MPROC_API const char *mproc_mclient_error(mproc_mclient *c, char *buf,
                                          size_t cap);

/*
 * A reply as RESP2 gives it. type is one of MPROC_MREPLY_*; STRING,
 * STATUS and ERROR use str and len (str is NUL-terminated too); INTEGER
 * uses integer; ARRAY uses elements and element. Free a reply the library
 * returned with mproc_mreply_free().
 */
typedef struct mproc_mreply {
    int type;
    long long integer;
    size_t len;
    char *str;
    size_t elements;
    struct mproc_mreply **element;
} mproc_mreply;

#define MPROC_MREPLY_STRING 1
#define MPROC_MREPLY_ARRAY 2
#define MPROC_MREPLY_INTEGER 3
#define MPROC_MREPLY_NIL 4
#define MPROC_MREPLY_STATUS 5
#define MPROC_MREPLY_ERROR 6

/* mproc_mreply_free: frees a reply and everything in it. Accepts NULL. */
MPROC_API void mproc_mreply_free(mproc_mreply *r);

/*
 * mproc_mclient_call: sends one command (argc arguments, each argv[i] of
 * argl[i] bytes; argl NULL: every argument is a NUL-terminated string) and
 * returns its reply in *out (out), error replies included (type
 * MPROC_MREPLY_ERROR: the call itself returns 0). Works with any server
 * and command. Returns 0, or the common errors (MPROC_ETIMEDOUT,
 * MPROC_ECLOSED, MPROC_EPROTO, ...). *out written only on success.
 */
MPROC_API int mproc_mclient_call(mproc_mclient *c, mproc_mreply **out, int argc,
                                 const char *const *argv, const size_t *argl,
                                 int64_t timeout_ms);

/*
 * mproc_mreply_code: the MPROC_E* code for an error reply (0 for any
 * other reply): "WRONGTYPE" MPROC_EBADOBJ, "NOAUTH" and "WRONGPASS"
 * MPROC_EDENIED, "ERR unknown command" MPROC_ENOSYS, "ERR value is not
 * ..." and "ERR index out of range" MPROC_ERANGE, "ERR no such key"
 * MPROC_ENOENT, other "ERR" MPROC_EINVAL, the manager's own
 * "E<NAME> ..." (ENOTOWNER, EOWNERDEAD, EBROKEN, EOVERRELEASE,
 * EDEADLK, ...) that code, anything else MPROC_EPROTO.
 */
MPROC_API int mproc_mreply_code(const mproc_mreply *r);

/* mproc_mclient_ping: one round trip (PING). Returns 0 or the common
 * errors. */
MPROC_API int mproc_mclient_ping(mproc_mclient *c, int64_t timeout_ms);

/*
 * mproc_mclient_del: removes the object called name, of whatever kind
 * (DEL). Returns 0, MPROC_ENOENT (there was none), the common errors. A
 * client parked on the object (a queue get, a lock acquire) goes on
 * waiting for a new object of that name; one waiting on a barrier gets
 * MPROC_EBROKEN, one in a queue join returns 0.
 */
MPROC_API int mproc_mclient_del(mproc_mclient *c, const char *name,
                                int64_t timeout_ms);

/* ----- Pipelined batches ----- */

/* Commands sent together and answered together: one round trip. */
typedef struct mproc_mbatch mproc_mbatch;

/* mproc_mbatch_create: an empty batch for client c (out: free with
 * mproc_mbatch_destroy). MPROC_EINVAL, MPROC_ENOMEM. */
MPROC_API int mproc_mbatch_create(mproc_mbatch **out, mproc_mclient *c);

/* mproc_mbatch_add: appends a command (as mproc_mclient_call; argv is
 * copied). MPROC_EINVAL (argc < 1), MPROC_ENOMEM. Nothing is sent. */
MPROC_API int mproc_mbatch_add(mproc_mbatch *b, int argc,
                               const char *const *argv, const size_t *argl);

/*
 * mproc_mbatch_run: sends every command added since the last clear, in
 * order, and waits up to timeout_ms for all their replies (read them with
 * mproc_mbatch_reply). Returns 0 when every reply came (some may be
 * errors: mproc_mbatch_code), or the common errors (then no reply is
 * kept, and the commands may or may not have been done). Blocking
 * commands in a batch park the rest of it behind them, in the server.
 */
MPROC_API int mproc_mbatch_run(mproc_mbatch *b, int64_t timeout_ms);

/* mproc_mbatch_count: commands in the batch. */
MPROC_API size_t mproc_mbatch_count(const mproc_mbatch *b);

/* mproc_mbatch_reply: the reply to command i after a successful run,
 * owned by the batch until its next clear, run or destroy; NULL when i is
 * out of range or there is none. */
MPROC_API const mproc_mreply *mproc_mbatch_reply(const mproc_mbatch *b,
                                                 size_t i);

/* mproc_mbatch_code: mproc_mreply_code() of reply i (MPROC_EINVAL when
 * there is none). */
MPROC_API int mproc_mbatch_code(const mproc_mbatch *b, size_t i);

/* mproc_mbatch_clear: forgets the commands and replies, keeps the memory
 * for reuse. */
MPROC_API void mproc_mbatch_clear(mproc_mbatch *b);

/* mproc_mbatch_destroy: frees the batch. Accepts NULL. */
MPROC_API void mproc_mbatch_destroy(mproc_mbatch *b);

/* ======================================================================
 * Objects by name
 *
 * Every kind has an open that takes the client and the object's name
 * (copied; 1 to 1024 bytes, any but NUL) and a close that frees the handle
 * (it never talks to the server and accepts NULL; the object stays in the
 * server until DEL). Opening a dict, list, value or event sends nothing:
 * the server makes the object at its first write, as Redis does. Opening
 * a queue, lock, semaphore or barrier makes it in the server with the
 * options given, or, when it exists, takes it as its creator made it.
 * A handle belongs to its client: close handles before the client. Handles
 * are used by several threads and forked children as their client is.
 *
 * Every call below on a handle: returns 0 or a negative code, the common
 * errors at the top of this header (MPROC_EINVAL for a NULL handle or a
 * NULL out-parameter among them) plus those its comment names; writes its
 * out-parameters only on success; makes one exchange with the server,
 * bounded as "Timeouts" says (the calls that wait in the server say so);
 * is thread-safe and fork-safe as its client is. Results that are bytes
 * are malloc'ed (free()), replies are freed with mproc_mreply_free().
 * ==================================================================== */

/* ----- dict: a hash (HSET, HGET, ...) ----- */

typedef struct mproc_mdict mproc_mdict;

/* mproc_mdict_open: a handle on the dict called name (never blocks).
 * Returns 0, MPROC_EINVAL, MPROC_ENOMEM. */
MPROC_API int mproc_mdict_open(mproc_mdict **out, mproc_mclient *c,
                               const char *name);
MPROC_API void mproc_mdict_close(mproc_mdict *d);

/* mproc_mdict_set: d[key] = val (HSET). Returns 0 or the common errors. */
MPROC_API int mproc_mdict_set(mproc_mdict *d, const void *key, size_t klen,
                              const void *val, size_t vlen, int64_t timeout_ms);

/* mproc_mdict_setnx: d[key] = val only when key is absent (HSETNX).
 * Returns 0 when set, MPROC_EEXIST when key was there (unchanged). */
MPROC_API int mproc_mdict_setnx(mproc_mdict *d, const void *key, size_t klen,
                                const void *val, size_t vlen,
                                int64_t timeout_ms);

/* mproc_mdict_get: d[key] (HGET) into *out (malloc'ed, *len bytes plus a
 * NUL; free()). MPROC_ENOENT when key (or the dict) is absent. */
MPROC_API int mproc_mdict_get(mproc_mdict *d, const void *key, size_t klen,
                              void **out, size_t *len, int64_t timeout_ms);

/* mproc_mdict_get_i64 / _double: d[key] read as a number. MPROC_ENOENT,
 * MPROC_ERANGE (not such a number). */
MPROC_API int mproc_mdict_get_i64(mproc_mdict *d, const void *key, size_t klen,
                                  int64_t *out, int64_t timeout_ms);
MPROC_API int mproc_mdict_get_double(mproc_mdict *d, const void *key,
                                     size_t klen, double *out,
                                     int64_t timeout_ms);

/* mproc_mdict_set_i64 / _double: d[key] = the number's decimal text. */
MPROC_API int mproc_mdict_set_i64(mproc_mdict *d, const void *key, size_t klen,
                                  int64_t v, int64_t timeout_ms);
MPROC_API int mproc_mdict_set_double(mproc_mdict *d, const void *key,
                                     size_t klen, double v, int64_t timeout_ms);

/* mproc_mdict_del: removes key (HDEL). MPROC_ENOENT when absent. */
MPROC_API int mproc_mdict_del(mproc_mdict *d, const void *key, size_t klen,
                              int64_t timeout_ms);

/* mproc_mdict_contains: 1 when key is in the dict, 0 when not (HEXISTS),
 * or an error. */
MPROC_API int mproc_mdict_contains(mproc_mdict *d, const void *key, size_t klen,
                                   int64_t timeout_ms);

/* mproc_mdict_len: the number of keys (HLEN; 0 for no dict). */
MPROC_API int mproc_mdict_len(mproc_mdict *d, size_t *out, int64_t timeout_ms);

/* mproc_mdict_incr: d[key] += by as a 64-bit integer (HINCRBY; an absent
 * key counts as 0); *out (may be NULL) the new value. MPROC_ERANGE when
 * the value is not an integer or would overflow. */
MPROC_API int mproc_mdict_incr(mproc_mdict *d, const void *key, size_t klen,
                               int64_t by, int64_t *out, int64_t timeout_ms);

/* mproc_mdict_incr_double: as mproc_mdict_incr with a double
 * (HINCRBYFLOAT). */
MPROC_API int mproc_mdict_incr_double(mproc_mdict *d, const void *key,
                                      size_t klen, double by, double *out,
                                      int64_t timeout_ms);

/* mproc_mdict_keys: every key (HKEYS), as an ARRAY reply in *out
 * (mproc_mreply_free). mproc_mdict_items: keys and values alternately
 * (HGETALL). Order unspecified. */
MPROC_API int mproc_mdict_keys(mproc_mdict *d, mproc_mreply **out,
                               int64_t timeout_ms);
MPROC_API int mproc_mdict_items(mproc_mdict *d, mproc_mreply **out,
                                int64_t timeout_ms);

/* ----- list (RPUSH, LPOP, LINDEX, ...) ----- */

typedef struct mproc_mlist mproc_mlist;

MPROC_API int mproc_mlist_open(mproc_mlist **out, mproc_mclient *c,
                               const char *name);
MPROC_API void mproc_mlist_close(mproc_mlist *l);

/* mproc_mlist_append / _prepend: adds an item at the end (RPUSH) or the
 * front (LPUSH); *len_out (may be NULL) the new length. */
MPROC_API int mproc_mlist_append(mproc_mlist *l, const void *data, size_t len,
                                 size_t *len_out, int64_t timeout_ms);
MPROC_API int mproc_mlist_prepend(mproc_mlist *l, const void *data, size_t len,
                                  size_t *len_out, int64_t timeout_ms);

/* mproc_mlist_pop_front / _back: removes and returns the first (LPOP) or
 * last (RPOP) item, without waiting. MPROC_ENOENT when empty. */
MPROC_API int mproc_mlist_pop_front(mproc_mlist *l, void **out, size_t *len,
                                    int64_t timeout_ms);
MPROC_API int mproc_mlist_pop_back(mproc_mlist *l, void **out, size_t *len,
                                   int64_t timeout_ms);

/* mproc_mlist_get: item i (LINDEX; negative counts from the end).
 * MPROC_ENOENT when out of range. */
MPROC_API int mproc_mlist_get(mproc_mlist *l, int64_t i, void **out,
                              size_t *len, int64_t timeout_ms);

/* mproc_mlist_set: item i = data (LSET). MPROC_ERANGE out of range,
 * MPROC_ENOENT no list. */
MPROC_API int mproc_mlist_set(mproc_mlist *l, int64_t i, const void *data,
                              size_t len, int64_t timeout_ms);

/* mproc_mlist_len: the number of items (LLEN; 0 for no list). */
MPROC_API int mproc_mlist_len(mproc_mlist *l, size_t *out, int64_t timeout_ms);

/* mproc_mlist_range: items start..stop inclusive (LRANGE; negative count
 * from the end) as an ARRAY reply in *out. */
MPROC_API int mproc_mlist_range(mproc_mlist *l, int64_t start, int64_t stop,
                                mproc_mreply **out, int64_t timeout_ms);

/* mproc_mlist_remove: removes items equal to data (LREM): count > 0 the
 * first count from the front, < 0 from the back, 0 all; *removed (may be
 * NULL) how many. */
MPROC_API int mproc_mlist_remove(mproc_mlist *l, int64_t count,
                                 const void *data, size_t len, size_t *removed,
                                 int64_t timeout_ms);

/* mproc_mlist_insert: inserts data before (or after) the first item equal
 * to pivot (LINSERT). MPROC_ENOENT when pivot (or the list) is absent;
 * *len_out (may be NULL) the new length. */
MPROC_API int mproc_mlist_insert(mproc_mlist *l, bool after, const void *pivot,
                                 size_t plen, const void *data, size_t len,
                                 size_t *len_out, int64_t timeout_ms);

/* ----- value: a string (SET, GET, INCRBY, ...) ----- */

typedef struct mproc_mvalue mproc_mvalue;

MPROC_API int mproc_mvalue_open(mproc_mvalue **out, mproc_mclient *c,
                                const char *name);
MPROC_API void mproc_mvalue_close(mproc_mvalue *v);

/* mproc_mvalue_set: value = data (SET). */
MPROC_API int mproc_mvalue_set(mproc_mvalue *v, const void *data, size_t len,
                               int64_t timeout_ms);
/* mproc_mvalue_setnx: value = data only when there is none (SETNX):
 * 0 set, MPROC_EEXIST not. */
MPROC_API int mproc_mvalue_setnx(mproc_mvalue *v, const void *data, size_t len,
                                 int64_t timeout_ms);
/* mproc_mvalue_get: the value (GET) into *out (malloc'ed; free()).
 * MPROC_ENOENT when there is none. */
MPROC_API int mproc_mvalue_get(mproc_mvalue *v, void **out, size_t *len,
                               int64_t timeout_ms);
/* mproc_mvalue_getset: sets data and returns the old value (GETSET) in
 * *old (NULL with *old_len 0 when there was none; free()). */
MPROC_API int mproc_mvalue_getset(mproc_mvalue *v, const void *data, size_t len,
                                  void **old, size_t *old_len,
                                  int64_t timeout_ms);
MPROC_API int mproc_mvalue_get_i64(mproc_mvalue *v, int64_t *out,
                                   int64_t timeout_ms);
MPROC_API int mproc_mvalue_get_double(mproc_mvalue *v, double *out,
                                      int64_t timeout_ms);
MPROC_API int mproc_mvalue_set_i64(mproc_mvalue *v, int64_t x,
                                   int64_t timeout_ms);
MPROC_API int mproc_mvalue_set_double(mproc_mvalue *v, double x,
                                      int64_t timeout_ms);
/* mproc_mvalue_incr: value += by (INCRBY; none counts as 0), *out (may be
 * NULL) the new value; MPROC_ERANGE when not an integer or on overflow.
 * mproc_mvalue_incr_double likewise (INCRBYFLOAT). */
MPROC_API int mproc_mvalue_incr(mproc_mvalue *v, int64_t by, int64_t *out,
                                int64_t timeout_ms);
MPROC_API int mproc_mvalue_incr_double(mproc_mvalue *v, double by, double *out,
                                       int64_t timeout_ms);

/* ----- queue: a list used first in, first out (RPUSH, BLPOP), bounded
 * and joinable in a manager ----- */

typedef struct mproc_mqueue mproc_mqueue;

/* Options of mproc_mqueue_open: maxsize, the most items the queue holds
 * (0: no bound; a put waits while it is full). Only the creator's
 * choice counts; a Redis supports 0 only (MPROC_ENOSYS otherwise). */
typedef struct mproc_mqueue_opts {
    size_t maxsize;
} mproc_mqueue_opts;
#define MPROC_MQUEUE_OPTS_INIT                                                 \
    {                                                                          \
        0                                                                      \
    }

/* mproc_mqueue_open: the queue called name, made with opts when it does
 * not exist (a manager: QUEUE.CREATE; a Redis: nothing is sent).
 * MPROC_EBADOBJ when name holds something else than a list. */
MPROC_API int mproc_mqueue_open(mproc_mqueue **out, mproc_mclient *c,
                                const char *name, const mproc_mqueue_opts *opts,
                                int64_t timeout_ms);
MPROC_API void mproc_mqueue_close(mproc_mqueue *q);

/* mproc_mqueue_put: appends an item, waiting up to timeout_ms while a
 * bounded queue is full (QUEUE.PUT; RPUSH on Redis). MPROC_ETIMEDOUT
 * when it stayed full (nothing was added). Every put counts one
 * unfinished task (see task_done). */
MPROC_API int mproc_mqueue_put(mproc_mqueue *q, const void *data, size_t len,
                               int64_t timeout_ms);

/* mproc_mqueue_get: removes the first item into *out (malloc'ed; free()),
 * waiting up to timeout_ms while the queue is empty (BLPOP; 0: LPOP, one
 * look). MPROC_ETIMEDOUT when nothing came. Items go to waiting clients
 * in the order they started waiting. A client killed while it waits
 * takes nothing. */
MPROC_API int mproc_mqueue_get(mproc_mqueue *q, void **out, size_t *len,
                               int64_t timeout_ms);

/* mproc_mqueue_qsize: items in the queue now (LLEN). */
MPROC_API int mproc_mqueue_qsize(mproc_mqueue *q, size_t *out,
                                 int64_t timeout_ms);

/* mproc_mqueue_task_done: one got item is done (QUEUE.DONE; Python's
 * JoinableQueue.task_done). MPROC_EOVERRELEASE when called more times
 * than items were put. Manager only. */
MPROC_API int mproc_mqueue_task_done(mproc_mqueue *q, int64_t timeout_ms);

/* mproc_mqueue_join: waits up to timeout_ms until every item put has been
 * marked done (QUEUE.JOIN). MPROC_ETIMEDOUT. Manager only. */
MPROC_API int mproc_mqueue_join(mproc_mqueue *q, int64_t timeout_ms);

/* ----- lock and rlock (manager only) ----- */

typedef struct mproc_mlock mproc_mlock;

/* Options of mproc_mlock_open: recursive (an RLock: its owner may acquire
 * it again and must release it as often). The creator's choice counts. */
typedef struct mproc_mlock_opts {
    bool recursive;
} mproc_mlock_opts;
#define MPROC_MLOCK_OPTS_INIT                                                  \
    {                                                                          \
        false                                                                  \
    }

/* mproc_mlock_open: the lock called name, made when absent (LOCK.CREATE);
 * mproc_mlock_is_recursive() tells which kind it is. */
MPROC_API int mproc_mlock_open(mproc_mlock **out, mproc_mclient *c,
                               const char *name, const mproc_mlock_opts *opts,
                               int64_t timeout_ms);
MPROC_API void mproc_mlock_close(mproc_mlock *l);
MPROC_API bool mproc_mlock_is_recursive(const mproc_mlock *l);

/*
 * mproc_mlock_acquire: takes the lock for this process's connection,
 * waiting up to timeout_ms (clients get it in the order they asked).
 * Returns 0; MPROC_EOWNERDEAD: acquired, but the previous owner's
 * connection ended while it held the lock (its process died or closed
 * the client): what the lock guards may be half changed; MPROC_ETIMEDOUT;
 * MPROC_EDEADLK (a plain lock this connection already holds).
 */
MPROC_API int mproc_mlock_acquire(mproc_mlock *l, int64_t timeout_ms);

/* mproc_mlock_release: releases it (once, for an RLock held several
 * times). MPROC_ENOTOWNER when this connection does not hold it. */
MPROC_API int mproc_mlock_release(mproc_mlock *l, int64_t timeout_ms);

/* ----- event (manager only) ----- */

typedef struct mproc_mevent mproc_mevent;

MPROC_API int mproc_mevent_open(mproc_mevent **out, mproc_mclient *c,
                                const char *name);
MPROC_API void mproc_mevent_close(mproc_mevent *e);
/* set wakes every waiter; clear resets; is_set returns 1 or 0. */
MPROC_API int mproc_mevent_set(mproc_mevent *e, int64_t timeout_ms);
MPROC_API int mproc_mevent_clear(mproc_mevent *e, int64_t timeout_ms);
MPROC_API int mproc_mevent_is_set(mproc_mevent *e, int64_t timeout_ms);
/* mproc_mevent_wait: returns 0 once the event is set, MPROC_ETIMEDOUT. */
MPROC_API int mproc_mevent_wait(mproc_mevent *e, int64_t timeout_ms);

/* ----- semaphore (manager only) ----- */

typedef struct mproc_msemaphore mproc_msemaphore;

/* Options of mproc_msemaphore_open: the initial value, and bounded (a
 * release above the initial value is MPROC_EOVERRELEASE). The creator's
 * choice counts. */
typedef struct mproc_msemaphore_opts {
    unsigned value;
    bool bounded;
} mproc_msemaphore_opts;
#define MPROC_MSEMAPHORE_OPTS_INIT                                             \
    {                                                                          \
        1, false                                                               \
    }

MPROC_API int mproc_msemaphore_open(mproc_msemaphore **out, mproc_mclient *c,
                                    const char *name,
                                    const mproc_msemaphore_opts *opts,
                                    int64_t timeout_ms);
MPROC_API void mproc_msemaphore_close(mproc_msemaphore *s);
/* acquire: waits up to timeout_ms for a unit (MPROC_ETIMEDOUT). Units are
 * not owned: a client that dies keeps what it took. */
MPROC_API int mproc_msemaphore_acquire(mproc_msemaphore *s, int64_t timeout_ms);
/* release: gives a unit back (MPROC_EOVERRELEASE, bounded). */
MPROC_API int mproc_msemaphore_release(mproc_msemaphore *s, int64_t timeout_ms);
/* value: the units free now. */
MPROC_API int mproc_msemaphore_value(mproc_msemaphore *s, unsigned *out,
                                     int64_t timeout_ms);

/* ----- barrier (manager only) ----- */

typedef struct mproc_mbarrier mproc_mbarrier;

/* Options of mproc_mbarrier_open: parties (>= 1), how many wait together.
 * The creator's choice counts. */
typedef struct mproc_mbarrier_opts {
    unsigned parties;
} mproc_mbarrier_opts;
#define MPROC_MBARRIER_OPTS_INIT                                               \
    {                                                                          \
        2                                                                      \
    }

MPROC_API int mproc_mbarrier_open(mproc_mbarrier **out, mproc_mclient *c,
                                  const char *name,
                                  const mproc_mbarrier_opts *opts,
                                  int64_t timeout_ms);
MPROC_API void mproc_mbarrier_close(mproc_mbarrier *b);
/*
 * mproc_mbarrier_wait: waits until parties clients wait, then all go on;
 * *index (may be NULL) is the arrival order, 0 .. parties-1 (parties-1
 * for the last to arrive), as mproc_barrier_wait.
 * MPROC_EBROKEN when the barrier is broken: a waiter timed out (it gets
 * MPROC_ETIMEDOUT, the others MPROC_EBROKEN), its connection ended while
 * it waited, or mproc_mbarrier_abort(); it stays broken until reset.
 */
MPROC_API int mproc_mbarrier_wait(mproc_mbarrier *b, unsigned *index,
                                  int64_t timeout_ms);
/* reset: breaks it for those who wait now (MPROC_EBROKEN) and makes it
 * whole again; abort: breaks it. */
MPROC_API int mproc_mbarrier_reset(mproc_mbarrier *b, int64_t timeout_ms);
MPROC_API int mproc_mbarrier_abort(mproc_mbarrier *b, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_MANAGER_H */
