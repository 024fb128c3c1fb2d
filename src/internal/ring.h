/*
 * ring: one direction of an mproc_pipe() in shared memory, a ring of
 * records (internal/records.h, the ring queues use) with a doorbell. A
 * message that finds its reader awake costs no system call at all. The
 * pipe's fd stays: it is the doorbell that wakes a sleeping reader, makes
 * the end pollable and carries passed fds, and the kernel's count of its
 * holders tells each side when the other is gone.
 *
 * Shared layout (one mproc__ring per direction, in one memory file;
 * docs/conn.md): magic, version and data size, the torn flag and the fd
 * token counter; the ring's words (mproc__rec_shared) at 128; the data at
 * 1024. Offsets only, no pointers.
 *
 * Senders: any number of threads and processes, under the ring's robust
 * producers' lock. A message up to half the ring goes in one record
 * published with one store, so a sender killed at any point either sent
 * it or did not; a larger one streams in pieces, and one that stops half
 * way (its sender killed, or its send timed out) is ended by an ABORT
 * record, which the receiver drops it at.
 *
 * Receiver: one process (one thread at a time, under the connection's own
 * lock), without the ring's consumers' lock. It spins briefly for data,
 * then raises its flag, looks once more, and sleeps in poll() on the fd in
 * slices; a sender that publishes while the flag is up takes it down and
 * writes one byte to the fd.
 */
#ifndef MPROC_INTERNAL_RING_H
#define MPROC_INTERNAL_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/records.h"
#include "mproc/error.h"

/* Data bytes per direction, a power of two, chosen per pipe
 * (mproc_pipe_opts.ring_size) between the minimum and the maximum; the
 * default serves bulk transfers (docs/conn.md, "Ring size"). A message up
 * to half a ring travels whole; a larger one streams in pieces of a
 * quarter of it. */
#define MPROC__RING_DATA (256u * 1024u)
#define MPROC__RING_DATA_MIN (4u * 1024u)
#define MPROC__RING_DATA_MAX (64u * 1024u * 1024u)
/* A receiver asleep on the doorbell wakes after this long, doubling up to
 * the maximum, to look for a sender that died inside a message. */
#define MPROC__RING_SLICE_MIN_MS 50
#define MPROC__RING_SLICE_MAX_MS 1000
#define MPROC__RING_MAGIC 0x474e524du /* "MRNG" */
#define MPROC__RING_VERSION 3u

/* Internal: the streamed message being read was aborted by its sender
 * (it is dropped). Never returned to a caller of the library. */
#define MPROC__RING_CUT MPROC_ECANCELED

typedef struct mproc__ring {
    uint32_t magic, version, data_size, reserved;
    _Atomic uint32_t torn; /* the receiver gave up on the ring, for good */
    uint32_t pad0;
    _Atomic uint64_t fdseq; /* the last number given to passed fds */
    unsigned char pad1[128 - 32];
    mproc__rec_shared w; /* the ring's words */
    unsigned char pad2[1024 - 128 - sizeof(mproc__rec_shared)];
    unsigned char data[]; /* data_size bytes */
} mproc__ring;

/* Makes n rings (1 or 2) of size data bytes each (a power of two between
 * MPROC__RING_DATA_MIN and MPROC__RING_DATA_MAX) in a new memory file:
 * *memfd (close-on-exec) and the mapping *rings. 0 or -errno. */
int mproc__ring_create(int n, uint32_t size, int *memfd, mproc__ring **rings);

/* Maps the n rings of a memory file received from another process, after
 * checking its seals and size, and every ring's magic, version and data
 * size: 0 with *size the data size, MPROC_EPROTO (not such a file),
 * -errno. */
int mproc__ring_attach(int memfd, int n, mproc__ring **rings, uint32_t *size);

/* Ring i (0 or 1) of a mapping of rings of size data bytes each. */
mproc__ring *mproc__ring_nth(mproc__ring *rings, int i, uint32_t size);

void mproc__ring_unmap(mproc__ring *rings, int n, uint32_t size);

/* fds passed over a ring's doorbell socket, with their number. */
typedef struct mproc__fdtok {
    uint64_t seq;
    int fds[MPROC__IO_MAX_PASS];
    int n;
} mproc__fdtok;

/* On the doorbell socket, fds travel on a token of their own: this byte,
 * then the number (fdseq) of the message they belong to, 8 bytes
 * little-endian. Every other byte is a bell. */
