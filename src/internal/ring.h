/*
 * ring: one direction of a message pipe in shared memory. Frames (the
 * 8-byte header of internal/frame.h and the payload) are copied into a
 * byte ring that both processes map, so a message that finds its reader
 * awake costs no system call at all. The pipe's fd stays: it is the
 * doorbell that wakes a sleeping reader and makes the end pollable, and
 * the kernel's count of its holders tells each side when the other is
 * gone.
 *
 * Shared layout (one mproc__ring per direction, in one memory file;
 * docs/conn.md): magic, version and size, then on separate cache lines the
 * producer's words (head: bytes published; the senders' lock; torn;
 * inside), the consumer's (tail: bytes consumed; cut, cut_seen) and the
 * wake flags; then the data.
 * Offsets only, no pointers.
 *
 * Producers: any number of threads and processes, serialized by a robust
 * lock word (internal/lockcore.h). A frame that fits in the ring is copied
 * whole and published with one store, so a sender killed at any point
 * either sent it or did not. A larger frame is streamed; one that stops
 * half way (its sender killed, or its send timed out) is cut: the position
 * where it stops is recorded (cut), by the next holder of the lock (which
 * learns of a death from the lock) or at once, and the reader drops the
 * frame there and goes on with the next one, as a queue drops a streamed
 * message whose producer died.
 *
 * Consumer: one process (one thread at a time, under the connection's own
 * lock). It spins briefly for data, then arms the doorbell (armed = 1),
 * looks once more, and sleeps in poll() on the fd; a producer that
 * publishes while armed is set clears it and writes one byte to the fd.
 *
 * Waking a producer that waits for space: the room protocol below (its
 * sleep slices ask the kernel whether the reader is still there).
 */
#ifndef MPROC_INTERNAL_RING_H
#define MPROC_INTERNAL_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/lockcore.h"
#include "internal/waitword.h"
#include "mproc/error.h"

/*
 * Room: how a producer short of room sleeps and the consumer that frees it
 * wakes it, the same in every ring (pipe rings here, queues in queue.c).
 * The producer raises wait with the bytes it wants, looks at the room once
 * more (sequentially consistent, pairing with the consumer's fence), and
 * sleeps on seq in slices; the consumer that freed bytes, after a fence,
 * takes wait down only once what is free reaches need, bumps seq and
 * wakes. Asking for a quarter of the ring (or the frame, if more) wakes
 * early enough that the ring never runs dry while the producer sleeps and
 * late enough that one wake-up moves many small messages. Three words in
 * this order in each ring's layout (docs/conn.md, docs/queue.md).
 */
typedef struct mproc__ring_room {
    _Atomic uint32_t wait; /* a producer sleeps on seq */
    _Atomic uint32_t seq;
    _Atomic uint32_t need; /* the bytes it waits for */
} mproc__ring_room;

/* Producer: raises the flag for need bytes of a ring of size bytes and
 * returns the seq to sleep on (mproc__ring_room_sleep) once a last look
 * has found no room. */
static inline uint32_t mproc__ring_room_raise(mproc__ring_room *m,
                                              uint64_t need, uint64_t size)
{
    uint32_t seq = atomic_load(&m->seq);
    uint64_t want = need > size / 4 ? need : size / 4;
    atomic_store(&m->need, (uint32_t)want);
    atomic_store(&m->wait, 1);
    return seq;
}

/* Producer: sleeps until a consumer wakes it (or check, called every
 * slice, ends the sleep), as mproc__waitword_sleep. */
static inline int mproc__ring_room_sleep(mproc__ring_room *m, uint32_t seq,
                                         const mproc__deadline *d,
                                         mproc__waitword_check check, void *arg)
{
    return mproc__waitword_sleep(&m->seq, seq, d, check, arg);
}

/* Consumer, after a sequentially consistent fence: whether a producer may
 * sleep for room (one relaxed load: the common answer is no). */
static inline bool mproc__ring_room_waited(const mproc__ring_room *m)
{
    return atomic_load_explicit(&m->wait, memory_order_relaxed) != 0;
}

