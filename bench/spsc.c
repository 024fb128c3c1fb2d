/*
 * The benchmarks' single-producer single-consumer ring (spsc.h): two
 * counters on their own cache lines, each side caching the other's, and a
 * Dekker-style sleep flag per side so that a publish costs a system call
 * only when the other side sleeps.
 */
#include "spsc.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common.h"

#define SPIN_NS 5000
#define HDR 8u /* a slot: u32 length, u32 more-fragments-follow, data */

struct shared {
    alignas(64) _Atomic uint32_t head; /* slots published (producer) */
    _Atomic uint32_t cons_sleeps;      /* the consumer sleeps on head */
    alignas(64) _Atomic uint32_t tail; /* slots freed (consumer) */
    _Atomic uint32_t prod_sleeps;      /* the producer sleeps on tail */
    alignas(64) unsigned char slots[];
};

struct spsc {
    struct shared *sh;
    size_t map_len;
    uint32_t nslots, mask, slot_size, stride;
    int mode;
    /* This process's side: the producer's next slot and cached tail, or
     * the consumer's next slot and cached head. */
    uint32_t pos, seen;
};

static void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wait(_Atomic uint32_t *w, uint32_t old)
{
    /* Shared (not private) futex: the two sides are different processes. */
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, old, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Waits until *w != old: spins SPIN_NS (forever in SPSC_SPIN), then
 * raises *sleeps and sleeps on w. The flag is raised before the last look
 * (both sequentially consistent) and the other side stores w before it
 * reads the flag, so one of the two sees the other. Only the sleeper
 * lowers its flag: a waker that lowered it could do so late, after the
 * sleeper had woken, gone round and raised it for its next sleep, and that
 * sleep would then never be woken (seen here: both sides asleep). */
static void wait_change(const spsc *r, _Atomic uint32_t *w, uint32_t old,
                        _Atomic uint32_t *sleeps)
{
    int64_t until = bench_now_ns() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(w, memory_order_acquire) != old)
            return;
        relax();
        if (r->mode == SPSC_FUTEX && (i & 63u) == 0 && bench_now_ns() > until)
            break;
    }
    for (;;) {
        atomic_store(sleeps, 1);
        if (atomic_load(w) != old)
            break;
        futex_wait(w, old);
        if (atomic_load_explicit(w, memory_order_acquire) != old)
            break;
    }
    atomic_store_explicit(sleeps, 0, memory_order_relaxed);
}

/* After storing w: wakes the other side when it sleeps on w (or is on
 * its way into or out of that sleep: a spare wake costs one system call). */
static void wake(const spsc *r, _Atomic uint32_t *w, _Atomic uint32_t *sleeps)
{
    if (r->mode != SPSC_FUTEX)
        return;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(sleeps, memory_order_relaxed) != 0)
        futex_wake(w);
}