#define MPROC__RING_FDTOK 0xfdu
#define MPROC__RING_FDTOK_LEN 9
/* The payload of the FDS record that names a token: kind, arg, fd count,
 * a reserved byte, the token's number (docs/conn.md, "Wire format"). */
#define MPROC__RING_FD_PAYLOAD 12u

/* This process's side of one ring: the ring, the view of its records, the
 * doorbell fd and what this side has learned. */
typedef struct mproc__ringio {
    mproc__ring *r;
    mproc__rec_ring v;
    uint32_t size; /* data bytes, as checked at create/attach */
    int fd;
    unsigned io;        /* MPROC__IO_SOCK for a socket fd, else 0 */
    int64_t checked_ns; /* sender: last time the kernel was asked */
    atomic_bool gone;   /* sender: the kernel said no reader is left (set
                         * by a bell outside the lock too) */
    atomic_bool eof;    /* receiver: every sender is gone */
    int64_t slice_ms;   /* receiver: the next sleep slice */
    /* Receiver: the message found at rd (mproc__ring_next). */
    mproc__rec_found f;
    /* Receiver, under the receive lock: fd tokens read from the doorbell
     * and not yet taken (oldest first), and one being read. */
    mproc__fdtok *toks;
    int ntok, captok;
    int tok_have; /* bytes of its number read; -1: none being read */
    mproc__fdtok tok;
} mproc__ringio;

/* send: the sending side of the ring (else the receiving side). */
void mproc__ringio_init(mproc__ringio *x, mproc__ring *r, uint32_t size, int fd,
                        unsigned io, bool send);

/* Closes the fds of tokens not taken and frees them. */
void mproc__ringio_fini(mproc__ringio *x);

/* ----- sender ----- */

/* Takes the senders' lock before d (and ends a message its last holder
 * left begun): 0, MPROC_ETIMEDOUT, MPROC_EBROKEN (the receiver found
 * garbage and gave up: the ring is torn for good), MPROC_ECLOSED (no
 * receiver is left), MPROC_EPROTO (control words that make no sense). */
int mproc__ring_lock(mproc__ringio *w, const mproc__deadline *d);
/* Lets the senders' lock go, then wakes the reader if it sleeps (outside
 * the lock, as a queue's put does: the fence of the wake's check, passed
 * under the lock, held senders at about half the queue's speed).
 * MPROC_ECLOSED when no reader is left (a bell found out) and what this
 * sender published is still in the ring, else 0. */
int mproc__ring_unlock(mproc__ringio *w);

/* Under the lock: sends one message of len bytes, whole or streamed (a
 * stream wakes the reader as it goes; a whole message wakes it at
 * mproc__ring_unlock). A stream that fails half way is aborted (the reader
 * drops it). 0, MPROC_ETIMEDOUT, MPROC_ECLOSED (no reader is left),
 * MPROC_EBROKEN, MPROC_EPROTO. */
int mproc__ring_send(mproc__ringio *w, const void *buf, size_t len,
                     const mproc__deadline *d);

/* Under the lock: sends n messages, whole ones published together (see
 * mproc__rec_put_batch); *done counts the messages that went. As
 * mproc__ring_send. */
int mproc__ring_send_batch(mproc__ringio *w, const mproc__rec_msg *msgs,
                           size_t n, const mproc__deadline *d, size_t *done);

/* Under the lock: makes room for an FDS record of MPROC__RING_FD_PAYLOAD
 * bytes, so that once its fds are on the socket nothing can stop it:
 * *pos (out) and the number for its token. As mproc__ring_send. */
int mproc__ring_place_fds(mproc__ringio *w, const mproc__deadline *d,
                          uint32_t *pos, uint64_t *seq);

/* Under the lock, after mproc__ring_place_fds: writes and publishes the
 * FDS record at pos (the reader is woken at mproc__ring_unlock). 0 or
 * MPROC_ECLOSED (no reader is left: it went out all the same). */
int mproc__ring_commit_fds(mproc__ringio *w, uint32_t pos,
                           const unsigned char pay[MPROC__RING_FD_PAYLOAD]);

/* Asks the kernel whether a reader still holds the pipe: 0 or
 * MPROC_ECLOSED. A system call. */
int mproc__ring_reader_gone(mproc__ringio *w);

/* ----- receiver ----- */

/* Bytes published and not yet read (records, padding included). */
uint64_t mproc__ring_readable(const mproc__ringio *r);