/* Consumer: avail bytes are free now in a ring of size bytes; wakes the
 * sleeping producer once that is what it waits for (a need above the ring,
 * written by a peer that scribbles, counts as the whole ring). */
void mproc__ring_room_wake(mproc__ring_room *m, uint64_t avail, uint64_t size);

/* Wakes the sleeping producer whatever it waits for (the ring was given
 * up on, or shut down). */
void mproc__ring_room_wake_all(mproc__ring_room *m);

/* Data bytes per direction, a power of two, chosen per pipe
 * (mproc_pipe_opts.ring_size) between the minimum and the maximum; the
 * default serves bulk transfers (docs/conn.md, "Ring size"). A frame up to
 * a ring's size travels whole; a larger one streams in pieces of at least
 * a quarter of it. */
#define MPROC__RING_DATA (256u * 1024u)
#define MPROC__RING_DATA_MIN (4u * 1024u)
#define MPROC__RING_DATA_MAX (64u * 1024u * 1024u)
/* A receiver asleep on the doorbell wakes after this long, doubling up to
 * the maximum, to look for a sender that died holding the senders' lock. */
#define MPROC__RING_SLICE_MIN_MS 50
#define MPROC__RING_SLICE_MAX_MS 1000
#define MPROC__RING_MAGIC 0x474e524du /* "MRNG" */
#define MPROC__RING_VERSION 2u

/* Internal: the streamed frame being read was cut (see mproc__ring_wait).
 * Never returned to a caller of the library. */
#define MPROC__RING_CUT (MPROC_ERR_BASE - 100)

