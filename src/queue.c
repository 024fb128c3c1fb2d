/*
 * Queue, JoinableQueue and SimpleQueue: a ring of records in a shared
 * region with a robust producers' lock and a robust consumers' lock, so
 * one producer and one consumer run in parallel and any process may die at
 * any instruction. The layout, the record format and the recovery rules are
 * in docs/queue.md; the death rules callers see are in mproc/queue.h.
 */
#include "mproc/queue.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/lockcore.h"
#include "internal/pidlock.h"
#include "internal/records.h"
#include "internal/region.h"
#include "internal/ring.h"
#include "internal/spin.h"
#include "internal/waitword.h"
#include "os/os.h"
#include "os/task.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the futex words are the low halves of 64-bit words: little-endian only"
#endif

#define Q_MAGIC 0x5545514du /* "MQEU" */
#define Q_VERSION 2u
#define Q_JOINABLE 0x1u
#define Q_NOSTREAM 0x2u
#define Q_KNOWN_FLAGS (Q_JOINABLE | Q_NOSTREAM)
#define SLOTS_DEFAULT 64u
#define SLOTS_MAX 4096u

#define BORROW_NONE UINT64_MAX

typedef struct qslot {
    _Atomic uint32_t pid;         /* the owner process; 0: free */
    _Atomic uint32_t extra;       /* 1: a borrow of another handle of pid's */
    _Atomic uint64_t start;       /* its start time (0: unknown) */
    _Atomic uint64_t borrow;      /* BORROW_NONE, or the borrowed position */
    _Atomic uint32_t outstanding; /* tasks it got and did not mark done,
                                     TAKING while a take is under way */
    _Atomic uint32_t take_cnt;    /* TAKING: rd's count before that take */
} qslot;

/* In a slot's outstanding: its process is taking a message (under clock)
 * and has not yet counted it; see take_begin. */
#define TAKING 0x80000000u
/* In a slot's outstanding: the change that dlock's holder journaled for
 * this slot is made (see replay). */
#define JOURNALED 0x40000000u
#define TASKS(o) ((o) & ~(TAKING | JOURNALED))

/* The shared layout (docs/queue.md): the constants, the ring's words, the
 * JoinableQueue's and the slots. The ring's head and rd carry message
 * counters beside positions, so qsize is exact whatever instruction a
 * process dies at. Each group of words that one side writes sits on a
 * 128-byte line of its own; the padding is explicit (not alignas) because
 * the layout starts 64 bytes into its region, so the struct may ask for
 * no more than 8-byte alignment. */
typedef struct qshared {
    uint32_t magic, version;
    uint32_t cap, maxsize, flags, nslots;
    uint64_t data_off; /* from the start of this struct */
    unsigned char pad0[128 - 32];
    /* The ring of records (internal/records.h), offsets 128 to 895. */
    mproc__rec_shared ring;
    /* JoinableQueue. */
    _Atomic uint32_t done; /* task_done calls, modulo 2^32 */
    _Atomic uint32_t lost; /* tasks written off */
    _Atomic uint32_t join_wait;
    _Atomic uint32_t join_seq;
    mproc__lockword dlock; /* done, lost and the slots' task counts */
    /* The change dlock's holder is making (see replay). */
    _Atomic uint32_t j_slot; /* slot index + 1; J_NOSLOT; 0: none */
    _Atomic uint32_t j_kind; /* J_DONE or J_SETTLE */
    _Atomic uint32_t j_from; /* done before it */
    _Atomic uint32_t j_lost; /* lost before it */
    _Atomic uint32_t j_k;    /* J_SETTLE: tasks written off */
    _Atomic uint32_t j_dec;  /* J_DONE: 1 when the slot's count drops */
    unsigned char pad7[1024 - 944 - 24];
    qslot slots[];
} qshared;

_Static_assert(sizeof(qslot) == 32, "slot");
_Static_assert(offsetof(qshared, ring) == 128, "queue layout");
_Static_assert(offsetof(qshared, done) == 896, "queue layout");
_Static_assert(offsetof(qshared, dlock) == 912, "queue layout");
_Static_assert(offsetof(qshared, j_slot) == 944, "queue layout");
_Static_assert(offsetof(qshared, slots) == 1024, "queue layout");
_Static_assert(alignof(qshared) <= MPROC__REGION_HDR, "queue layout");

/* Per-handle state that lives across calls (a reservation, a borrowed
 * message, a streamed message half read), valid only in owner_pid. */
struct mproc_queue {
    mproc__region region;
    qshared *s;
    /* The ring, with the shared constants as checked at create/open (never
     * read from shared memory again) and what this handle last saw of the
     * other side. */
    mproc__rec_ring ring;
    uint32_t nslots;
    bool joinable, no_stream;
    /* This process's slot (-1: none yet), valid in slot_pid only. */
    int slot;
    pid_t slot_pid;
    uint32_t lost_seen;
    /* A reservation: the producers' lock is held by resv_tid. */
    bool resv;
    pid_t resv_pid;
    uint32_t resv_pos, resv_max; /* record position; payload room */
    uint64_t resv_head;          /* head when reserved */
    /* A borrowed message. */
    bool borrowed;
    pid_t borrow_pid;
    uint32_t borrow_pos;
    int borrow_slot;   /* the slot that names it */
    bool borrow_extra; /* that slot is an extra one, freed at release */
    /* A streamed message half read by thread st_tid of process st_pid
     * (st_tid 0: none), which keeps the consumers' lock meanwhile. */
    _Atomic pid_t st_tid;
    pid_t st_pid;
    unsigned char *st_buf; /* owned: total bytes */
    uint64_t st_total, st_got;
    /* The pollable fd (see mproc_queue_fd), in fd_pid only. */
    _Atomic uint32_t fd_mu; /* a pidlock: safe across fork */
    int fd;
    pid_t fd_pid;
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint32_t up;
};

/* A SimpleQueue handle is a Queue handle that offers fewer calls. */
struct mproc_simple_queue {
    mproc_queue q;
};

/* ----------------------------------------------------------- helpers */

static pid_t self_pid(void)
{
    return mproc__os_self_pid();
}
static void wake_joiners(qshared *s)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&s->join_wait, memory_order_relaxed) != 0 &&
        atomic_exchange(&s->join_wait, 0) != 0) {
        atomic_fetch_add(&s->join_seq, 1);
        mproc__rec_wake_all(&s->join_seq);
    }
}
/* ------------------------------------------------------------- slots */

static int proc_start(pid_t pid, uint64_t *start)
{
    return mproc__os_task_start(pid, start);
}

/* In a slot's pid while a reaper settles it: the reaper's pid with this
 * bit (pids are below 2^22). */
#define SLOT_SETTLING 0x80000000u

static bool slot_dead(qslot *sl, uint32_t *pid_out)
{
    uint32_t pid = atomic_load(&sl->pid);
    *pid_out = pid;
    if (pid == 0)
        return false;
    /* Being settled: dead only if its reaper died at it. */
    if ((pid & SLOT_SETTLING) != 0)
        return mproc__os_task_alive((pid_t)(pid & ~SLOT_SETTLING), 0) == 0;
    /* start is read after pid; a slot that went to another process and
     * back to pid meanwhile gives another's (mproc__os_holder_gone). */
    return mproc__os_holder_gone(&sl->pid, pid, (pid_t)pid, &sl->start,
                                 atomic_load(&sl->start));
}

