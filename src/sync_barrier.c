/*
 * Barrier: arrival count, generation and broken flag under a robust internal
 * lock; waiters sleep on a sequence word bumped on every change (trip,
 * break, reset). Every waiter records its thread id in a slot, and sleepers
 * check those slots every waitword slice, so a participant that dies while
 * others wait breaks the barrier for all of them within a slice.
 *
 * The action runs outside the internal lock: the last arrival leaves count
 * at parties ("tripping"), runs it, then takes the lock again and trips the
 * generation unless it was broken or reset meanwhile. So the lock is only
 * ever held for a few stores, and every wait honours its own deadline.
 *
 * Nothing read from the shared state indexes memory without a bound taken
 * at create/open: the handle keeps `parties`, and an arrival index at or
 * above it (a corrupted or misused barrier) breaks the barrier.
 *
 * Outcome of a generation: a waiter of generation g that wakes to find the
 * generation moved on reads bit g%64 of `outcomes` (1: ended by reset, i.e.
 * broken; 0: tripped). That is exact unless 64 generations pass while one
 * waiter sleeps, which would need the others to trip 64 times without it.
 */
#include <limits.h>
#include <stdlib.h>

#include "internal/deadline.h"
#include "internal/lockcore.h"
#include "internal/region.h"
#include "internal/waitword.h"
#include "mproc/sync.h"
#include "os/task.h"

#define MAX_PARTIES 1024u

typedef struct barrier_slot {
    _Atomic uint32_t tid;
    uint32_t reserved;
    _Atomic uint64_t start;
} barrier_slot;

typedef struct barrier_shared {
    _Atomic uint32_t seq; /* futex word */
    _Atomic uint32_t nwaiters;
    uint32_t parties;
    _Atomic uint32_t count;      /* arrived in this generation */
    _Atomic uint32_t generation; /* under lock */
    _Atomic uint32_t broken;     /* under lock */
    _Atomic uint64_t outcomes;   /* under lock, see above */
    mproc__lockword lock;
    /* 2 * parties slots: this generation's arrivals, then the previous
     * generation's participants (the members expected back). */
    barrier_slot slots[];
} barrier_shared;

struct mproc_barrier {
    mproc__region region;
    barrier_shared *s;
    uint32_t parties; /* validated at create/open; never re-read */
    int (*action)(void *arg);
    void *action_arg;
};

static size_t shared_size(uint32_t parties)
{
    return sizeof(barrier_shared) + 2 * (size_t)parties * sizeof(barrier_slot);
}

int mproc_barrier_create(mproc_barrier **out, const char *name,
                         uint32_t parties, const mproc_barrier_opts *opts)
{
    mproc_barrier_opts o = MPROC_BARRIER_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL || parties == 0 || parties > MAX_PARTIES)
        return MPROC_EINVAL;
    mproc_barrier *b = calloc(1, sizeof *b);
    if (b == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_create(&b->region, name, MPROC__KIND_BARRIER,
                                  shared_size(parties), o.mode);
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->s = b->region.payload;
    b->s->parties = parties;
    b->parties = parties;
    mproc__lockword_init(&b->s->lock, false);
    rc = mproc__region_publish(&b->region);
    if (rc < 0) {
        mproc__region_abandon(&b->region);
        free(b);
        return rc;
    }
    b->action = o.action;
    b->action_arg = o.action_arg;
    *out = b;
    return 0;
}