typedef struct mproc__ring {
    uint32_t magic, version, data_size, reserved;
    /* Read by a spinning receiver: written once per publish. */
    alignas(128) _Atomic uint64_t head; /* bytes published */
    _Atomic uint32_t torn; /* the receiver gave up on the ring, for good */
    /* The senders' own line, so their lock traffic does not disturb it. */
    alignas(128) mproc__lockword wlock; /* serializes senders */
    _Atomic uint32_t inside; /* part of a frame is out and its end is not */
    _Atomic uint64_t fdseq;  /* the last number given to passed fds */
    alignas(128) _Atomic uint64_t tail; /* bytes consumed */
    /* On the receiver's line, which it reads without a miss: cut is
     * written only when a frame is cut (by a sender, or the receiver as a
     * bystander), cut_seen by the receiver. */
    _Atomic uint64_t cut;      /* where the last frame cut short stops */
    _Atomic uint64_t cut_seen; /* the last cut the receiver has handled */
    alignas(128) _Atomic uint32_t armed; /* the reader sleeps: ring the fd */
    mproc__ring_room room;               /* a sender sleeps for room */
    _Atomic int64_t bell_ns; /* when a sender last rang (spin budget) */
    alignas(128) unsigned char data[]; /* data_size bytes */
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
 * then the number (fdseq) of the frame they belong to, 8 bytes
 * little-endian. Every other byte is a bell. */
#define MPROC__RING_FDTOK 0xfdu
#define MPROC__RING_FDTOK_LEN 9
/* The payload of the frame that names a token: kind, arg, fd count, a
 * reserved byte, the token's number (docs/conn.md, "Wire format"). */
#define MPROC__RING_FD_PAYLOAD 12u

/* This process's side of one ring: the ring, the doorbell fd and what
 * this side has learned. */
typedef struct mproc__ringio {
    mproc__ring *r;
    uint32_t size; /* data bytes, as checked at create/attach */
    uint64_t mask; /* size - 1 */
    int fd;
    unsigned io;        /* MPROC__IO_SOCK for a socket fd, else 0 */
    uint64_t seen;      /* producer: tail seen; consumer: head seen */
    int64_t checked_ns; /* producer: last time the kernel was asked */
    bool gone;          /* producer: the kernel said no reader is left */
    atomic_bool eof;    /* consumer: every sender is gone */
    /* Consumer: the streamed frame being read spans [fstart, fend) (fend
     * 0: none), so that a cut inside it is found. */
    uint64_t fstart, fend;
    /* Consumer, under the receive lock: fd tokens read from the doorbell
     * and not yet taken (oldest first), and one being read. */
    mproc__fdtok *toks;
    int ntok, captok;
    int tok_have; /* bytes of its number read; -1: none being read */
    mproc__fdtok tok;
} mproc__ringio;

void mproc__ringio_init(mproc__ringio *x, mproc__ring *r, uint32_t size, int fd,
                        unsigned io);

/* Closes the fds of tokens not taken and frees them. */
void mproc__ringio_fini(mproc__ringio *x);

/* ----- producer ----- */

/* Takes the senders' lock before d, and cuts a frame its last holder left
 * begun (waiting for the receiver to pass the last cut first): 0,
 * MPROC_ETIMEDOUT, MPROC_EBROKEN (the receiver found garbage and gave
 * up: the ring is torn for good), MPROC_ECLOSED (no receiver is left),
 * MPROC_EPROTO (control words that make no sense). */
int mproc__ring_lock(mproc__ringio *w, const mproc__deadline *d);
void mproc__ring_unlock(mproc__ringio *w);

/*
 * Under the lock: publishes the total bytes of iov (whole frames). When
 * total <= the ring size, waits for that much space and publishes all
 * at once (nothing on failure); otherwise streams (one frame only), and
 * *done says how much went. Then wakes the reader if it sleeps.
 * 0, MPROC_ETIMEDOUT, MPROC_ECLOSED (no reader is left), -errno.
 */
int mproc__ring_put(mproc__ringio *w, const struct iovec *iov, int cnt,
                    size_t total, const mproc__deadline *d, size_t *done);

/* Under the lock: the number for the next frame that passes fds. */
uint64_t mproc__ring_next_fdseq(mproc__ringio *w);

/* Under the lock: waits until total (<= the ring size) bytes are free,
 * so that a put of that much then cannot wait. */
int mproc__ring_wait_space(mproc__ringio *w, size_t total,
                           const mproc__deadline *d);

/* Asks the kernel whether a reader still holds the pipe: 0 or
 * MPROC_ECLOSED. A system call. */
int mproc__ring_reader_gone(mproc__ringio *w);

/* ----- consumer ----- */

/* Bytes published and not consumed. */
uint64_t mproc__ring_readable(const mproc__ringio *r);

/*
 * Waits until at least need (1 .. the ring size) bytes are readable:
 * spins briefly, then sleeps on the doorbell until d (fd tokens read on
 * the way are kept, see mproc__ring_take_fds). 0, MPROC_ETIMEDOUT,
 * MPROC_ECLOSED (every sender is gone; fewer bytes are there),
 * MPROC_EPROTO (a torn ring, or control words that make no sense),
 * MPROC__RING_CUT (inside a streamed frame, mproc__ring_frame_begin: it
 * was cut; mproc__ring_skip_cut drops it). After 0, mproc__ring_ready
 * says how many bytes may be taken.
 */
int mproc__ring_wait(mproc__ringio *r, uint64_t need, const mproc__deadline *d);

/* A receiver that went to sleep at slept_ns (CLOCK_MONOTONIC) and was woken
 * by its doorbell: notes what the wake-up cost (the spin budget, spin.h),
 * if the last bell was rung after it went to sleep. For receivers that
 * sleep elsewhere than in mproc__ring_wait (the manager's epoll loop). */
void mproc__ring_note_bell(const mproc__ringio *r, int64_t slept_ns);

/* After mproc__ring_wait returned 0: the bytes after the tail that belong
 * to what is being read (all readable ones, as seen then; a cut found
 * later lies beyond them). */
uint64_t mproc__ring_ready(const mproc__ringio *r);

/* The frame of len bytes (header included) at the tail is read in pieces
 * from now on: a cut inside it ends the wait with MPROC__RING_CUT. */
void mproc__ring_frame_begin(mproc__ringio *r, uint64_t len);

/* The frame being read in pieces is done (read whole, or dropped). */
void mproc__ring_frame_end(mproc__ringio *r);

/* After MPROC__RING_CUT: consumes what was published of the cut frame
 * and ends it. 0, or MPROC_EPROTO for a cut position that makes no
 * sense. */
int mproc__ring_skip_cut(mproc__ringio *r);

/* The receiver is between frames (at a header, none being read in
 * pieces): a cut at or before the tail is handled, which it tells the
 * senders (cut_seen), so that one waiting to cut again goes on. Two
 * loads of the receiver's own line when there is nothing new. */
void mproc__ring_between_frames(mproc__ringio *r);

/* Whether the frame being read in pieces was cut (a look, no wait). */
bool mproc__ring_frame_cut(const mproc__ringio *r);

/* For a frame of len bytes (header included) at the tail, of which only
 * the header was looked at: when it was cut, or was left begun by a
 * sender that gave up (the lock free) or, with dead, one that is gone
 * (a look at /proc: for a frame about to be reported), the receiver cuts
 * it as a bystander, drops it as mproc__ring_skip_cut (1); else 0;
 * MPROC_EPROTO as there. So that a frame that will never end is not
 * reported by its size or kind. */
int mproc__ring_drop_if_cut(mproc__ringio *r, uint64_t len, bool dead);

/* When the senders' lock is held by a thread that no longer exists:
 * takes it over (a frame it was inside is then cut, when the receiver has
 * passed the last cut; else the next sender cuts it) and lets it go (true
 * then). For a receiver that has slept a while with nothing coming. (A
 * dead holder whose thread id was reused is left to the next sender, whose
 * acquire also checks the start time.) */
bool mproc__ring_recover(mproc__ringio *r);

/* How many sleeps of a receive in this process ended by their slice with
 * a wake-up lost: a sender had published after the receiver armed, was
 * done, and never saw the arm (so never rang). The ordering of publish
 * and arm (docs/conn.md, "Waking") makes that impossible; tests check it
 * stays 0. */
uint64_t mproc__ring_rescued(void);

/* Test hook: how long a receiver in this process spins for data before it
 * arms the doorbell and sleeps, in ns (0: it arms at once; negative: the
 * default, 10 us). */
void mproc__ring_set_recv_spin(int64_t ns);

/* Copies n readable bytes starting off bytes past the tail. */
void mproc__ring_copy(mproc__ringio *r, uint64_t off, void *dst, size_t n);

/* Consumes n bytes and wakes a sender waiting for space. */
void mproc__ring_consume(mproc__ringio *r, uint64_t n);

/* Without waiting: true when bytes are readable or every sender is gone;
 * otherwise arms the doorbell (so the fd becomes readable when a message
 * comes) and looks once more. */
bool mproc__ring_arm(mproc__ringio *r);

/* Reads the doorbell bytes there are without blocking, keeping fd tokens
 * and noting EOF. 0 or MPROC_EPROTO (more fds on one token than may be). */
int mproc__ring_drain(mproc__ringio *r);

/* The fds of the frame numbered seq, which went ahead of it on the
 * doorbell socket: tokens with a lower number (left by a sender that died
 * before publishing its frame) are closed on the way. 0 and fds[0 .. *n),
 * or MPROC_EPROTO (the token is not there). */
int mproc__ring_take_fds(mproc__ringio *r, uint64_t seq,
                         int fds[MPROC__IO_MAX_PASS], int *n);

/* For a receiving end that found garbage: the direction is torn for good,
 * so senders (also one sleeping for room) get MPROC_EBROKEN, or
 * MPROC_ECLOSED once the kernel says no receiver is left (a duplex
 * receiver shuts its socket down as well). */
void mproc__ring_reader_broke(mproc__ringio *r);

/* For a receiving end that closes: the next send rings the doorbell, so
 * its sender learns at once whether any reader is left. */
void mproc__ring_reader_closing(mproc__ringio *r);

#endif
