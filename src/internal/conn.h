/*
 * What the connection files share: making a connection handle around an fd
 * (conn.c) for the FIFO, listener and wait code (conn_named.c), and the
 * read-side state mproc_wait needs.
 */
#ifndef MPROC_INTERNAL_CONN_H
#define MPROC_INTERNAL_CONN_H

#include <stdbool.h>

#include "mproc/conn.h"

/* Wraps fd (owned on success) with the direction given; io is a mask of
 * MPROC__IO_* from frame.h. */
int mproc__conn_new(int fd, unsigned io, bool bytes, bool can_send,
                    bool can_recv, mproc_conn **out);

/* Marks a FIFO write end as possibly shared by several writers. */
void mproc__conn_set_multi_writer(mproc_conn *c, bool multi);

/* Gives a FIFO read end a write end of the same FIFO to hold (owned,
 * closed with the end), so that its reader never sees EOF. */
void mproc__conn_hold_writer(mproc_conn *c, int fd);

/* True when a recv would return at once without reading the fd: bytes
 * are buffered in this process, or an earlier error is recorded. */
bool mproc__conn_ready_buffered(mproc_conn *c);

/* For an mproc_pipe end whose doorbell fd polled readable: takes the
 * doorbell bytes unless a recv runs (false then). */
bool mproc__conn_drain_doorbell(mproc_conn *c);

/* True for an end that receives through a ring (mproc_pipe): its fd may
 * be readable with no message behind it (a doorbell byte left over). */
bool mproc__conn_ringed(const mproc_conn *c);

/* For a wait on an end that receives through a ring, after a slice with
 * nothing: recovers the senders' lock from a dead holder. */
void mproc__conn_ring_recover(mproc_conn *c);

struct mproc__ringio;
/* The ring side of an mproc_pipe end (send: the ring it sends to, else the
 * one it receives from), or NULL for a kernel end: for tests that must
 * write what a broken peer would. */
struct mproc__ringio *mproc__conn_ringio(mproc_conn *c, bool send);

#endif
