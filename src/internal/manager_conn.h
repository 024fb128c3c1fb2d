/*
 * A manager connection, as the server (manager_server.c) and the replies
 * and parks the store asks for (manager_conn.c) share it. The store sees
 * a connection only through the calls of internal/manager.h.
 */
#ifndef MPROC_INTERNAL_MANAGER_CONN_H
#define MPROC_INTERNAL_MANAGER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "internal/manager.h"
#include "mproc/conn.h"

struct redisReader;

/* What the server does for a connection when a reply or a park needs it.
 * The server gives these (mgr_conn.ops); manager_conn.c calls them, so
 * that no call runs from the replies back up to the server. */
typedef struct mgr_conn_ops {
    void (*wrote)(mgr_conn *c);    /* output was added: send it */
    void (*close)(mgr_conn *c);    /* close c now (over its output bound) */
    void (*runnable)(mgr_conn *c); /* unparked: run its next request */
    void (*deadline)(mgr_conn *c, int64_t ns); /* parked until ns at most */
} mgr_conn_ops;

/* A client whose unsent replies pass MGR_OUT_LIMIT is closed. */
#define MGR_OUT_LIMIT ((size_t)1 << 30)

typedef struct mgr_ev {
    int kind;
    mgr_conn *c;
} mgr_ev;

struct mgr_conn {
    const mgr_conn_ops *ops; /* the server's, for replies and parks */
    mgr_srv *s;
    uint64_t id;
    pid_t pid;
    int fd;
    mproc_conn *sock; /* owns fd for Unix clients */
    mproc_conn *ring; /* the server's ring end, once asked for */
    mgr_ev sock_ev, ring_ev;
    uint32_t ev_mask;
    bool tcp, authed, closing;
    bool ring_hot; /* took ring messages since the ring was last armed */
    bool ring_out; /* replies wait for room in the ring */
    bool in_run, in_dirty;
    struct redisReader *rd;
    bool rd_active;
    size_t req_bytes;
    int64_t partial_since;
    mgr_buf in;
    mgr_buf out;
    size_t out_off;
    mgr_req *qhead, *qtail;
    size_t qlen;
    bool parked;
    int park_op;
    int64_t park_deadline;
    void *store_slot;
    char proto_err[96];
    mgr_conn *prev, *next;
    mgr_conn *run_next, *dirty_next, *hot_next, *hot_prev;
    bool on_hot;
};

#endif