/* -------------------------------------------------- task accounting */

/* done, lost and the slots' task counts change together, under dlock, by
 * a holder that first writes what it is about to do (the journal: j_*);
 * the next holder, taking the lock over from one that died inside, makes
 * the rest of that change (replay). So a worker killed inside task_done,
 * or a reaper killed while it writes a dead slot's tasks off, never
 * leaves one task counted twice or not at all. dlock is the innermost
 * lock: nothing is taken under it. */
#define J_DONE 1u   /* done + 1; the slot's count - 1 when j_dec */
#define J_SETTLE 2u /* the slot's count to 0; done and lost + j_k */
#define J_NOSLOT UINT32_MAX

/* Under dlock, taken over from a dead holder: finishes its change. Its
 * slot's own part shows by JOURNALED (made or not); done and lost are
 * written only under dlock, so each still holds its value from before the
 * change (j_from, j_lost) or its value after. */
static void replay(mproc_queue *q)
{
    qshared *s = q->s;
    uint32_t j = atomic_load(&s->j_slot);
    qslot *sl = j != J_NOSLOT && j - 1 < q->nslots ? &s->slots[j - 1] : NULL;
    bool made = sl != NULL && (atomic_load(&sl->outstanding) & JOURNALED) != 0;
    uint32_t from = atomic_load(&s->j_from), lost = atomic_load(&s->j_lost);
    if (j == 0) {
        /* Nothing under way, or a holder that died after its change, at
         * most leaving its slot's mark (journal_end). */
    } else if (atomic_load(&s->j_kind) == J_DONE) {
        if (sl != NULL && !made && atomic_load(&s->j_dec) != 0) {
            uint32_t o = atomic_load(&sl->outstanding);
            while (TASKS(o) > 0 &&
                   !atomic_compare_exchange_weak(&sl->outstanding, &o, o - 1)) {
            }
        }
        if (atomic_load(&s->done) == from)
            atomic_store(&s->done, from + 1);
    } else if (made) { /* J_SETTLE: the count was taken */
        uint32_t k = atomic_load(&s->j_k);
        if (atomic_load(&s->lost) == lost)
            atomic_store(&s->lost, lost + k);
        if (atomic_load(&s->done) == from)
            atomic_store(&s->done, from + k);
    }
    atomic_store(&s->j_slot, 0);
    for (uint32_t i = 0; i < q->nslots; i++)
        atomic_fetch_and(&s->slots[i].outstanding, ~JOURNALED);
    wake_joiners(s);
}

static int dlock_take(mproc_queue *q)
{
    mproc__deadline forever = mproc__deadline_forever();
    int rc = mproc__lockword_acquire_fast(&q->s->dlock, &forever);
    if (rc == MPROC_EOWNERDEAD) {
        replay(q);
        mproc__lockword_consistent(&q->s->dlock);
        rc = 0;
    }
    return rc == MPROC_ENOTRECOVERABLE ? MPROC_EPROTO : rc;
}

static void dlock_drop(mproc_queue *q)
{
    mproc__lockword_release_fast(&q->s->dlock);
}

/* Under dlock, before a change: what it is (the slot last, which arms
 * it). */
static void journal(qshared *s, uint32_t kind, qslot *sl)
{
    atomic_store(&s->j_kind, kind);
    atomic_store(&s->j_from, atomic_load(&s->done));
    atomic_store(&s->j_lost, atomic_load(&s->lost));
    atomic_store(&s->j_slot,
                 sl == NULL ? J_NOSLOT : (uint32_t)(sl - s->slots) + 1u);
}

/* The change is made: disarmed first, so that a mark left on the slot by
 * a holder that dies between the two is never read as part of a change
 * (replay clears it). */
static void journal_end(qshared *s, qslot *sl)
{
    atomic_store(&s->j_slot, 0);
    if (sl != NULL)
        atomic_fetch_and(&sl->outstanding, ~JOURNALED);
}

/* Counts one task done, and one fewer for slot sl (NULL: none) when it
 * counts any: MPROC_EOVERRELEASE when every task put is done already. */
static int count_done(mproc_queue *q, qslot *sl)
{
    qshared *s = q->s;
    int rc = dlock_take(q);
    if (rc < 0)
        return rc;
    uint32_t dn = atomic_load(&s->done);
    if (mproc__rec_cnt(atomic_load(&s->ring.head)) == dn) {
        dlock_drop(q);
        return MPROC_EOVERRELEASE;
    }
    uint32_t o = sl != NULL ? atomic_load(&sl->outstanding) : 0;
    /* Only this process raises its count meanwhile (a take), and only a
     * holder of dlock lowers it: a count above 0 stays so. */
    bool dec = TASKS(o) > 0;
    atomic_store(&s->j_dec, dec);
    journal(s, J_DONE, sl);
    while (dec && !atomic_compare_exchange_weak(&sl->outstanding, &o,
                                                (o - 1) | JOURNALED)) {
    }
    atomic_store(&s->done, dn + 1);
    journal_end(s, sl);
    dlock_drop(q);
    if (mproc__rec_cnt(atomic_load(&s->ring.head)) == dn + 1)
        wake_joiners(s);
    return 0;
}

/* Settles the slot of a dead process that this caller now owns (its pid
 * was changed from the dead one's by compare-and-swap): its borrowed
 * record is freed (the message is lost: its mark now holds nothing), its
 * tasks are written off as done (never more than are unfinished) and
 * counted in lost. Nothing is written into the ring: the position in a
 * dead slot may be stale (a borrower killed before it took the record,
 * which went to the next consumer) or scribbled on. */
static void settle_dead(mproc_queue *q, qslot *sl)
{
    atomic_store(&sl->borrow, BORROW_NONE);
    if (!q->joinable || dlock_take(q) < 0)
        return;
    qshared *s = q->s;
    journal(s, J_SETTLE, sl);
    uint32_t from = atomic_load(&s->j_from), k;
    for (;;) {
        /* A take cut short (see take_begin): rd read before the count is
         * taken. If that still finds TAKING, nobody has taken the
         * consumers' lock over from the dead process yet (that resolves
         * TAKING first), so rd is as it left it. */
        uint64_t r = atomic_load(&s->ring.rd);
        uint32_t o = atomic_load(&sl->outstanding);
        uint32_t n = TASKS(o);
        if ((o & TAKING) != 0 &&
            mproc__rec_cnt(r) != atomic_load(&sl->take_cnt))
            n++;
        uint32_t unfinished = mproc__rec_cnt(atomic_load(&s->ring.head)) - from;
        k = n < unfinished ? n : unfinished;
        atomic_store(&s->j_k, k);
        if (atomic_compare_exchange_strong(&sl->outstanding, &o, JOURNALED))
            break;
    }
    atomic_store(&s->lost, atomic_load(&s->j_lost) + k);
    atomic_store(&s->done, from + k);
    journal_end(s, sl);
    dlock_drop(q);
    if (k > 0)
        wake_joiners(s);
}

