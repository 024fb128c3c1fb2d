/*
 * Event: a flag word whose bit 31 marks sleepers, plus an optional pollable fd
 * per process: an eventfd that a helper thread keeps readable while the flag is
 * set (the thread sleeps on the flag through waitword like any waiter, and
 * wakes only when the flag changes or the handle is closed; it runs with
 * every signal blocked so that no process-directed signal lands on it).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "internal/eventtest.h"
#include "internal/pidlock.h"
#include "internal/region.h"
#include "internal/registry.h"
#include "internal/waitword.h"
#include "mproc/sync.h"
#include "os/os.h"
#include "os/task.h"

/* flag bit 0: set; WAITERS: someone may sleep on the word. A sleeper sets
 * WAITERS (CAS) before sleeping; set and clear replace the whole word, so
 * they clear it, and whoever clears it wakes every sleeper (who set it
 * again if they sleep again). A sleeper killed while asleep therefore costs
 * at most one useless wake, at the next set or clear, never one per call
 * for ever as a waiter count would. */
#define SET_BIT 1u
#define WAITERS 0x80000000u

typedef struct event_shared {
    _Atomic uint32_t flag;     /* futex word */
    _Atomic uint32_t reserved; /* was a waiter count; 0 */
} event_shared;

struct mproc_event {
    mproc__region region;
    event_shared *s;
    /* The pollable fd, made on demand, valid in fd_pid only, guarded by
     * mu, a pidlock (internal/pidlock.h): a child forked while another
     * thread of the parent held it takes it over, where a pthread mutex
     * would stay locked for ever. */
    _Atomic uint32_t mu;
    int fd;
    pid_t fd_pid;
    pthread_t thread;
    _Atomic int stop;
    _Atomic uint32_t up; /* the helper has started */
    mproc__reg_node reg; /* the fd stays open in a child (registry.h) */
};

static size_t event_fds(const mproc__reg_node *n, int *out, size_t cap)
{
    if (cap > 0)
        out[0] = ((const mproc_event *)n->obj)->fd;
    return 1;
}

static const mproc__reg_ops event_reg_ops = {event_fds, NULL};

static mproc_event *new_handle(void)
{
    mproc_event *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    atomic_init(&e->mu, 0);
    e->fd = -1;
    return e;
}

