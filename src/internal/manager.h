/*
 * What the manager's files share: the server's loop (manager_server.c),
 * the objects and commands (manager_store.c), a connection's replies,
 * identity and parking (manager_conn.c, the layer under both), and the
 * address parsing both ends use (manager_client.c).
 * docs/manager-protocol.md says what travels.
 */
#ifndef MPROC_INTERNAL_MANAGER_H
#define MPROC_INTERNAL_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/manager.h"

/* ----- addresses ----- */

enum { MGR_ADDR_UNIX = 1, MGR_ADDR_TCP = 2 };

typedef struct mgr_addr {
    int kind;
    char path[110]; /* unix: a path, or "@name" */
    char host[64];  /* tcp */
    unsigned port;
} mgr_addr;

/* Parses "unix:PATH", "PATH", "@NAME", "unix:@NAME", "tcp:HOST:PORT".
 * 0, MPROC_EINVAL, MPROC_ENAMETOOLONG. */
int mproc__mgr_parse_addr(const char *s, mgr_addr *out);

/* Reads a password file's first line into buf (cap). With strict, the
 * file must belong to the caller's euid and have no group or other
 * permission bits (MPROC_EDENIED). 0 or an error. */
int mproc__mgr_read_password(const char *path, char *buf, size_t cap,
                             bool strict);

/* The socket address of a tcp address (HOST: an IPv4 or IPv6 literal,
 * or "localhost"). 0 or MPROC_EINVAL. */
struct sockaddr_storage;
int mproc__mgr_sockaddr(const mgr_addr *a, struct sockaddr_storage *ss,
                        unsigned *len);

/* A double from exactly n bytes (no blanks, not NaN, in range): true and
 * *out, or false. */
bool mproc__mgr_parse_double(const char *p, size_t n, double *out);

/* The shortest decimal text that reads back as v (at most cap bytes,
 * NUL included); its length. */
size_t mproc__mgr_fmt_double(char *buf, size_t cap, double v);

/* ----- growable byte buffers ----- */

typedef struct mgr_buf {
    char *p;
    size_t len, cap;
} mgr_buf;

int mproc__mgr_buf_add(mgr_buf *b, const void *data, size_t n);
void mproc__mgr_buf_free(mgr_buf *b);

/* ----- server side ----- */

typedef struct mgr_srv mgr_srv;
typedef struct mgr_conn mgr_conn;
typedef struct mgr_obj mgr_obj;

/* One parsed request: argc arguments of argl[i] bytes (each also
 * NUL-terminated). */
typedef struct mgr_req {
    int argc;
    char **argv;
    size_t *argl;
    struct mgr_req *next;
} mgr_req;

void mproc__mgr_req_free(mgr_req *r);

/* Replies, appended to the connection's output. */
void mproc__mgr_reply_status(mgr_conn *c, const char *s);
void mproc__mgr_reply_error(mgr_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mproc__mgr_reply_int(mgr_conn *c, long long v);
void mproc__mgr_reply_bulk(mgr_conn *c, const void *p, size_t n);
void mproc__mgr_reply_nil(mgr_conn *c);
void mproc__mgr_reply_array(mgr_conn *c, long long n);
void mproc__mgr_reply_double(mgr_conn *c, double v);

/* The connection's identity and state for the commands. */
uint64_t mproc__mgr_conn_id(const mgr_conn *c);
bool mproc__mgr_conn_is_tcp(const mgr_conn *c);
/* False when c's peer has gone (its socket shows a hangup) although the
 * loop has not read the EOF yet: a waiter about to be given something
 * (a queue item, a lock) is asked first, so nothing goes to the dead. */
bool mproc__mgr_conn_alive(mgr_conn *c);
/* Closes c now (its waits and locks go through the store's disconnect). */
void mproc__mgr_conn_drop(mgr_conn *c);
/* The peer's pid as the kernel recorded it at connect (0 for TCP). */
pid_t mproc__mgr_conn_pid(const mgr_conn *c);

/* A connection that parks (a blocking command) waits on up to this many
 * objects at once (BLPOP with several keys). */
#define MGR_MAX_WAITS 16

/* Parks c until mproc__mgr_unpark() or the deadline (ns on the monotonic
 * clock, INT64_MAX: none); the store then gets mproc__mgr_store_timeout.
 * The caller has registered its waits on objects (mproc__mgr_wait_add). */
void mproc__mgr_park(mgr_conn *c, int op, int64_t deadline_ns);
/* Unparks c (its reply is written): it goes on with its next request. */
void mproc__mgr_unpark(mgr_conn *c);
bool mproc__mgr_is_parked(const mgr_conn *c);
/* What c is parked for (the op given to park), its argument words. */
int mproc__mgr_park_op(const mgr_conn *c);

/* The store: every object, keyed by name. */
typedef struct mgr_store mgr_store;

int mproc__mgr_store_create(mgr_store **out);
void mproc__mgr_store_destroy(mgr_store *st);

/* Runs one request for c. Returns 0, or 1 when the server must stop
 * (MPROC.SHUTDOWN). */
int mproc__mgr_exec(mgr_store *st, mgr_conn *c, const mgr_req *r);

/* c's park deadline passed: reply its timeout and unpark it. */
void mproc__mgr_store_timeout(mgr_store *st, mgr_conn *c);

/* c is closing: drop its waits (a barrier it waited on breaks), release
 * the locks it owns (marking them owner-dead). */
void mproc__mgr_store_disconnect(mgr_store *st, mgr_conn *c);

/* Per-connection store state (waits and owned locks), allocated by the
 * store at the first need; freed by disconnect. */
void **mproc__mgr_conn_store_slot(mgr_conn *c);

/* The request-path fuzz entry: a store and one connection without a
 * socket, fed data in pieces; replies are discarded. */
int mproc__mgr_fuzz_one(const uint8_t *data, size_t n);

/* ----- client side ----- */

/* Maps an error reply's text to an MPROC_E* code. */
int mproc__mgr_error_code(const char *s, size_t n);

#endif