/* Frees the slots of dead processes. True when one was freed. */
static bool reap_slots(mproc_queue *q)
{
    bool any = false;
    for (uint32_t i = 0; i < q->nslots; i++) {
        qslot *sl = &q->s->slots[i];
        uint32_t pid;
        if (!slot_dead(sl, &pid))
            continue;
        /* Claimed by us for the time of the settling, with a marker that
         * no slot owner has. Not our plain pid: beside the dead one's
         * start time it would look dead, and a second reaper would settle
         * the slot again after we freed it and someone else took it
         * (writing off that live process's tasks). */
        uint32_t me = (uint32_t)self_pid() | SLOT_SETTLING;
        if (!atomic_compare_exchange_strong(&sl->pid, &pid, me))
            continue;
        settle_dead(q, sl);
        atomic_store(&sl->start, 0);
        atomic_store(&sl->extra, 0);
        atomic_store(&sl->pid, 0);
        any = true;
    }
    return any;
}

/* Whether a live reaper is settling a slot (it will be free in a moment). */
static bool settling_now(mproc_queue *q)
{
    for (uint32_t i = 0; i < q->nslots; i++) {
        uint32_t pid;
        if ((atomic_load(&q->s->slots[i].pid) & SLOT_SETTLING) != 0 &&
            !slot_dead(&q->s->slots[i], &pid))
            return true;
    }
    return false;
}

/* How long a claim waits for a slot that a live reaper settles: a few
 * stores, unless the reaper is preempted in the middle of them. */
#define SETTLING_WAIT_NS 1000000000

/* Claims a free slot for this process (start: its start time), reaping
 * dead processes' slots when none is free: its index, or MPROC_EAGAIN
 * when every slot belongs to a live process. A slot another process is
 * settling at the time counts as free: the claim waits for it, as it
 * would otherwise fail beside a dead process's place; and it looks once
 * more before it gives up, for slots that such a reaper (having won the
 * race for them) freed since its scan. */
static int claim_slot(mproc_queue *q, uint64_t start, bool extra)
{
    uint32_t me = (uint32_t)self_pid();
    int64_t give_up = 0;
    bool last_look = false;
    for (;;) {
        for (uint32_t i = 0; i < q->nslots; i++) {
            qslot *sl = &q->s->slots[i];
            uint32_t free_pid = 0;
            if (atomic_load_explicit(&sl->pid, memory_order_relaxed) != 0)
                continue;
            if (atomic_compare_exchange_strong(&sl->pid, &free_pid, me)) {
                atomic_store(&sl->extra, extra ? 1u : 0u);
                atomic_store(&sl->borrow, BORROW_NONE);
                atomic_store(&sl->outstanding, 0);
                atomic_store(&sl->start, start);
                return (int)i;
            }
        }
        if (reap_slots(q))
            continue;
        if (!settling_now(q)) {
            if (last_look)
                break;
            last_look = true;
            continue;
        }
        last_look = false;
        int64_t now = mproc__os_monotonic_ns();
        if (give_up == 0)
            give_up = now + SETTLING_WAIT_NS;
        else if (now > give_up)
            break;
        sched_yield();
    }
    return MPROC_EAGAIN;
}

/* This process's slot, claimed on first use and shared by its handles
 * (tasks count per process): 0, or MPROC_EAGAIN when every slot belongs
 * to a live process. */
static int my_slot(mproc_queue *q, qslot **out)
{
    pid_t me = self_pid();
    if (q->slot >= 0 && q->slot_pid == me) {
        *out = &q->s->slots[q->slot];
        return 0;
    }
    uint64_t start = 0;
    (void)proc_start(me, &start);
    /* One slot per process: another handle of ours may have claimed it. */
    int idx = -1;
    for (uint32_t i = 0; i < q->nslots && idx < 0; i++) {
        qslot *sl = &q->s->slots[i];
        if (atomic_load(&sl->pid) == (uint32_t)me &&
            atomic_load(&sl->start) == start && atomic_load(&sl->extra) == 0)
            idx = (int)i;
    }
    if (idx < 0 && (idx = claim_slot(q, start, false)) < 0)
        return idx;
    q->slot = idx;
    q->slot_pid = me;
    *out = &q->s->slots[idx];
    return 0;
}

/* Frees an extra slot of this process (its borrow released). */
static void drop_extra_slot(qslot *sl)
{
    atomic_store(&sl->start, 0);
    atomic_store(&sl->extra, 0);
    atomic_store(&sl->pid, 0);
}

/* ------------------------------------------------------------ hooks */

/* The ring's held hook: a record marked borrowed holds its memory only
 * while the slot its owner field names (the borrower's) names the record
 * too: a borrower killed inside its release, or a dead one whose slot was
 * settled, leaves a mark that holds nothing. */
static bool borrow_held(void *arg, uint32_t pos, const mproc__rec *rec)
{
    mproc_queue *q = arg;
    uint32_t i = rec->owner;
    if (i >= q->nslots)
        return false; /* scribbled on: holds nothing */
    return atomic_load(&q->s->slots[i].borrow) == (uint64_t)pos;
}

static bool reap_hook(void *arg)
{
    return reap_slots(arg);
}

static void resolve_take(void *arg, uint64_t r);

static const mproc__rec_hooks queue_hooks = {
    .held = borrow_held,
    .reap = reap_hook,
};
static const mproc__rec_hooks joinable_hooks = {
    .held = borrow_held,
    .reap = reap_hook,
    .consumer_died = resolve_take,
};

/* ---------------------------------------------------------- producers */