/*
 * Waits for the next message: spins briefly, then sleeps on the doorbell
 * until d (fd tokens read on the way are kept, see mproc__ring_take_fds).
 * 0 with *kind (MPROC__REC_MSG, MPROC__REC_FDS, or MPROC__REC_FIRST for a
 * streamed one) and *len (its payload, or a streamed one's total) and
 * the message kept for the calls below; MPROC_ETIMEDOUT (the doorbell is
 * then armed: the fd becomes readable when a message comes),
 * MPROC_ECLOSED (every sender is gone and nothing is left), MPROC_EPROTO
 * (a torn ring, or words that make no sense). A streamed message its
 * sender aborted is skipped, as far as the published records show it.
 */
int mproc__ring_next(mproc__ringio *r, const mproc__deadline *d, unsigned *kind,
                     uint64_t *len);

/* After mproc__ring_next gave a streamed message, before it is reported
 * by its size: when its sender is gone (a look at /proc) or gave up, it
 * is aborted and dropped (1: look again); else 0; MPROC_EPROTO. */
int mproc__ring_drop_doomed(mproc__ringio *r);

/* Copies the first n (<= its len) bytes of the whole message found to
 * dst, consuming nothing. */
void mproc__ring_peek(const mproc__ringio *r, void *dst, size_t n);

/* Copies the whole message found (MSG or FDS: its len bytes) to dst and
 * consumes it. */
void mproc__ring_take_whole(mproc__ringio *r, void *dst);

/* Takes the streamed message found into dst (its total bytes): 0; or
 * MPROC_ETIMEDOUT with *got bytes there and the rest to come
 * (mproc__ring_resume); MPROC__RING_CUT (aborted: dropped); MPROC_EPROTO
 * (garbage, or every sender gone inside it). */
int mproc__ring_take_stream(mproc__ringio *r, unsigned char *dst,
                            uint64_t total, uint64_t *got,
                            const mproc__deadline *d);

/* Goes on with a streamed message whose take timed out. As
 * mproc__ring_take_stream. */
int mproc__ring_resume(mproc__ringio *r, unsigned char *dst, uint64_t total,
                       uint64_t *got, const mproc__deadline *d);

/* Whether the streamed message whose take timed out was aborted since, as
 * far as is published or its sender is gone or gave up: then it is
 * dropped (1); else 0; MPROC_EPROTO. */
int mproc__ring_partial_doomed(mproc__ringio *r);

/* A receiver that went to sleep at slept_ns (CLOCK_MONOTONIC) and was woken
 * by its doorbell: notes what the wake-up cost (the spin budget, spin.h),
 * if the last bell was rung after it went to sleep. For receivers that
 * sleep elsewhere than in mproc__ring_next (the manager's epoll loop). */
void mproc__ring_note_bell(const mproc__ringio *r, int64_t slept_ns);

/* Without waiting: true when a record is there or every sender is gone;
 * otherwise arms the doorbell (so the fd becomes readable when a message
 * comes) and looks once more. */
bool mproc__ring_arm(mproc__ringio *r);

/* Reads the doorbell bytes there are without blocking, keeping fd tokens
 * and noting EOF. 0 or MPROC_EPROTO (more fds on one token than may be). */
int mproc__ring_drain(mproc__ringio *r);

/* The fds of the FDS message numbered seq, which went ahead of it on the
 * doorbell socket: tokens with a lower number (left by a sender that died
 * before publishing its message) are closed on the way. 0 and
 * fds[0 .. *n), or MPROC_EPROTO (the token is not there). */
int mproc__ring_take_fds(mproc__ringio *r, uint64_t seq,
                         int fds[MPROC__IO_MAX_PASS], int *n);

/* For a receiver that has slept a while with nothing coming: when the
 * senders' lock is held by a thread that no longer exists, or is free
 * with a message left begun, ends that message (true then). */
bool mproc__ring_recover(mproc__ringio *r);

/* For a receiving end that found garbage: the direction is torn for good,
 * so senders (also one sleeping for room) get MPROC_EBROKEN, or
 * MPROC_ECLOSED once the kernel says no receiver is left (a duplex
 * receiver shuts its socket down as well). */
void mproc__ring_reader_broke(mproc__ringio *r);

/* For a receiving end that closes: the next send rings the doorbell, so
 * its sender learns at once whether any reader is left. */
void mproc__ring_reader_closing(mproc__ringio *r);

#endif