int mproc_barrier_open(mproc_barrier **out, const char *name,
                       const mproc_barrier_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_barrier *b = calloc(1, sizeof *b);
    if (b == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open(&b->region, name, MPROC__KIND_BARRIER,
                                opts != NULL ? &opts->access : NULL);
    uint32_t parties = 0;
    if (rc == 0) {
        /* Read once: the word is shared, and the handle indexes with it. */
        if (b->region.payload_size >= sizeof(barrier_shared))
            parties = ((volatile barrier_shared *)b->region.payload)->parties;
        if (parties == 0 || parties > MAX_PARTIES ||
            b->region.payload_size < shared_size(parties)) {
            mproc__region_close(&b->region);
            rc = MPROC_EBADOBJ;
        }
    }
    if (rc < 0) {
        free(b);
        return rc;
    }
    b->s = b->region.payload;
    b->parties = parties;
    if (opts != NULL) {
        b->action = opts->action;
        b->action_arg = opts->action_arg;
    }
    *out = b;
    return 0;
}

void mproc_barrier_close(mproc_barrier *b)
{
    if (b == NULL)
        return;
    mproc__region_close(&b->region);
    free(b);
}

int mproc_barrier_unlink(const char *name)
{
    return mproc__region_unlink(name, MPROC__KIND_BARRIER);
}

/* Under the lock: breaks the current generation and wakes everyone. */
static void break_locked(barrier_shared *s)
{
    atomic_store(&s->broken, 1);
    atomic_fetch_add(&s->seq, 1);
    mproc__waitword_wake(&s->seq, &s->nwaiters, INT_MAX);
}

/* Takes the internal lock by deadline d (0 or MPROC_ETIMEDOUT). A
 * participant killed inside a barrier call leaves the state half-changed:
 * break the barrier and go on. The lock is held only for a few stores. */
static int lock_state_by(barrier_shared *s, const mproc__deadline *d)
{
    int rc = mproc__lockword_acquire(&s->lock, d);
    if (rc == MPROC_EOWNERDEAD) {
        mproc__lockword_consistent(&s->lock);
        break_locked(s);
        rc = 0;
    }
    return rc == 0 ? 0 : MPROC_ETIMEDOUT;
}

static void lock_state(barrier_shared *s)
{
    mproc__deadline forever = mproc__deadline_forever();
    lock_state_by(s, &forever);
}

static void unlock_state(barrier_shared *s)
{
    mproc__lockword_release(&s->lock);
}

struct watch {
    barrier_shared *s;
    uint32_t parties;
    uint32_t generation;
    pid_t self;
};

#define RECHECK 1

static bool slot_dead(barrier_slot *sl, pid_t self)
{
    pid_t tid = (pid_t)atomic_load(&sl->tid);
    if (tid == 0 || tid == self)
        return false;
    return !mproc__os_task_alive(tid, atomic_load(&sl->start));
}

/* Every slice: has the state moved on (a waker died before waking us), or
 * is a participant dead: one that arrived in our generation, or one of the
 * previous generation that has not come back? Either way the caller
 * re-reads the state. */
static int check_slots(void *arg)
{
    struct watch *w = arg;
    barrier_shared *s = w->s;
    if (atomic_load(&s->generation) != w->generation || atomic_load(&s->broken))
        return RECHECK;
    /* A participant killed inside a barrier call while holding the
     * internal lock, before it stored its slot, is in no slot: taking the
     * lock finds it dead and breaks the barrier. */
    if (mproc__lockword_owner_dead(&s->lock)) {
        lock_state(s);
        unlock_state(s);
        return RECHECK;
    }
    bool dead = false;
    for (uint32_t i = 0; i < 2 * w->parties && !dead; i++)
        dead = slot_dead(&s->slots[i], w->self);
    if (!dead)
        return 0;
    lock_state(s);
    if (atomic_load(&s->generation) == w->generation &&
        !atomic_load(&s->broken))
        break_locked(s);
    unlock_state(s);
    return RECHECK;
}

/* The last arrival of generation g, outside the lock: runs the action, then
 * trips the generation unless it was broken or reset meanwhile. */
static int trip(mproc_barrier *b, uint32_t g, uint32_t idx, uint32_t *index)
{
    barrier_shared *s = b->s;
    uint32_t parties = b->parties;
    int failed = b->action != NULL && b->action(b->action_arg) != 0;
    lock_state(s);
    if (atomic_load(&s->generation) != g || atomic_load(&s->broken)) {
        unlock_state(s); /* a waiter timed out, an abort, a reset */
        return MPROC_EBROKEN;
    }
    if (failed) {
        break_locked(s);
        unlock_state(s);
        return MPROC_EBROKEN;
    }
    uint64_t bit = 1ull << (g % 64);
    atomic_fetch_and(&s->outcomes, ~bit);
    /* This generation's participants are the next one's members. */
    for (uint32_t i = 0; i < parties; i++) {
        barrier_slot *cur = &s->slots[i], *prev = &s->slots[parties + i];
        atomic_store(&prev->tid, 0);
        atomic_store(&prev->start, atomic_load(&cur->start));
        atomic_store(&prev->tid, atomic_load(&cur->tid));
        atomic_store(&cur->tid, 0);
    }
    atomic_store(&s->count, 0);
    atomic_store(&s->generation, g + 1);
    atomic_fetch_add(&s->seq, 1);
    mproc__waitword_wake(&s->seq, &s->nwaiters, INT_MAX);
    unlock_state(s);
    if (index != NULL)
        *index = idx;
    return 0;
}

int mproc_barrier_wait(mproc_barrier *b, int64_t timeout_ms, uint32_t *index)
{
    if (b == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    barrier_shared *s = b->s;
    uint32_t parties = b->parties;
    pid_t self = mproc__os_self_tid();

    /* The lock is held for a few stores only: even a try (timeout 0) waits
     * up to a slice for it rather than fail on a neighbour's store. */
    mproc__deadline entry;
    mproc__deadline_init(&entry, MPROC__WAITWORD_SLICE_MS);
    if (mproc__deadline_is_forever(&d) ||
        mproc__deadline_left_ns(&d) > mproc__deadline_left_ns(&entry))
        entry = d;
    if (lock_state_by(s, &entry) != 0)
        return MPROC_ETIMEDOUT; /* not arrived: nothing changed */
    if (atomic_load(&s->broken)) {
        unlock_state(s);
        return MPROC_EBROKEN;
    }
    uint32_t g = atomic_load(&s->generation);
    uint32_t idx = atomic_load(&s->count);
    if (idx >= parties) {
        /* More arrivals than parties while the last one runs the action
         * (misuse), or a corrupted count: never index with it. */
        break_locked(s);
        unlock_state(s);
        return MPROC_EBROKEN;
    }
    atomic_store(&s->slots[idx].start, mproc__os_self_start());
    atomic_store(&s->slots[idx].tid, (uint32_t)self);
    atomic_store(&s->count, idx + 1);
    unlock_state(s);
    if (idx + 1 == parties)
        return trip(b, g, idx, index);
    struct watch w = {s, parties, g, self};
    for (;;) {
        uint32_t seq = atomic_load(&s->seq);
        /* The state is read without the lock: generation moves only
         * after outcomes is written (seq_cst stores). */
        if (atomic_load(&s->generation) != g) {
            bool broken = (atomic_load(&s->outcomes) >> (g % 64)) & 1;
            if (broken)
                return MPROC_EBROKEN;
            if (index != NULL)
                *index = idx;
            return 0;
        }
        if (atomic_load(&s->broken) && atomic_load(&s->generation) == g)
            return MPROC_EBROKEN;
        rc = mproc__waitword_wait(&s->seq, &s->nwaiters, seq, &d, check_slots,
                                  &w);
        if (rc == MPROC_ETIMEDOUT) {
            /* The lock is held for a few stores only, so a slice's grace
             * is plenty; a holder that is stopped costs at most that. */
            mproc__deadline grace;
            mproc__deadline_init(&grace, MPROC__WAITWORD_SLICE_MS);
            if (lock_state_by(s, &grace) != 0)
                return MPROC_ETIMEDOUT;
            if (atomic_load(&s->generation) != g) {
                unlock_state(s);
                continue; /* tripped or reset meanwhile: report that */
            }
            if (!atomic_load(&s->broken))
                break_locked(s);
            unlock_state(s);
            return MPROC_ETIMEDOUT;
        }
        if (rc < 0)
            return rc; /* 0 and RECHECK: read the state again */
    }
}

int mproc_barrier_abort(mproc_barrier *b)
{
    if (b == NULL)
        return MPROC_EINVAL;
    lock_state(b->s);
    if (!atomic_load(&b->s->broken))
        break_locked(b->s);
    unlock_state(b->s);
    return 0;
}

int mproc_barrier_reset(mproc_barrier *b)
{
    if (b == NULL)
        return MPROC_EINVAL;
    barrier_shared *s = b->s;
    lock_state(s);
    uint32_t g = atomic_load(&s->generation);
    atomic_fetch_or(&s->outcomes, 1ull << (g % 64));
    for (uint32_t i = 0; i < 2 * b->parties; i++)
        atomic_store(&s->slots[i].tid, 0);
    atomic_store(&s->count, 0);
    atomic_store(&s->broken, 0);
    atomic_store(&s->generation, g + 1);
    atomic_fetch_add(&s->seq, 1);
    mproc__waitword_wake(&s->seq, &s->nwaiters, INT_MAX);
    unlock_state(s);
    return 0;
}

uint32_t mproc_barrier_parties(mproc_barrier *b)
{
    return b != NULL ? b->parties : 0;
}

uint32_t mproc_barrier_n_waiting(mproc_barrier *b)
{
    if (b == NULL || atomic_load(&b->s->broken))
        return 0;
    uint32_t n = atomic_load(&b->s->count);
    return n < b->parties ? n : b->parties;
}

int mproc_barrier_broken(mproc_barrier *b)
{
    if (b == NULL)
        return MPROC_EINVAL;
    return atomic_load(&b->s->broken) != 0;
}

const char *mproc_barrier_name(mproc_barrier *b)
{
    return b != NULL ? b->region.name : NULL;
}