static int check_put(mproc_queue *q, const void *buf, size_t len,
                     int64_t timeout_ms)
{
    if (q == NULL || (buf == NULL && len > 0) || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (q->resv && q->resv_pid == self_pid())
        return MPROC_EINVAL;
    if (len > mproc__rec_inplace_max(&q->ring) && q->no_stream)
        return MPROC_EMSGSIZE;
    return 0;
}

static int put_one(mproc_queue *q, const void *buf, size_t len,
                   const mproc__deadline *d)
{
    if (len <= mproc__rec_inplace_max(&q->ring))
        return mproc__rec_put_whole(&q->ring, MPROC__REC_MSG, buf, len, d);
    return mproc__rec_put_stream(&q->ring, buf, len, d);
}

int mproc_queue_put(mproc_queue *q, const void *buf, size_t len,
                    int64_t timeout_ms)
{
    int rc = check_put(q, buf, len, timeout_ms);
    if (rc < 0)
        return rc;
    mproc__deadline d;
    if ((rc = mproc__deadline_init(&d, timeout_ms)) < 0)
        return rc;
    if ((rc = mproc__rec_plock(&q->ring, &d)) < 0)
        return rc;
    rc = put_one(q, buf, len, &d);
    mproc__rec_punlock(&q->ring);
    if (rc == 0)
        mproc__rec_wake_consumers(&q->ring);
    return rc;
}

int mproc_queue_put_batch(mproc_queue *q, const mproc_queue_msg *msgs, size_t n,
                          size_t *sent, int64_t timeout_ms)
{
    if (sent != NULL)
        *sent = 0;
    if (q == NULL || (msgs == NULL && n > 0) || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int rc = check_put(q, msgs[i].data, msgs[i].len, timeout_ms);
        if (rc < 0)
            return rc;
    }
    if (n == 0)
        return 0;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if ((rc = mproc__rec_plock(&q->ring, &d)) < 0)
        return rc;
    size_t done = 0;
    _Static_assert(sizeof(mproc_queue_msg) == sizeof(mproc__rec_msg) &&
                       offsetof(mproc_queue_msg, len) ==
                           offsetof(mproc__rec_msg, len),
                   "a batch's messages are the ring's");
    rc = mproc__rec_put_batch(&q->ring, (const mproc__rec_msg *)msgs, n, &d,
                              &done);
    mproc__rec_punlock(&q->ring);
    if (done > 0)
        mproc__rec_wake_consumers(&q->ring);
    if (sent != NULL)
        *sent = done;
    return rc;
}

int mproc_queue_reserve(mproc_queue *q, void **buf, size_t len,
                        int64_t timeout_ms)
{
    if (q == NULL || buf == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (q->resv && q->resv_pid == self_pid())
        return MPROC_EINVAL;
    if (len > mproc__rec_inplace_max(&q->ring))
        return MPROC_EMSGSIZE;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if ((rc = mproc__rec_plock(&q->ring, &d)) < 0)
        return rc;
    uint32_t pos;
    rc = mproc__rec_place(&q->ring, MPROC__REC_HDR + mproc__rec_round8(len),
                          MPROC__REC_ROOM_SLOT, &d, &pos);
    if (rc < 0) {
        mproc__rec_punlock(&q->ring);
        return rc;
    }
    q->resv = true;
    q->resv_pid = self_pid();
    q->resv_pos = pos;
    q->resv_max = (uint32_t)len;
    *buf = mproc__rec_at(&q->ring, pos) + 1;
    return 0;
}

/* A reservation this process holds (a forked child's copy holds none). */
static bool have_resv(mproc_queue *q)
{
    if (!q->resv)
        return false;
    if (q->resv_pid != self_pid()) {
        q->resv = false;
        return false;
    }
    return true;
}

int mproc_queue_commit(mproc_queue *q, size_t len)
{
    if (q == NULL)
        return MPROC_EINVAL;
    if (!have_resv(q))
        return MPROC_ESTATE;
    if (len > q->resv_max)
        return MPROC_EINVAL;
    qshared *s = q->s;
    q->resv = false;
    if (atomic_load(&s->ring.closed) != 0) {
        mproc__rec_punlock(&q->ring);
        return MPROC_ECLOSED;
    }
    mproc__rec_put_hdr(&q->ring, q->resv_pos, MPROC__REC_MSG, (uint32_t)len);
    mproc__rec_publish(
        &q->ring, q->resv_pos + MPROC__REC_HDR + mproc__rec_round8(len), 1);
    mproc__rec_punlock(&q->ring);
    mproc__rec_wake_consumers(&q->ring);
    return 0;
}

int mproc_queue_cancel(mproc_queue *q)
{
    if (q == NULL)
        return MPROC_EINVAL;
    if (!have_resv(q))
        return MPROC_ESTATE;
    q->resv = false;
    mproc__rec_punlock(&q->ring);
    return 0;
}

/* ---------------------------------------------------------- consumers */

/* After the consumers' lock was taken over from a dead holder, before rd
 * moves again: the take it had begun (take_begin) is counted as its task
 * if rd shows it went through, else forgotten (the message is still
 * there, and its task goes with it to the next consumer). Only a holder
 * of the lock sets TAKING, so the mark found is the dead holder's. */
static void resolve_take(void *arg, uint64_t r)
{
    mproc_queue *q = arg;
    for (uint32_t i = 0; i < q->nslots; i++) {
        qslot *sl = &q->s->slots[i];
        uint32_t o = atomic_load(&sl->outstanding);
        while ((o & TAKING) != 0) {
            uint32_t n = o & ~TAKING; /* keeps JOURNALED */
            if (mproc__rec_cnt(r) != atomic_load(&sl->take_cnt))
                n++;
            if (atomic_compare_exchange_weak(&sl->outstanding, &o, n))
                break;
        }
    }
}

/* For a JoinableQueue, the task of a take is counted around the store
 * that publishes the take (consume), under clock: take_begin marks this
 * process's slot TAKING with rd's count before it, take_end counts the
 * task and clears the mark in one step. A process killed between the two
 * leaves the mark, and whoever settles it (resolve_take, settle_dead)
 * compares that count with rd's: moved on, the message went with the dead
 * process (a task to write off); not, it is still in the queue and its
 * task goes to the next consumer. *out is the slot (NULL: not joinable). */
static int take_begin(mproc_queue *q, qslot **out)
{
    *out = NULL;
    if (!q->joinable)
        return 0;
    qslot *sl;
    int rc = my_slot(q, &sl);
    if (rc < 0)
        return rc;
    atomic_store(&sl->take_cnt, mproc__rec_cnt(atomic_load(&q->s->ring.rd)));
    atomic_fetch_or(&sl->outstanding, TAKING);
    *out = sl;
    return 0;
}

static void take_end(qslot *sl)
{
    /* (o | TAKING) + 1 - TAKING, modulo 2^32: o + 1. */
    if (sl != NULL)
        atomic_fetch_add(&sl->outstanding, 1u - TAKING);
}

/* One task done by this process (NULL when it holds no slot: the count
 * of none drops). The slot is found before dlock is taken, as claiming
 * one may settle dead slots, which takes dlock. */
static int task_done(mproc_queue *q)
{
    qslot *sl;
    if (my_slot(q, &sl) < 0)
        sl = NULL;
    return count_done(q, sl);
}

/* Records that this thread keeps a half-read stream (and the consumers'
 * lock) in the handle; stream_forget undoes it. */
static void stream_keep(mproc_queue *q)
{
    q->st_pid = self_pid();
    atomic_store(&q->st_tid, mproc__os_self_tid());
}

static void stream_forget(mproc_queue *q)
{
    atomic_store(&q->st_tid, 0);
}

/* A streamed message this thread was reading when an earlier get timed
 * out: true when it holds one (and the consumers' lock with it). Another
 * thread's is not ours to finish: it holds the consumers' lock, and this
 * thread waits for that like any other consumer. */
static bool have_stream(mproc_queue *q)
{
    pid_t tid = atomic_load(&q->st_tid);
    if (tid == 0)
        return false;
    if (q->st_pid != self_pid()) { /* a forked child's copy */
        stream_forget(q);
        q->st_buf = NULL; /* the parent's; not freed here */
        return false;
    }
    return tid == mproc__os_self_tid();
}

/* The stream was dropped (aborted): the task it counted is done. */
static void stream_dropped(mproc_queue *q)
{
    if (q->joinable)
        (void)task_done(q);
}

/* How a get delivers a message. */
typedef struct sink {
    void *buf;   /* caller's buffer (alloc: NULL) */
    size_t cap;  /* its size, or the guard for alloc */
    bool alloc;  /* allocate *out */
    void **out;  /* alloc: the buffer */
    size_t *len; /* the size */
} sink;

/* Finishes a resumed stream into k. Under clock (held since the
 * timeout). */
static int resume_stream(mproc_queue *q, sink *k, const mproc__deadline *d)
{
    int rc =
        mproc__rec_read_stream(&q->ring, q->st_buf, q->st_total, &q->st_got, d);
    if (rc == MPROC_ETIMEDOUT)
        return rc; /* still ours, lock still held */
    unsigned char *b = q->st_buf;
    uint64_t total = q->st_total;
    stream_forget(q);
    q->st_buf = NULL;
    if (rc == MPROC_ECANCELED) {
        free(b);
        stream_dropped(q);
        return rc;
    }
    if (rc < 0) {
        free(b);
        mproc__rec_cunlock(&q->ring);
        return rc;
    }
    *k->len = (size_t)total;
    if (total > k->cap) {
        /* Larger than the buffer or get_alloc's guard: kept for a call
         * that takes it. */
        q->st_buf = b;
        q->st_got = total;
        stream_keep(q);
        return MPROC_EMSGSIZE;
    }
    if (k->alloc) {
        *k->out = b; /* allocated with room for the NUL */
        b[total] = 0;
    } else {
        memcpy(k->buf, b, (size_t)total);
        free(b);
    }
    mproc__rec_cunlock(&q->ring);
    return 0;
}

/* The one get: waits for a message and delivers it into k. */
static int get_one(mproc_queue *q, sink *k, int64_t timeout_ms)
{
    if (q == NULL || k->len == NULL || timeout_ms < MPROC_FOREVER ||
        (!k->alloc && k->buf == NULL && k->cap > 0))
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if (have_stream(q)) {
        rc = resume_stream(q, k, &d);
        if (rc != MPROC_ECANCELED)
            return rc;
        /* The message was dropped: go on with the next (lock held). */
    } else if ((rc = mproc__rec_clock(&q->ring, &d)) < 0) {
        return rc;
    }
    for (;;) {
        mproc__rec_found f;
        rc = mproc__rec_next(&q->ring, &d, &f);
        if (rc < 0)
            break;
        if (f.kind == MPROC__REC_FDS) {
            rc = MPROC_EPROTO; /* a pipe's, never a queue's */
            break;
        }
        if (f.kind == MPROC__REC_MSG) {
            *k->len = f.len;
            unsigned char *dst;
            if (k->alloc) {
                if (f.len > k->cap) {
                    rc = MPROC_EMSGSIZE;
                    break;
                }
                dst = malloc((size_t)f.len + 1);
                if (dst == NULL) {
                    rc = MPROC_ENOMEM;
                    break;
                }
                dst[f.len] = 0;
            } else {
                if (f.len > k->cap) {
                    rc = MPROC_EMSGSIZE;
                    break;
                }
                dst = k->buf;
            }
            qslot *ts;
            if ((rc = take_begin(q, &ts)) < 0) {
                if (k->alloc)
                    free(dst);
                break;
            }
            if (f.len > 0)
                memcpy(dst, mproc__rec_at(&q->ring, f.pos) + 1, f.len);
            mproc__rec_consume(&q->ring, f.size, 1);
            take_end(ts);
            if (k->alloc)
                *k->out = dst;
            break;
        }
        /* A streamed message. */
        uint64_t total = mproc__rec_stream_total(&q->ring, &f);
        if (total > MPROC__FRAME_MAX || total < f.len - 8u) {
            rc = MPROC_EPROTO;
            break;
        }
        *k->len = (size_t)total;
        if (total > k->cap) {
            rc = MPROC_EMSGSIZE;
            break;
        }
        unsigned char *dst = k->alloc ? malloc((size_t)total + 1) : k->buf;
        if (dst == NULL) {
            rc = MPROC_ENOMEM;
            break;
        }
        qslot *ts;
        if ((rc = take_begin(q, &ts)) < 0) {
            if (k->alloc)
                free(dst);
            break;
        }
        uint64_t got = f.len - 8u;
        memcpy(dst, (unsigned char *)(mproc__rec_at(&q->ring, f.pos) + 1) + 8,
               (size_t)got);
        mproc__rec_consume(&q->ring, f.size, 1);
        take_end(ts);
        mproc__rec_lazy_free(&q->ring);
        mproc__rec_wake_producer(&q->ring);
        rc = mproc__rec_read_stream(&q->ring, dst, total, &got, &d);
        if (rc == 0) {
            if (k->alloc) {
                dst[total] = 0;
                *k->out = dst;
            }
            break;
        }
        if (rc == MPROC_ETIMEDOUT) {
            /* Keep what came, and the lock, for the next get. */
            unsigned char *keep = dst;
            if (!k->alloc) {
                keep = malloc((size_t)total + 1);
                if (keep == NULL) {
                    /* Nowhere to keep it: the message is lost. */
                    stream_dropped(q);
                    rc = MPROC_ENOMEM;
                    break;
                }
                memcpy(keep, dst, (size_t)got);
            }
            q->st_buf = keep;
            q->st_total = total;
            q->st_got = got;
            stream_keep(q);
            return MPROC_ETIMEDOUT;
        }
        if (k->alloc)
            free(dst);
        if (rc == MPROC_ECANCELED) {
            stream_dropped(q);
            continue; /* dropped whole: wait for the next message */
        }
        break;
    }
    if (rc == 0 || rc == MPROC_ETIMEDOUT || rc == MPROC_ECLOSED ||
        rc == MPROC_EMSGSIZE || rc == MPROC_ENOMEM || rc == MPROC_EAGAIN ||
        rc == MPROC_EPROTO) {
        mproc__rec_lazy_free(&q->ring);
    }
    mproc__rec_cunlock(&q->ring);
    if (rc == 0)
        mproc__rec_wake_after_take(&q->ring);
    return rc;
}

int mproc_queue_get(mproc_queue *q, void *buf, size_t cap, size_t *len,
                    int64_t timeout_ms)
{
    sink k = {buf, cap, false, NULL, len};
    return get_one(q, &k, timeout_ms);
}

int mproc_queue_get_alloc(mproc_queue *q, void **out, size_t *len, size_t max,
                          int64_t timeout_ms)
{
    if (out == NULL)
        return MPROC_EINVAL;
    sink k = {NULL, max, true, out, len};
    return get_one(q, &k, timeout_ms);
}

int mproc_queue_get_batch(mproc_queue *q, void *buf, size_t cap, size_t *lens,
                          size_t n, size_t *got, int64_t timeout_ms)
{
    if (got != NULL)
        *got = 0;
    if (q == NULL || lens == NULL || got == NULL || n == 0 ||
        (buf == NULL && cap > 0) || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    /* The first as an ordinary get (it may wait, stream or resume). */
    int rc = mproc_queue_get(q, buf, cap, &lens[0], timeout_ms);
    if (rc < 0)
        return rc;
    size_t k = 1, used = lens[0];
    mproc__deadline now;
    mproc__deadline_init(&now, 0);
    if (n > 1 && mproc__rec_clock(&q->ring, &now) == 0) {
        qshared *s = q->s;
        uint32_t takes = 0;
        while (k < n) {
            uint32_t r = mproc__rec_pos(
                atomic_load_explicit(&s->ring.rd, memory_order_relaxed));
            uint32_t h = mproc__rec_pos(
                atomic_load_explicit(&s->ring.head, memory_order_acquire));
            if (h == r || !mproc__rec_span_ok(&q->ring, r, h))
                break;
            uint32_t kind, len;
            uint32_t size = mproc__rec_size(&q->ring, r, h - r, &kind, &len);
            if (size == 0 || kind == MPROC__REC_FIRST || kind == MPROC__REC_FDS)
                break;
            if (kind != MPROC__REC_MSG) {
                mproc__rec_consume(&q->ring, size, 0);
                continue;
            }
            qslot *ts;
            if (len > cap - used || take_begin(q, &ts) < 0)
                break;
            if (len > 0) /* buf may be NULL (cap 0) */
                memcpy((unsigned char *)buf + used,
                       mproc__rec_at(&q->ring, r) + 1, len);
            lens[k++] = len;
            used += len;
            mproc__rec_consume(&q->ring, size, 1);
            take_end(ts);
            takes++;
        }
        mproc__rec_lazy_free(&q->ring);
        mproc__rec_cunlock(&q->ring);
        if (takes > 0)
            mproc__rec_wake_after_take(&q->ring);
    }
    *got = k;
    return 0;
}

int mproc_queue_borrow(mproc_queue *q, const void **data, size_t *len,
                       int64_t timeout_ms)
{
    if (q == NULL || data == NULL || len == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (q->borrowed && q->borrow_pid == self_pid())
        return MPROC_EINVAL;
    q->borrowed = false;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if (have_stream(q))
        return MPROC_EINVAL; /* finish the streamed message first */
    qslot *sl;
    if ((rc = my_slot(q, &sl)) < 0)
        return rc;
    /* The process's slot names one borrowed message; another handle of
     * this process that holds one already (a thread's own handle) borrows
     * through an extra slot of its own, freed at its release. */
    int bidx = q->slot;
    bool extra = atomic_load(&sl->borrow) != BORROW_NONE;
    if (extra && (bidx = claim_slot(q, atomic_load(&sl->start), true)) < 0)
        return bidx;
    qslot *bs = &q->s->slots[bidx];
    if ((rc = mproc__rec_clock(&q->ring, &d)) < 0) {
        if (extra)
            drop_extra_slot(bs);
        return rc;
    }
    mproc__rec_found f;
    rc = mproc__rec_next(&q->ring, &d, &f);
    if (rc == 0 && f.kind == MPROC__REC_FDS)
        rc = MPROC_EPROTO;
    if (rc == 0 && f.kind == MPROC__REC_FIRST) {
        *len = (size_t)mproc__rec_stream_total(&q->ring, &f);
        rc = MPROC_EMSGSIZE;
    }
    qslot *ts = NULL;
    if (rc == 0)
        rc = take_begin(q, &ts);
    if (rc == 0) {
        mproc__rec *rec = mproc__rec_at(&q->ring, f.pos);
        /* Marked first: a consumer killed before it took the record leaves
         * a mark the next holder of the lock clears (mproc__rec_clock), and a
         * slot naming a record that went to someone else (settle_dead
         * leaves the ring alone; the owner field decides). */
        rec->owner = (uint16_t)bidx;
        atomic_store(&rec->state, MPROC__REC_BORROWED);
        atomic_store(&bs->borrow, f.pos);
        mproc__rec_consume(&q->ring, f.size, 1);
        take_end(ts);
        q->borrowed = true;
        q->borrow_pid = self_pid();
        q->borrow_pos = f.pos;
        q->borrow_slot = bidx;
        q->borrow_extra = extra;
        *data = rec + 1;
        *len = f.len;
    }
    mproc__rec_free(&q->ring, false);
    mproc__rec_cunlock(&q->ring);
    if (rc == 0)
        mproc__rec_wake_emptied(&q->ring);
    else if (extra)
        drop_extra_slot(bs);
    return rc;
}

int mproc_queue_release(mproc_queue *q)
{
    if (q == NULL)
        return MPROC_EINVAL;
    if (!q->borrowed || q->borrow_pid != self_pid()) {
        q->borrowed = false;
        return MPROC_ESTATE;
    }
    q->borrowed = false;
    qslot *sl = &q->s->slots[q->borrow_slot];
    uint64_t b = q->borrow_pos;
    /* The slot first, then the mark (a mark no slot names holds nothing:
     * borrow_held), so that a release cut anywhere frees the record. */
    if (atomic_compare_exchange_strong(&sl->borrow, &b, BORROW_NONE))
        atomic_store_explicit(&mproc__rec_at(&q->ring, q->borrow_pos)->state, 0,
                              memory_order_release);
    if (q->borrow_extra)
        drop_extra_slot(sl);
    mproc__rec_free(&q->ring, false);
    return 0;
}

/* ---------------------------------------------------------- joinable */

int mproc_queue_task_done(mproc_queue *q)
{
    if (q == NULL || !q->joinable)
        return MPROC_EINVAL;
    return task_done(q);
}

static int check_join(void *arg)
{
    (void)reap_slots(arg);
    return 0;
}

int mproc_queue_join(mproc_queue *q, int64_t timeout_ms)
{
    if (q == NULL || !q->joinable || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    qshared *s = q->s;
    for (;;) {
        uint32_t seq = atomic_load(&s->join_seq);
        if (mproc__rec_cnt(atomic_load(&s->ring.head)) ==
            atomic_load(&s->done)) {
            uint32_t lost = atomic_load(&s->lost);
            if (lost != q->lost_seen) {
                q->lost_seen = lost;
                return MPROC_EOWNERDEAD;
            }
            return 0;
        }
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        atomic_store(&s->join_wait, 1);
        if (mproc__rec_cnt(atomic_load(&s->ring.head)) == atomic_load(&s->done))
            continue;
        rc = mproc__waitword_sleep(&s->join_seq, seq, &d, check_join, q);
        if (rc < 0 && rc != MPROC_ETIMEDOUT)
            return rc;
    }
}

/* -------------------------------------------------------------- state */

int mproc_queue_qsize(mproc_queue *q, size_t *n)
{
    if (q == NULL || n == NULL)
        return MPROC_EINVAL;
    *n = mproc__rec_count(atomic_load(&q->s->ring.head),
                          atomic_load(&q->s->ring.rd));
    return 0;
}

int mproc_queue_empty(mproc_queue *q)
{
    size_t n;
    int rc = mproc_queue_qsize(q, &n);
    return rc < 0 ? rc : n == 0;
}

int mproc_queue_full(mproc_queue *q)
{
    size_t n;
    int rc = mproc_queue_qsize(q, &n);
    if (rc < 0)
        return rc;
    return q->ring.maxsize != 0 && n >= q->ring.maxsize;
}

size_t mproc_queue_max_inplace(mproc_queue *q)
{
    return q != NULL ? mproc__rec_inplace_max(&q->ring) : 0;
}

size_t mproc_queue_capacity(mproc_queue *q)
{
    return q != NULL ? q->ring.cap : 0;
}

size_t mproc_queue_maxsize(mproc_queue *q)
{
    return q != NULL ? q->ring.maxsize : 0;
}

int mproc_queue_is_joinable(mproc_queue *q)
{
    return q == NULL ? MPROC_EINVAL : q->joinable;
}

const char *mproc_queue_name(mproc_queue *q)
{
    return q != NULL ? q->region.name : NULL;
}

int mproc_queue_shutdown(mproc_queue *q)
{
    if (q == NULL)
        return MPROC_EINVAL;
    mproc__rec_shutdown(&q->ring);
    return 0;
}

int mproc_queue_is_shutdown(mproc_queue *q)
{
    return q == NULL ? MPROC_EINVAL : atomic_load(&q->s->ring.closed) != 0;
}

/* ---------------------------------------------------------- lifecycle */

/* Bytes from the start of the payload to the data: the layout and the
 * slots, rounded so that the data starts on a page of the mapping (the
 * payload itself starts MPROC__REGION_HDR bytes into it). */
static uint64_t data_offset(uint32_t nslots)
{
    uint64_t n =
        sizeof(qshared) + (uint64_t)nslots * sizeof(qslot) + MPROC__REGION_HDR;
    return ((n + 4095u) & ~(uint64_t)4095u) - MPROC__REGION_HDR;
}

static mproc_queue *new_handle(void)
{
    mproc_queue *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->slot = -1;
    q->fd = -1;
    return q;
}

/* Takes the constants from the shared header into the handle, checked
 * once: nothing is read from there again. */
static int adopt(mproc_queue *q, uint32_t kind)
{
    qshared *s = q->region.payload;
    volatile qshared *vs = s;
    if (q->region.payload_size < sizeof *s)
        return MPROC_EPROTO;
    uint32_t magic = vs->magic, version = vs->version, cap = vs->cap;
    uint32_t maxsize = vs->maxsize, flags = vs->flags, nslots = vs->nslots;
    uint64_t off = vs->data_off;
    if (magic != Q_MAGIC || version != Q_VERSION || cap < 4096u ||
        cap > (uint32_t)MPROC_QUEUE_CAPACITY_MAX || (cap & (cap - 1)) != 0 ||
        maxsize > MPROC_QUEUE_MAXSIZE_MAX || (flags & ~Q_KNOWN_FLAGS) != 0 ||
        ((flags & Q_JOINABLE) != 0) != (kind == MPROC__KIND_JQUEUE) ||
        nslots == 0 || nslots > SLOTS_MAX || off != data_offset(nslots) ||
        q->region.payload_size < off + cap)
        return MPROC_EPROTO;
    q->s = s;
    mproc__rec_view(&q->ring, &s->ring, (unsigned char *)s + off, cap, maxsize,
                    (flags & Q_JOINABLE) != 0 ? &joinable_hooks : &queue_hooks,
                    q);
    q->nslots = nslots;
    q->joinable = (flags & Q_JOINABLE) != 0;
    q->no_stream = (flags & Q_NOSTREAM) != 0;
    return 0;
}

int mproc_queue_create(mproc_queue **out, const char *name,
                       const mproc_queue_opts *opts)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL || o.capacity > MPROC_QUEUE_CAPACITY_MAX ||
        o.maxsize > MPROC_QUEUE_MAXSIZE_MAX || o.max_consumers > SLOTS_MAX ||
        o.mode > 0777u)
        return MPROC_EINVAL;
    uint32_t cap = (uint32_t)MPROC_QUEUE_CAPACITY_MIN;
    size_t want = o.capacity == 0 ? MPROC_QUEUE_CAPACITY_DEFAULT : o.capacity;
    while (cap < want)
        cap <<= 1;
    uint32_t nslots = o.max_consumers == 0 ? SLOTS_DEFAULT : o.max_consumers;
    uint64_t off = data_offset(nslots);
    mproc_queue *q = new_handle();
    if (q == NULL)
        return MPROC_ENOMEM;
    uint32_t kind = o.joinable ? MPROC__KIND_JQUEUE : MPROC__KIND_QUEUE;
    int rc = mproc__region_create(&q->region, name, kind, (size_t)(off + cap),
                                  o.mode);
    if (rc < 0) {
        free(q);
        return rc;
    }
    qshared *s = q->region.payload;
    s->magic = Q_MAGIC;
    s->version = Q_VERSION;
    s->cap = cap;
    s->maxsize = (uint32_t)o.maxsize;
    s->flags = (o.joinable ? Q_JOINABLE : 0u) | (o.no_stream ? Q_NOSTREAM : 0u);
    s->nslots = nslots;
    s->data_off = off;
    mproc__rec_init(&s->ring);
    mproc__lockword_init(&s->dlock, false);
    for (uint32_t i = 0; i < nslots; i++)
        atomic_init(&s->slots[i].borrow, BORROW_NONE);
    rc = adopt(q, kind);
    if (rc == 0)
        rc = mproc__region_publish(&q->region);
    if (rc < 0) {
        mproc__region_abandon(&q->region);
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int mproc_queue_open(mproc_queue **out, const char *name,
                     const mproc_queue_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_queue *q = new_handle();
    if (q == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open(&q->region, name, MPROC__KIND_ANY,
                                opts != NULL ? &opts->access : NULL);
    if (rc == 0) {
        uint32_t kind = q->region.hdr->kind;
        if (kind != MPROC__KIND_QUEUE && kind != MPROC__KIND_JQUEUE)
            rc = MPROC_EBADOBJ;
        else
            rc = adopt(q, kind);
        if (rc < 0)
            mproc__region_close(&q->region);
    }
    if (rc < 0) {
        free(q);
        return rc;
    }
    q->lost_seen = atomic_load(&q->s->lost);
    *out = q;
    return 0;
}

int mproc_queue_unlink(const char *name)
{
    int rc = mproc__region_unlink(name, MPROC__KIND_QUEUE);
    if (rc == MPROC_EBADOBJ)
        rc = mproc__region_unlink(name, MPROC__KIND_JQUEUE);
    return rc;
}

static void stop_fd(mproc_queue *q);

void mproc_queue_close(mproc_queue *q)
{
    if (q == NULL)
        return;
    stop_fd(q);
    if (have_resv(q))
        (void)mproc_queue_cancel(q);
    if (q->borrowed && q->borrow_pid == self_pid())
        (void)mproc_queue_release(q);
    /* A half-read stream of this process (its consumers' lock is
     * released here if this is the thread that holds it, else when that
     * thread ends: not while another thread uses the handle). */
    if (atomic_load(&q->st_tid) != 0 && q->st_pid == self_pid()) {
        free(q->st_buf);
        stream_forget(q);
        q->st_buf = NULL;
        stream_dropped(q);
        mproc__rec_cunlock(&q->ring);
    }
    mproc__region_close(&q->region);
    free(q);
}

/* ---------------------------------------------------------- pollable fd */

/* The fd helper's sleep on *w while it holds v: in slices of 50 ms that
 * double up to a second while nothing wakes it, because a process killed
 * between changing the queue and waking sleepers wakes no one; a wake-up
 * starts over at 50 ms. */
#define HELPER_SLICE_MIN_MS 50
#define HELPER_SLICE_MAX_MS 1000

static void helper_sleep(_Atomic uint32_t *w, uint32_t v, int64_t *slice_ms)
{
    mproc__deadline d;
    mproc__deadline_init(&d, *slice_ms);
    struct timespec ts = mproc__deadline_abs(&d);
    if (mproc__os_futex_wait((const uint32_t *)w, v, &ts) == -ETIMEDOUT) {
        *slice_ms = mproc__slice_next(*slice_ms, HELPER_SLICE_MAX_MS);
    } else {
        *slice_ms = HELPER_SLICE_MIN_MS;
    }
}

/* The helper thread: keeps the eventfd readable exactly while a message is
 * in the queue (or it is shut down), sleeping on head while it is empty and
 * on rd while it is not. */
static void *fd_helper(void *arg)
{
    mproc_queue *q = arg;
    qshared *s = q->s;
    bool readable = false;
    int64_t slice_ms = HELPER_SLICE_MIN_MS;
    atomic_store(&q->up, 1);
    mproc__os_futex_wake((const uint32_t *)&q->up, 1);
    while (atomic_load(&q->stop) == 0) {
        uint64_t h = atomic_load(&s->ring.head), r = atomic_load(&s->ring.rd);
        bool closed = atomic_load(&s->ring.closed) != 0;
        bool ready = closed || mproc__rec_count(h, r) > 0;
        if (ready != readable) {
            uint64_t v = 1;
            ssize_t n =
                ready ? write(q->fd, &v, sizeof v) : read(q->fd, &v, sizeof v);
            (void)n; /* the eventfd is ours: neither can fail but EINTR */
            readable = ready;
            slice_ms = HELPER_SLICE_MIN_MS;
            continue;
        }
        if (closed) {
            mproc__os_futex_wait((const uint32_t *)&q->stop, 0, NULL);
        } else if (ready) {
            mproc__rec_raise(&s->ring, &s->ring.empty_wait);
            r = atomic_load(&s->ring.rd);
            if (mproc__rec_count(atomic_load(&s->ring.head), r) == 0)
                continue;
            helper_sleep(mproc__rec_lo32(&s->ring.rd), mproc__rec_pos(r),
                         &slice_ms);
        } else {
            mproc__rec_raise(&s->ring, &s->ring.data_wait);
            h = atomic_load(&s->ring.head);
            if (mproc__rec_count(h, atomic_load(&s->ring.rd)) > 0 ||
                atomic_load(&s->ring.closed) != 0)
                continue;
            helper_sleep(mproc__rec_lo32(&s->ring.head), mproc__rec_pos(h),
                         &slice_ms);
        }
    }
    return NULL;
}

static void stop_fd(mproc_queue *q)
{
    if (q->fd < 0)
        return;
    if (q->fd_pid == self_pid()) {
        atomic_store(&q->stop, 1);
        /* Wakes the helper wherever it sleeps (others wake needlessly once
         * and look again). */
        mproc__rec_wake_all(mproc__rec_lo32(&q->s->ring.head));
        mproc__rec_wake_all(mproc__rec_lo32(&q->s->ring.rd));
        mproc__os_futex_wake((const uint32_t *)&q->stop, 1);
        pthread_join(q->thread, NULL);
        mproc__os_close(q->fd);
    }
    /* A forked child's copy: the thread and the fd were the parent's; the
     * fd number is closed only by its owner. */
    q->fd = -1;
}

int mproc_queue_fd(mproc_queue *q)
{
    if (q == NULL)
        return MPROC_EINVAL;
    int rc;
    (void)mproc__pidlock_lock(&q->fd_mu);
    pid_t me = self_pid();
    if (q->fd >= 0 && q->fd_pid != me) {
        /* Inherited across fork: the helper stayed in the parent. Its fd is
         * the parent's eventfd, shared with it: leave it open (the parent
         * closes its own) and make our own. */
        q->fd = -1;
    }
    if (q->fd < 0) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) {
            rc = -errno;
            goto out;
        }
        q->fd = fd;
        q->fd_pid = me;
        atomic_store(&q->stop, 0);
        atomic_store(&q->up, 0);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int e = pthread_create(&q->thread, NULL, fd_helper, q);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0) {
            mproc__os_close(fd);
            q->fd = -1;
            rc = e == EAGAIN ? MPROC_EAGAIN : -e;
            goto out;
        }
        /* Return only once the helper runs (a fork right after must not
         * copy a thread in the middle of starting). */
        while (atomic_load(&q->up) == 0)
            mproc__os_futex_wait((const uint32_t *)&q->up, 0, NULL);
    }
    rc = q->fd;
out:
    mproc__pidlock_unlock(&q->fd_mu);
    return rc;
}

/* -------------------------------------------------------- SimpleQueue */

int mproc_simple_queue_create(mproc_simple_queue **out, const char *name,
                              size_t capacity)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = capacity;
    mproc_queue *q;
    int rc = mproc_queue_create(&q, name, &o);
    if (rc == 0)
        *out = (mproc_simple_queue *)q;
    return rc;
}

int mproc_simple_queue_open(mproc_simple_queue **out, const char *name)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_queue *q;
    int rc = mproc_queue_open(&q, name, NULL);
    if (rc == 0)
        *out = (mproc_simple_queue *)q;
    return rc;
}

void mproc_simple_queue_close(mproc_simple_queue *q)
{
    mproc_queue_close(q != NULL ? &q->q : NULL);
}

int mproc_simple_queue_put(mproc_simple_queue *q, const void *buf, size_t len,
                           int64_t timeout_ms)
{
    return mproc_queue_put(q != NULL ? &q->q : NULL, buf, len, timeout_ms);
}

int mproc_simple_queue_get(mproc_simple_queue *q, void *buf, size_t cap,
                           size_t *len, int64_t timeout_ms)
{
    return mproc_queue_get(q != NULL ? &q->q : NULL, buf, cap, len, timeout_ms);
}

int mproc_simple_queue_get_alloc(mproc_simple_queue *q, void **out, size_t *len,
                                 int64_t timeout_ms)
{
    return mproc_queue_get_alloc(q != NULL ? &q->q : NULL, out, len, SIZE_MAX,
                                 timeout_ms);
}

int mproc_simple_queue_empty(mproc_simple_queue *q)
{
    return mproc_queue_empty(q != NULL ? &q->q : NULL);
}

/* ---------------------------------------------------------- monitoring */

int mproc_queue_stat(mproc_queue *q, mproc_queue_stats *out)
{
    if (q == NULL || out == NULL)
        return MPROC_EINVAL;
    qshared *s = q->s;
    uint64_t h = atomic_load(&s->ring.head);
    out->depth = mproc__rec_count(h, atomic_load(&s->ring.rd));
    out->consumer_waiting = atomic_load(&s->ring.data_wait) != 0;
    out->producer_waiting = atomic_load(&s->ring.room.wait) != 0;
    out->producer_tid =
        (pid_t)(atomic_load(&s->ring.plock.word) & MPROC__LOCK_TIDMASK);
    out->consumer_tid =
        (pid_t)(atomic_load(&s->ring.clock.word) & MPROC__LOCK_TIDMASK);
    out->consumer_places = 0;
    for (uint32_t i = 0; i < q->nslots; i++)
        if (atomic_load(&s->slots[i].pid) != 0)
            out->consumer_places++;
    out->unfinished =
        q->joinable ? mproc__rec_cnt(h) - atomic_load(&s->done) : 0;
    return 0;
}