spsc *spsc_create(uint32_t nslots, uint32_t slot_size, int mode)
{
    if (nslots == 0 || (nslots & (nslots - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    spsc *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->nslots = nslots;
    r->mask = nslots - 1;
    r->slot_size = slot_size;
    r->stride = (HDR + slot_size + 63u) & ~63u;
    r->mode = mode;
    r->map_len = sizeof(struct shared) + (size_t)nslots * r->stride;
    void *p = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        free(r);
        return NULL;
    }
    r->sh = p; /* zero-filled: empty, nobody asleep */
    return r;
}

void spsc_destroy(spsc *r)
{
    if (r == NULL)
        return;
    munmap(r->sh, r->map_len);
    free(r);
}

static unsigned char *slot_at(const spsc *r, uint32_t pos)
{
    return r->sh->slots + (size_t)(pos & r->mask) * r->stride;
}

/* Producer: waits until at least one slot is free; returns how many. */
static uint32_t room(spsc *r)
{
    struct shared *sh = r->sh;
    uint32_t free_n = r->nslots - (r->pos - r->seen);
    if (free_n == 0) {
        r->seen = atomic_load_explicit(&sh->tail, memory_order_acquire);
        free_n = r->nslots - (r->pos - r->seen);
        if (free_n == 0) {
            wait_change(r, &sh->tail, r->seen, &sh->prod_sleeps);
            r->seen = atomic_load_explicit(&sh->tail, memory_order_acquire);
            free_n = r->nslots - (r->pos - r->seen);
        }
    }
    return free_n;
}

/* Consumer: waits until at least one slot is published; returns how many. */
static uint32_t ready(spsc *r)
{
    struct shared *sh = r->sh;
    uint32_t n = r->seen - r->pos;
    if (n == 0) {
        r->seen = atomic_load_explicit(&sh->head, memory_order_acquire);
        n = r->seen - r->pos;
        if (n == 0) {
            wait_change(r, &sh->head, r->pos, &sh->cons_sleeps);
            r->seen = atomic_load_explicit(&sh->head, memory_order_acquire);
            n = r->seen - r->pos;
        }
    }
    return n;
}

static void write_slot(spsc *r, const void *b, uint32_t n, uint32_t more)
{
    unsigned char *s = slot_at(r, r->pos);
    memcpy(s, &n, 4);
    memcpy(s + 4, &more, 4);
    if (n > 0)
        memcpy(s + HDR, b, n);
    r->pos++;
}

static void publish(spsc *r)
{
    atomic_store_explicit(&r->sh->head, r->pos, memory_order_release);
    wake(r, &r->sh->head, &r->sh->cons_sleeps);
}

static void free_slots(spsc *r)
{
    atomic_store_explicit(&r->sh->tail, r->pos, memory_order_release);
    wake(r, &r->sh->tail, &r->sh->prod_sleeps);
}

void spsc_send(spsc *r, const void *b, size_t n)
{
    const unsigned char *p = b;
    size_t off = 0;
    do {
        size_t left = n - off;
        uint32_t k = left < r->slot_size ? (uint32_t)left : r->slot_size;
        room(r);
        write_slot(r, p + off, k, off + k < n);
        publish(r);
        off += k;
    } while (off < n);
}

size_t spsc_recv(spsc *r, void *b, size_t cap)
{
    unsigned char *d = b;
    size_t got = 0;
    for (;;) {
        ready(r);
        const unsigned char *s = slot_at(r, r->pos);
        uint32_t n, more;
        memcpy(&n, s, 4);
        memcpy(&more, s + 4, 4);
        if (n > cap - got)
            bench_die("spsc: a message longer than %zu bytes", cap);
        memcpy(d + got, s + HDR, n);
        got += n;
        r->pos++;
        free_slots(r);
        if (!more)
            return got;
    }
}

void spsc_send_batch(spsc *r, const void *b, size_t each, size_t count)
{
    if (each > r->slot_size)
        bench_die("spsc: batched messages must fit a slot");
    const unsigned char *p = b;
    size_t i = 0;
    while (i < count) {
        size_t k = room(r);
        if (k > count - i)
            k = count - i;
        for (size_t j = 0; j < k; j++, i++)
            write_slot(r, p + i * each, (uint32_t)each, 0);
        publish(r);
    }
}

size_t spsc_recv_batch(spsc *r, void *b, size_t cap, size_t *lens, size_t max)
{
    unsigned char *d = b;
    uint32_t avail = ready(r);
    size_t k = 0, used = 0;
    while (k < max && k < avail) {
        const unsigned char *s = slot_at(r, r->pos);
        uint32_t n, more;
        memcpy(&n, s, 4);
        memcpy(&more, s + 4, 4);
        if (more) {
            if (k > 0)
                break; /* a fragmented one goes alone */
            lens[0] = spsc_recv(r, b, cap);
            return 1;
        }
        if (n > cap - used) {
            if (k > 0)
                break;
            bench_die("spsc: a message longer than %zu bytes", cap);
        }
        memcpy(d + used, s + HDR, n);
        lens[k++] = n;
        used += n;
        r->pos++;
    }
    free_slots(r);
    return k;
}