int mproc_event_create(mproc_event **out, const char *name,
                       const mproc_event_opts *opts)
{
    mproc_event_opts o = MPROC_EVENT_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_event *e = new_handle();
    if (e == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_create(&e->region, name, MPROC__KIND_EVENT,
                                  sizeof(event_shared), o.mode);
    if (rc < 0) {
        free(e);
        return rc;
    }
    e->s = e->region.payload;
    atomic_init(&e->s->flag, 0);
    atomic_init(&e->s->reserved, 0);
    rc = mproc__region_publish(&e->region);
    if (rc < 0) {
        mproc__region_abandon(&e->region);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

int mproc_event_open(mproc_event **out, const char *name,
                     const mproc_event_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_event *e = new_handle();
    if (e == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open_sized(&e->region, name, MPROC__KIND_EVENT,
                                      sizeof(event_shared),
                                      opts != NULL ? &opts->access : NULL);
    if (rc < 0) {
        free(e);
        return rc;
    }
    e->s = e->region.payload;
    *out = e;
    return 0;
}

static void stop_fd(mproc_event *e)
{
    if (e->fd < 0)
        return;
    if (e->fd_pid == mproc__os_self_pid()) {
        atomic_store(&e->stop, 1);
        /* The helper sleeps on the shared flag without a timeout; `stop`
         * is not that word, so a wake sent just before it sleeps would be
         * lost: wake again until it has gone (one round in practice). */
        for (;;) {
            mproc__waitword_wake_raw(&e->s->flag, INT_MAX);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 2000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_timedjoin_np(e->thread, NULL, &ts) != ETIMEDOUT)
                break;
        }
    }
    /* In a forked child the fd is an inherited copy without its thread. */
    mproc__os_close(e->fd);
    e->fd = -1;
}

void mproc_event_close(mproc_event *ev)
{
    if (ev == NULL)
        return;
    mproc__reg_remove(&ev->reg);
    stop_fd(ev);
    mproc__region_close(&ev->region);
    free(ev);
}

int mproc_event_unlink(const char *name)
{
    return mproc__region_unlink(name, MPROC__KIND_EVENT);
}

/* Sleeps while the word is f (adding WAITERS first), by deadline d: 0 when
 * the word moved (or spuriously), MPROC_ETIMEDOUT, or -errno. */
static int sleep_on(event_shared *s, uint32_t f, const mproc__deadline *d)
{
    if (!(f & WAITERS)) {
        if (!atomic_compare_exchange_strong(&s->flag, &f, f | WAITERS))
            return 0; /* moved meanwhile: look again */
        f |= WAITERS;
    }
    return mproc__waitword_sleep(&s->flag, f, d, NULL, NULL);
}

int mproc_event_set(mproc_event *ev)
{
    if (ev == NULL)
        return MPROC_EINVAL;
    /* Only a call that clears WAITERS makes a system call. */
    if (atomic_exchange(&ev->s->flag, SET_BIT) & WAITERS)
        mproc__waitword_wake_raw(&ev->s->flag, INT_MAX);
    return 0;
}

int mproc_event_clear(mproc_event *ev)
{
    if (ev == NULL)
        return MPROC_EINVAL;
    /* The fd helper sleeps while the flag is set: it is woken here so the
     * fd stops being readable. Plain waiters wake, see 0 and sleep again. */
    if (atomic_exchange(&ev->s->flag, 0) & WAITERS)
        mproc__waitword_wake_raw(&ev->s->flag, INT_MAX);
    return 0;
}

int mproc_event_is_set(mproc_event *ev)
{
    if (ev == NULL)
        return MPROC_EINVAL;
    return (atomic_load(&ev->s->flag) & SET_BIT) != 0;
}

int mproc_event_wait(mproc_event *ev, int64_t timeout_ms)
{
    if (ev == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    for (;;) {
        uint32_t f = atomic_load_explicit(&ev->s->flag, memory_order_acquire);
        if (f & SET_BIT)
            return 0;
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        rc = sleep_on(ev->s, f, &d);
        if (rc < 0 && rc != MPROC_ETIMEDOUT)
            return rc;
    }
}

/* Keeps e->fd readable exactly while the flag is set. */
static void *fd_helper(void *arg)
{
    mproc_event *e = arg;
    bool readable = false;
    mproc__deadline forever = mproc__deadline_forever();
    atomic_store(&e->up, 1);
    mproc__os_futex_wake((const uint32_t *)&e->up, 1);
    while (!atomic_load(&e->stop)) {
        uint32_t f = atomic_load(&e->s->flag);
        bool set = (f & SET_BIT) != 0;
        if (set && !readable) {
            uint64_t one = 1;
            if (write(e->fd, &one, sizeof one) == (ssize_t)sizeof one)
                readable = true;
        } else if (!set && readable) {
            uint64_t v;
            if (read(e->fd, &v, sizeof v) == (ssize_t)sizeof v ||
                errno == EAGAIN)
                readable = false;
        }
        /* No periodic wake-ups: set and clear wake it (it marks WAITERS),
         * and so does stop_fd. */
        if (!atomic_load(&e->stop))
            sleep_on(e->s, f, &forever);
    }
    return NULL;
}

int mproc_event_fd(mproc_event *ev, int *fd)
{
    if (ev == NULL || fd == NULL)
        return MPROC_EINVAL;
    int rc = 0;
    pid_t me = mproc__os_self_pid();
    (void)mproc__pidlock_lock(&ev->mu);
    if (ev->fd >= 0 && ev->fd_pid != me) {
        /* Inherited across fork: the helper thread stayed in the parent. */
        mproc__os_close(ev->fd);
        ev->fd = -1;
    }
    if (ev->fd < 0) {
        int saved = errno;
        int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0) {
            rc = -errno;
        } else {
            ev->fd = efd;
            ev->fd_pid = me;
            atomic_store(&ev->stop, 0);
            /* The helper inherits our mask: block everything, so that a
             * process-directed signal never lands on a hidden thread. */
            sigset_t all, old;
            sigfillset(&all);
            pthread_sigmask(SIG_SETMASK, &all, &old);
            atomic_store(&ev->up, 0);
            int e = pthread_create(&ev->thread, NULL, fd_helper, ev);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            if (e != 0) {
                mproc__os_close(efd);
                ev->fd = -1;
                rc = -e;
            }
            /* Return only once the helper runs: a fork right after would
             * otherwise copy a thread in the middle of its start-up (under
             * ASan, holding the allocator's lock, which then stays locked
             * in the child for ever). */
            while (e == 0 && atomic_load(&ev->up) == 0)
                mproc__os_futex_wait((const uint32_t *)&ev->up, 0, NULL);
        }
        errno = saved;
    }
    if (rc == 0) {
        *fd = ev->fd;
        mproc__reg_add(&ev->reg, &event_reg_ops, ev);
    }
    mproc__pidlock_unlock(&ev->mu);
    return rc;
}

void mproc__event_test_hold_mutex(mproc_event *ev, bool hold)
{
    if (hold)
        (void)mproc__pidlock_lock(&ev->mu);
    else
        mproc__pidlock_unlock(&ev->mu);
}

const char *mproc_event_name(mproc_event *ev)
{
    return ev != NULL ? ev->region.name : NULL;
}
