/*
 * Pool: N worker processes, each with its own task queue and result queue
 * (mproc/queue.h), and one thread in the caller's process (the pool
 * thread) that sends chunks of tasks, takes results in, runs callbacks and
 * watches the workers' pidfds. A per-worker "task in hand" word in shared
 * memory, stored by the worker before each task runs, lets the pool thread
 * fail exactly the task a dead worker held. docs/pool.md has the design.
 */
#include "mproc/pool.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "internal/spin.h"
#include "mproc/queue.h"
#include "os/os.h"
#include "os/task.h"

/* ------------------------------------------------------------ layout */

#define SH_MAGIC 0x4c4f4f50u /* "POOL" */
#define SH_VERSION 1u
#define TASK_MAGIC 0x4b534154u /* "TASK" */
#define STOP_MAGIC 0x504f5453u /* "STOP": the worker exits */
#define RES_READY 1u
#define RES_GROUP 2u

#define OUT_MAX_DEFAULT ((size_t)64 << 10)
#define TERM_DEFAULT_MS 1000
#define TERM_MAX_MS 600000
#define REAP_MS 5000           /* a SIGKILLed worker is reaped within this */
#define FAIL_SPACE 1280        /* room for a failure's file and message */
#define MSG_MAX 1024           /* message bytes with the NUL */
#define FILE_MAX 256           /* file bytes with the NUL */
#define BATCH 256              /* results taken from one worker per turn */
#define CREDIT_NS 500000       /* work queued per worker, estimated */
#define CREDIT_TASKS 8192      /* tasks queued per worker at most */
#define CHUNKS_MAX 1024        /* chunks queued per worker at most */
#define DEATH_CHECK_NS 2000000 /* pidfds looked at this often when busy */
#define NOPIDFD_POLL_MS 20 /* the sleep's bound when a worker has no pidfd */
/* The smallest queues, so that a scratch area holds a few records. */
#define QCAP_MIN ((size_t)64 << 10)
#define SCRATCH_MAX ((size_t)64 << 10) /* each worker's scratch area */
#define GROUP_AGE_NS 1000000 /* tiny tasks' results wait about this long */
#define TINY_NS 5000         /* a task shorter than this on average is tiny */

/* One cache line per worker, written by the worker and read by the pool
 * thread only after the worker died:
 *   cur     the task in hand, as the sequence number the pool gave it (0:
 *           none yet), stored before the task runs;
 *   gseq, gcount, glen
 *           the records of finished tasks in the worker's scratch area not
 *           yet sent: the first one's sequence number, how many, and their
 *           bytes (stored after each record is written). */
typedef struct wslot {
    _Atomic uint64_t cur;
    _Atomic uint64_t gseq;
    _Atomic uint32_t gcount;
    _Atomic uint32_t glen;
    unsigned char pad[40];
} wslot;

typedef struct pshared {
    uint32_t magic;
    uint32_t version;
    uint64_t size;
    /* The pool thread is (about to be) asleep in poll: whoever makes work
     * for it clears this and writes the eventfd. */
    _Atomic uint32_t sleeping;
    unsigned char pad[44];
    wslot slots[];
} pshared;

_Static_assert(sizeof(pshared) == 64, "pool shared header: one line");
_Static_assert(sizeof(wslot) == 64, "pool slot: one line");

/* A task message: this header, then count items, each a u64 length and
 * the bytes, padded to 8. */
typedef struct thdr {
    uint32_t magic;
    uint32_t count;
    uint64_t seq0;    /* sequence number of the first item */
    uint64_t out_max; /* the output bound */
    unsigned char fn[8];
    unsigned char arg[8];
    uint64_t reserved;
} thdr;

/* A result message: this header, then count task records (RES_GROUP) of
 * consecutive sequence numbers from seq0, or nothing (RES_READY: the
 * worker's initializer succeeded). */
typedef struct ghdr {
    uint32_t kind;
    uint32_t count;
    uint64_t seq0;
    uint64_t ns; /* how long the group's tasks took, 0 when unknown */
    uint64_t reserved;
} ghdr;

/* A task record: this header, then the output (status 0: len bytes) or
 * the failure's file then message (file_len + len bytes), padded to 8. */
typedef struct trec {
    int32_t status; /* the task's return, or the pool's MPROC_EMSGSIZE */
    int32_t line;   /* failure: mproc_pool_fail's line, 0 when none */
    uint32_t file_len;
    uint32_t len;
} trec;

_Static_assert(sizeof(thdr) == 48, "task header size");
_Static_assert(sizeof(ghdr) == 32, "group header size");
_Static_assert(sizeof(trec) == 16, "task record size");
_Static_assert(sizeof(mproc_pool_fn) <= 8 && sizeof(void *) <= 8,
               "pointers travel in 8 bytes");

static size_t round8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* ------------------------------------------------------------ types */

enum { J_MAP, J_APPLY, J_IMAP };
enum { S_FREE, S_FILLED, S_SENT, S_DONE }; /* imap window slots */
enum { W_EMPTY, W_STARTING, W_READY };

typedef struct islot {
    int state;
    void *in;
    size_t in_len;
    void *out;
    size_t out_len;
    const mproc_failure *fail;
} islot;

typedef struct core core;

struct mproc_pool_result {
    core *c;
    int refs; /* the caller's, and the pool's while active */
    int kind;
    mproc_pool_fn fn;
    void *arg;
    const void *in; /* J_MAP: the caller's array; J_APPLY: the input */
    size_t
        in_size;   /* J_MAP: element size (0: mproc_pool_input); J_APPLY: len */
    void *in_copy; /* J_APPLY async: ours */
    size_t n;      /* tasks (imap: taken so far) */
    size_t chunk;
    void *out; /* the caller's array, or NULL */
    size_t out_size;
    size_t out_max;
    size_t *lens;                /* output lengths, when kept */
    void **outs;                 /* stored outputs, when kept */
    const mproc_failure **fails; /* per task, made on the first failure */
    size_t settled, failed;
    mproc_pool_call_opts o;
    int cb_err;
    size_t cb_index;
    bool keep_outs;
    bool active;    /* the pool holds a reference: tasks not all ended */
    bool abandoned; /* the caller gave it up */
    bool finished;
    int in_callback; /* a callback of this job runs on the pool thread */
    /* imap */
    bool ordered, input_done, input_err_told;
    int input_err;
    mproc_pool_next_fn next;
    void *next_ctx;
    size_t win_n;
    islot *win;
    size_t returned;  /* ordered: next index to return */
    size_t nreturned; /* how many returned */
    size_t *doneq;    /* unordered: ended, not returned */
    size_t dq_head, dq_n;
    size_t batch_first, batch_n; /* taken, not yet submitted */
    bool have_last;
    size_t last;
    const mproc_failure *last_fail;
};

struct mproc_pool_iter {
    mproc_pool_result *j;
};

typedef struct range {
    struct range *next;
    mproc_pool_result *j;
    size_t first, count;
} range;

typedef struct ochunk {
    mproc_pool_result *j;
    size_t first;
    uint32_t count, done;
    uint64_t seq0;
} ochunk;

typedef struct worker {
    core *c;
    unsigned idx;
    int state;
    mproc_process *proc;
    mproc_queue *tq, *rq;
    int pidfd;
    char name[MPROC_PROCESS_NAME_MAX + 1];
    pid_t pid;
    ochunk *oc;
    size_t oc_head, oc_n, oc_cap;
    size_t out_tasks;
    uint64_t sent; /* tasks sent to this worker; the next one's number is
                      sent + 1 (per worker, so that a worker's tasks are
                      numbered without gaps) */
    int64_t ewma_ns;
    bool have_ewma;
    bool bad;       /* sent something malformed: killed */
    bool stop_sent; /* told to exit */
} worker;

struct core {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs; /* the pool handle, the pool thread, each result */
    pid_t owner;
    pthread_t thread;
    bool thread_started, thread_joined;
    pshared *sh;
    size_t sh_size;
    int efd;
    unsigned nworkers;
    worker *w;
    mproc_pool_opts o;
    int64_t term_ms;
    sigset_t mask; /* the creator's, for the workers */
    size_t max_input, max_out;
    size_t scratch;     /* bytes of each worker's scratch area */
    size_t scratch_off; /* from sh to worker 0's scratch area */
    size_t qcap;
    /* under mu */
    bool closed, terminating, stopping, done, started, broken;
    int create_rc;
    range *pend_head, *pend_tail;
    size_t active_jobs;
    unsigned live; /* slots that have or will have a worker */
    unsigned rr;
    /* pool thread only */
    int64_t last_death_check;
    _Atomic uint32_t kick; /* work was submitted: do not sleep */
};

struct mproc_pool {
    core *c;
    pid_t owner;
};

static _Atomic unsigned worker_counter;

/* ------------------------------------------------------------ records */

static mproc_failure rec_canceled = {
    0,    0,  MPROC_ECANCELED,
    0,    "", "the pool was terminated before the task ended",
    "",   0,  "",
    false};
static mproc_failure rec_broken = {
    0,    0,  MPROC_EBROKEN,
    0,    "", "no worker left: every replacement failed its initializer",
    "",   0,  "",
    false};
static mproc_failure rec_nomem = {
    0,    0,  MPROC_ENOMEM,
    0,    "", "out of memory for the task's failure record",
    "",   0,  "",
    false};
static mproc_failure rec_toobig = {
    0,
    0,
    MPROC_EMSGSIZE,
    0,
    "",
    "the input is larger than the pool's queues carry (mproc_pool_max_input)",
    "",
    0,
    "",
    false};

static bool rec_static(const mproc_failure *f)
{
    return f == &rec_canceled || f == &rec_broken || f == &rec_nomem ||
           f == &rec_toobig;
}

static void rec_free(const mproc_failure *f)
{
    if (f != NULL && !rec_static(f))
        free((void *)f);
}

/* A record that owns copies of its strings, in one allocation. */
static const mproc_failure *rec_new(const mproc_failure *src)
{
    const char *s[4] = {src->name, src->message, src->file, src->backtrace};
    size_t l[4], total = sizeof(mproc_failure);
    for (int i = 0; i < 4; i++) {
        if (s[i] == NULL)
            s[i] = "";
        l[i] = strlen(s[i]);
        total += l[i] + 1;
    }
    mproc_failure *f = malloc(total);
    if (f == NULL)
        return &rec_nomem;
    *f = *src;
    char *p = (char *)(f + 1);
    const char **dst[4] = {&f->name, &f->message, &f->file, &f->backtrace};
    for (int i = 0; i < 4; i++) {
        memcpy(p, s[i], l[i] + 1);
        *dst[i] = p;
        p += l[i] + 1;
    }
    return f;
}

/* ------------------------------------------------------------ inside a worker
 */

static bool in_worker;
static struct {
    bool set;
    int line;
    char file[FILE_MAX];
    char msg[MSG_MAX];
} tfail;

int mproc_pool_fail_at(const char *file, int line, int code, const char *fmt,
                       ...)
{
    if (!in_worker)
        return code;
    tfail.set = true;
    tfail.line = line < 0 ? 0 : line;
    snprintf(tfail.file, sizeof tfail.file, "%s", file != NULL ? file : "");
    va_list ap;
    va_start(ap, fmt);
    if (fmt != NULL)
        vsnprintf(tfail.msg, sizeof tfail.msg, fmt, ap);
    else
        tfail.msg[0] = '\0';
    va_end(ap);
    return code;
}

int mproc_pool_out_write(mproc_pool_out *out, const void *data, size_t len)
{
    if (out == NULL || (data == NULL && len > 0))
        return MPROC_EINVAL;
    out->len = len;
    if (len > out->cap)
        return MPROC_EMSGSIZE;
    if (len > 0)
        memcpy(out->data, data, len);
    return 0;
}

/* Wakes the pool thread if it sleeps (or is about to). */
static void ring(core *c)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&c->sh->sleeping, memory_order_relaxed) != 0 &&
        atomic_exchange(&c->sh->sleeping, 0) != 0) {
        uint64_t one = 1;
        ssize_t r;
        do
            r = write(c->efd, &one, sizeof one);
        while (r < 0 && errno == EINTR);
    }
}

/* A worker's results not yet sent: records in its scratch area (shared
 * memory, after a ghdr's room), announced in its slot as they are made. */
typedef struct group {
    core *c;
    worker *w;
    wslot *slot;
    unsigned char *area; /* the scratch area: ghdr room, then records */
    size_t cap;          /* bytes for records */
    size_t off;          /* bytes of records written */
    uint32_t count;
    uint64_t seq0;
    int64_t t0;
    bool tiny; /* the last group's tasks took < TINY_NS each on average */
} group;

static unsigned char *scratch_of(core *c, unsigned idx)
{
    return (unsigned char *)c->sh + c->scratch_off + idx * c->scratch;
}

/* Sends the group's records as one message. */
static int group_flush(group *g)
{
    if (g->count == 0)
        return 0;
    int64_t ns = mproc__os_monotonic_ns() - g->t0;
    ghdr h = {RES_GROUP, g->count, g->seq0, (uint64_t)ns, 0};
    g->tiny = ns < (int64_t)g->count * TINY_NS;
    memcpy(g->area, &h, sizeof h);
    int rc =
        mproc_queue_put(g->w->rq, g->area, sizeof h + g->off, MPROC_FOREVER);
    /* Sent (or the worker ends): the area is free. A death between the put
     * and these stores leaves records the pool thread then skips, by their
     * sequence numbers. */
    atomic_store_explicit(&g->slot->gcount, 0, memory_order_relaxed);
    atomic_store_explicit(&g->slot->glen, 0, memory_order_relaxed);
    g->count = 0;
    g->off = 0;
    ring(g->c);
    return rc;
}

/* Runs one task with its record at rec (room bytes after the record's
 * header) and fills the record. Returns the record's size. */
static size_t run_task(mproc_pool_fn fn, void *arg, const void *in,
                       size_t in_len, size_t out_max, unsigned char *rec,
                       size_t room)
{
    mproc_pool_out out = {rec + sizeof(trec), out_max, 0};
    tfail.set = false;
    int r = fn(in, in_len, &out, arg);
    trec t = {r, 0, 0, 0};
    if (r == 0 && out.len > out_max) {
        r = MPROC_EMSGSIZE;
        t.status = r;
        tfail.set = true;
        tfail.line = 0;
        tfail.file[0] = '\0';
        snprintf(tfail.msg, sizeof tfail.msg,
                 "the task's output of %zu bytes exceeds its bound of %zu",
                 out.len, out_max);
    }
    if (r == 0) {
        t.len = (uint32_t)out.len;
        memcpy(rec, &t, sizeof t);
        return sizeof t + out.len;
    }
    const char *file = tfail.set ? tfail.file : "";
    char dflt[160];
    const char *msg = tfail.msg;
    if (!tfail.set) {
        if (r < 0)
            snprintf(dflt, sizeof dflt, "returned %d (%s: %s)", r,
                     mproc_errname(r), mproc_strerror(r));
        else
            snprintf(dflt, sizeof dflt, "returned %d", r);
        msg = dflt;
    }
    size_t lf = strlen(file), lm = strlen(msg);
    if (lf > room)
        lf = room;
    if (lm > room - lf)
        lm = room - lf;
    memcpy(out.data, file, lf);
    memcpy((char *)out.data + lf, msg, lm);
    t.line = tfail.set ? tfail.line : 0;
    t.file_len = (uint32_t)lf;
    t.len = (uint32_t)lm;
    memcpy(rec, &t, sizeof t);
    return sizeof t + lf + lm;
}

/* One task whose output bound is small: its record goes to the scratch
 * area, sent with the others of its group. */
static int task_grouped(group *g, mproc_pool_fn fn, void *arg, const void *in,
                        size_t in_len, uint64_t seq, size_t out_max)
{
    size_t room = out_max > FAIL_SPACE ? out_max : FAIL_SPACE;
    if (g->off + sizeof(trec) + room > g->cap) {
        int rc = group_flush(g);
        if (rc < 0)
            return rc;
    }
    if (g->count == 0) {
        g->seq0 = seq;
        g->t0 = mproc__os_monotonic_ns();
        atomic_store_explicit(&g->slot->gseq, seq, memory_order_relaxed);
    }
    atomic_store_explicit(&g->slot->cur, seq, memory_order_relaxed);
    size_t n = run_task(fn, arg, in, in_len, out_max,
                        g->area + sizeof(ghdr) + g->off, room);
    g->off += round8(n);
    g->count++;
    atomic_store_explicit(&g->slot->glen, (uint32_t)g->off,
                          memory_order_relaxed);
    atomic_store_explicit(&g->slot->gcount, g->count, memory_order_release);
    /* Results of tasks that are not tiny go at once; those of tiny ones
     * in groups (when the area is full, the task queue empty, or about
     * GROUP_AGE_NS after the first). */
    if (!g->tiny || mproc__os_monotonic_coarse_ns() - g->t0 >= GROUP_AGE_NS)
        return group_flush(g);
    return 0;
}

/* One task whose output bound is large: its output is written in place
 * in the result queue (no copy on the worker's side) and sent alone. */
static int task_direct(group *g, mproc_pool_fn fn, void *arg, const void *in,
                       size_t in_len, uint64_t seq, size_t out_max)
{
    int rc = group_flush(g); /* results go in sequence order */
    if (rc < 0)
        return rc;
    size_t room = out_max > FAIL_SPACE ? out_max : FAIL_SPACE;
    size_t max = g->c->max_out;
    if (room > max)
        room = max;
    void *buf;
    rc = mproc_queue_reserve(g->w->rq, &buf, sizeof(ghdr) + sizeof(trec) + room,
                             MPROC_FOREVER);
    if (rc < 0)
        return rc;
    atomic_store_explicit(&g->slot->cur, seq, memory_order_relaxed);
    int64_t t0 = mproc__os_monotonic_ns();
    size_t n = run_task(fn, arg, in, in_len, out_max,
                        (unsigned char *)buf + sizeof(ghdr), room);
    ghdr h = {RES_GROUP, 1, seq, (uint64_t)(mproc__os_monotonic_ns() - t0), 0};
    memcpy(buf, &h, sizeof h);
    rc = mproc_queue_commit(g->w->rq, sizeof h + n);
    ring(g->c);
    return rc;
}

/* Whether a task's record goes through the scratch area. */
static bool grouped(const core *c, size_t out_max)
{
    size_t room = out_max > FAIL_SPACE ? out_max : FAIL_SPACE;
    return sizeof(trec) + room <= c->scratch / 4;
}

static int worker_main(void *arg)
{
    worker *w = arg;
    core *c = w->c;
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    pthread_sigmask(SIG_SETMASK, &c->mask, NULL);
    in_worker = true;
    if (c->o.initializer != NULL) {
        int r = c->o.initializer(c->o.initarg);
        if (r != 0)
            return r;
    }
    ghdr ready = {RES_READY, 0, 0, 0, 0};
    int rc = mproc_queue_put(w->rq, &ready, sizeof ready, MPROC_FOREVER);
    if (rc < 0)
        return rc;
    ring(c);
    group g = {.c = c,
               .w = w,
               .slot = &c->sh->slots[w->idx],
               .area = scratch_of(c, w->idx),
               .cap = c->scratch - sizeof(ghdr)};
    uint64_t done = 0, limit = c->o.max_tasks_per_worker;
    for (;;) {
        size_t waiting = 0;
        if (g.count > 0 &&
            (mproc_queue_qsize(w->tq, &waiting) < 0 || waiting == 0) &&
            (rc = group_flush(&g)) < 0)
            return rc;
        const void *m;
        size_t len;
        rc = mproc_queue_borrow(w->tq, &m, &len, MPROC_FOREVER);
        if (rc == MPROC_ECLOSED)
            return group_flush(&g);
        if (rc < 0)
            return rc;
        thdr h;
        if (len < sizeof h)
            return MPROC_EPROTO;
        memcpy(&h, m, sizeof h);
        if (h.magic == STOP_MAGIC) {
            mproc_queue_release(w->tq);
            return group_flush(&g);
        }
        if (h.magic != TASK_MAGIC || h.out_max > c->max_out)
            return MPROC_EPROTO;
        mproc_pool_fn fn;
        void *targ;
        memcpy(&fn, h.fn, sizeof fn);
        memcpy(&targ, h.arg, sizeof targ);
        size_t out_max = (size_t)h.out_max;
        bool grp = grouped(c, out_max);
        const unsigned char *p = (const unsigned char *)m + sizeof h;
        const unsigned char *end = (const unsigned char *)m + len;
        for (uint32_t i = 0; i < h.count; i++) {
            uint64_t ilen;
            if ((size_t)(end - p) < 8)
                return MPROC_EPROTO;
            memcpy(&ilen, p, 8);
            if (ilen > (uint64_t)(end - p - 8))
                return MPROC_EPROTO;
            rc = (grp ? task_grouped : task_direct)(
                &g, fn, targ, p + 8, (size_t)ilen, h.seq0 + i, out_max);
            if (rc < 0)
                return rc;
            p += 8 + round8((size_t)ilen);
        }
        mproc_queue_release(w->tq);
        done += h.count;
        if (limit != 0 && done >= limit)
            return group_flush(&g);
    }
}

/* ------------------------------------------------------------ core refs */

static void core_free(core *c)
{
    if (c->w != NULL) {
        for (unsigned i = 0; i < c->nworkers; i++) {
            mproc_queue_close(c->w[i].tq);
            mproc_queue_close(c->w[i].rq);
            mproc_process_destroy(c->w[i].proc);
            free(c->w[i].oc);
        }
        free(c->w);
    }
    if (c->sh != NULL)
        munmap(c->sh, c->sh_size);
    mproc__os_close(c->efd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Under mu: drops one reference; true when the caller must free c after
 * unlocking. */
static bool core_put_locked(core *c)
{
    return --c->refs == 0;
}

static void job_free(mproc_pool_result *j)
{
    if (j->fails != NULL) {
        for (size_t i = 0; i < j->n; i++)
            rec_free(j->fails[i]);
        free(j->fails);
    }
    if (j->outs != NULL) {
        for (size_t i = 0; i < j->n; i++)
            free(j->outs[i]);
        free(j->outs);
    }
    if (j->win != NULL) {
        for (size_t i = 0; i < j->win_n; i++) {
            free(j->win[i].in);
            free(j->win[i].out);
            rec_free(j->win[i].fail);
        }
        free(j->win);
    }
    free(j->doneq);
    free(j->lens);
    free(j->in_copy);
    free(j);
}

/* Under mu: drops one reference of j; true when c must be freed. */
static bool job_put_locked(mproc_pool_result *j)
{
    if (--j->refs > 0)
        return false;
    core *c = j->c;
    job_free(j);
    return core_put_locked(c);
}

static int wait_cv(core *c, const mproc__deadline *d)
{
    if (mproc__deadline_is_forever(d)) {
        pthread_cond_wait(&c->cv, &c->mu);
        return 0;
    }
    if (mproc__deadline_expired(d))
        return MPROC_ETIMEDOUT;
    struct timespec ts = mproc__deadline_abs(d);
    int r = pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    return r == ETIMEDOUT ? MPROC_ETIMEDOUT : 0;
}

static bool on_pool_thread(const core *c)
{
    return c->thread_started && pthread_equal(pthread_self(), c->thread);
}

/* Tells the pool thread there is something to do. */
static void kick(core *c)
{
    atomic_store(&c->kick, 1);
    ring(c);
}

/* ------------------------------------------------------------ inputs, outputs
 */

static void input_of(const mproc_pool_result *j, size_t i, const void **data,
                     size_t *len)
{
    if (j->kind == J_IMAP) {
        const islot *s = &j->win[i % j->win_n];
        *data = s->in;
        *len = s->in_len;
    } else if (j->kind == J_APPLY) {
        *data = j->in;
        *len = j->in_size;
    } else if (j->in_size > 0) {
        *data = (const unsigned char *)j->in + i * j->in_size;
        *len = j->in_size;
    } else {
        const mproc_pool_input *v = j->in;
        *data = v[i].data;
        *len = v[i].len;
    }
}

static void finish_job(core *c, mproc_pool_result *j)
{
    j->finished = true;
    pthread_cond_broadcast(&c->cv);
    if (j->active) {
        j->active = false;
        c->active_jobs--;
        /* A closed pool may stop once no job is active: tell it. */
        if (!on_pool_thread(c))
            kick(c);
        (void)job_put_locked(j); /* the caller's or a thread's ref remains */
    }
}

static bool job_complete(const mproc_pool_result *j)
{
    return j->settled == j->n && (j->kind != J_IMAP || j->input_done);
}

/* Runs one callback of j without mu; records a non-zero return. */
static void callback(core *c, mproc_pool_result *j, int r_index, size_t index,
                     int (*fn0)(void *, size_t, const void *, size_t),
                     int (*fn1)(void *, size_t, const mproc_failure *),
                     int (*fn2)(void *, size_t, size_t), const void *data,
                     size_t len, const mproc_failure *f, size_t done,
                     size_t total)
{
    j->in_callback++;
    pthread_mutex_unlock(&c->mu);
    int r;
    if (fn0 != NULL)
        r = fn0(j->o.ctx, index, data, len);
    else if (fn1 != NULL)
        r = fn1(j->o.ctx, index, f);
    else
        r = fn2(j->o.ctx, done, total);
    pthread_mutex_lock(&c->mu);
    j->in_callback--;
    if (j->in_callback == 0)
        pthread_cond_broadcast(&c->cv);
    if (r != 0 && j->cb_err == 0) {
        j->cb_err = r;
        j->cb_index = r_index ? index : done - 1;
    }
}

/*
 * Under mu: task i of j has ended, with status 0 and its output (data,
 * len), or with failure f (owned: kept or freed here). Callbacks run when
 * calls is set and j is not abandoned.
 */
static void task_end(core *c, mproc_pool_result *j, size_t i, const void *data,
                     size_t len, const mproc_failure *f, bool calls)
{
    bool live = !j->abandoned;
    if (live && f == NULL) {
        if (j->kind == J_IMAP) {
            islot *s = &j->win[i % j->win_n];
            s->out = malloc(len > 0 ? len : 1);
            if (s->out == NULL) {
                f = &rec_nomem;
            } else {
                if (len > 0)
                    memcpy(s->out, data, len);
                s->out_len = len;
            }
        } else if (j->out != NULL) {
            if (len > 0)
                memcpy((unsigned char *)j->out + i * j->out_size, data, len);
            if (j->lens != NULL)
                j->lens[i] = len;
        } else if (j->keep_outs) {
            j->outs[i] = malloc(len > 0 ? len : 1);
            if (j->outs[i] == NULL)
                f = &rec_nomem;
            else if (len > 0)
                memcpy(j->outs[i], data, len);
            j->lens[i] = len;
        }
    }
    if (live && f != NULL) {
        j->failed++;
        if (j->kind == J_IMAP) {
            j->win[i % j->win_n].fail = f;
        } else {
            if (j->fails == NULL)
                j->fails = calloc(j->n, sizeof *j->fails);
            if (j->fails != NULL)
                j->fails[i] = f;
            else
                rec_free(f);
        }
    } else if (f != NULL) {
        rec_free(f);
        f = NULL;
    }
    if (j->kind == J_IMAP && live) {
        islot *s = &j->win[i % j->win_n];
        free(s->in);
        s->in = NULL;
        s->state = S_DONE;
        if (!j->ordered)
            j->doneq[(j->dq_head + j->dq_n++) % j->win_n] = i;
    }
    j->settled++;
    if (live && calls) {
        if (f != NULL && j->o.on_error != NULL)
            callback(c, j, 1, i, NULL, j->o.on_error, NULL, NULL, 0, f, 0, 0);
        else if (f == NULL && j->o.on_success != NULL)
            callback(c, j, 1, i, j->o.on_success, NULL, NULL, data, len, NULL,
                     0, 0);
        if (j->o.on_progress != NULL && !j->abandoned)
            callback(c, j, 0, i, NULL, NULL, j->o.on_progress, NULL, 0, NULL,
                     j->settled, j->n);
    }
    if (j->kind == J_IMAP)
        pthread_cond_broadcast(&c->cv);
    if (job_complete(j) && !j->finished)
        finish_job(c, j);
}

/* Under mu: tasks [first, first + count) of j end with static record f
 * (no callbacks). */
static void tasks_cancel(core *c, mproc_pool_result *j, size_t first,
                         size_t count, const mproc_failure *f)
{
    for (size_t k = 0; k < count; k++)
        task_end(c, j, first + k, NULL, 0, f, false);
}

/* ------------------------------------------------------------ pending */

static int pend_push(core *c, mproc_pool_result *j, size_t first, size_t count,
                     bool front)
{
    range *r = malloc(sizeof *r);
    if (r == NULL)
        return MPROC_ENOMEM;
    r->j = j;
    r->first = first;
    r->count = count;
    if (front) {
        r->next = c->pend_head;
        c->pend_head = r;
        if (c->pend_tail == NULL)
            c->pend_tail = r;
    } else {
        r->next = NULL;
        if (c->pend_tail != NULL)
            c->pend_tail->next = r;
        else
            c->pend_head = r;
        c->pend_tail = r;
    }
    return 0;
}

/* Under mu: drops every pending range of j (or of every job when j is
 * NULL), ending their tasks with f. */
static void pend_drop(core *c, mproc_pool_result *j, const mproc_failure *f)
{
    range **pp = &c->pend_head, *last = NULL;
    range *dropped = NULL;
    while (*pp != NULL) {
        range *r = *pp;
        if (j == NULL || r->j == j) {
            *pp = r->next;
            r->next = dropped;
            dropped = r;
        } else {
            last = r;
            pp = &r->next;
        }
    }
    c->pend_tail = last;
    while (dropped != NULL) {
        range *r = dropped;
        dropped = r->next;
        tasks_cancel(c, r->j, r->first, r->count, f);
        free(r);
    }
}

/* ------------------------------------------------------------ workers */

static int make_queues(core *c, worker *w)
{
    mproc_queue_opts qo = MPROC_QUEUE_OPTS_INIT;
    qo.capacity = c->qcap;
    qo.no_stream = true;
    qo.max_consumers = 8;
    int rc = mproc_queue_create(&w->tq, NULL, &qo);
    if (rc < 0)
        return rc;
    rc = mproc_queue_create(&w->rq, NULL, &qo);
    if (rc < 0) {
        mproc_queue_close(w->tq);
        w->tq = NULL;
    }
    return rc;
}

static void drop_queues(worker *w)
{
    mproc_queue_close(w->tq);
    mproc_queue_close(w->rq);
    w->tq = w->rq = NULL;
}

/* Under mu, on the pool thread: starts a worker in slot w, whose queues
 * exist. */
static int start_worker(core *c, worker *w)
{
    wslot *sl = &c->sh->slots[w->idx];
    atomic_store(&sl->cur, 0);
    atomic_store(&sl->gseq, 0);
    atomic_store(&sl->gcount, 0);
    atomic_store(&sl->glen, 0);
    w->oc_head = w->oc_n = 0;
    w->out_tasks = 0;
    w->sent = 0;
    w->have_ewma = false;
    w->bad = false;
    w->stop_sent = false;
    snprintf(w->name, sizeof w->name, "PoolWorker-%u",
             atomic_fetch_add(&worker_counter, 1) + 1);
    mproc_process_opts po = MPROC_PROCESS_OPTS_INIT;
    po.name = w->name;
    po.daemon = true;
    mproc_process *p;
    int rc = mproc_process_start(&p, worker_main, w, &po);
    if (rc < 0)
        return rc;
    w->proc = p;
    w->pid = mproc_process_pid(p);
    int fd = mproc_process_fd(p);
    w->pidfd = fd >= 0 ? fd : -1;
    w->state = W_STARTING;
    return 0;
}

static bool has_credit(const core *c, const worker *w)
{
    if (w->state != W_READY || w->proc == NULL || w->bad)
        return false;
    if (c->o.max_tasks_per_worker != 0 && w->sent >= c->o.max_tasks_per_worker)
        return false;
    if (w->oc_n == 0)
        return true;
    if (w->oc_n >= w->oc_cap || w->out_tasks >= CREDIT_TASKS)
        return false;
    if (!w->have_ewma)
        return w->oc_n < 2;
    return (int64_t)w->out_tasks * (w->ewma_ns + 1) < CREDIT_NS;
}

/* Under mu: sends the next chunk of the first pending range to w. 1 sent,
 * 0 no room in w's queue, or an error of the queue (w is then killed). */
static int send_chunk(core *c, worker *w)
{
    range *r = c->pend_head;
    mproc_pool_result *j = r->j;
    size_t count = j->chunk;
    if (count > r->count)
        count = r->count;
    uint64_t limit = c->o.max_tasks_per_worker;
    if (limit != 0 && count > limit - w->sent)
        count = (size_t)(limit - w->sent);
    if (count > UINT32_MAX)
        count = UINT32_MAX;
    size_t room = c->max_input + 8; /* a whole message's items */
    size_t size = 0, k = 0;
    for (; k < count; k++) {
        const void *d;
        size_t len;
        input_of(j, r->first + k, &d, &len);
        size_t need = 8 + round8(len);
        if (size + need > room)
            break;
        size += need;
    }
    /* Every input was checked against max_input when it was submitted, so
     * the first always fits. */
    assert(k > 0);
    count = k;
    void *buf;
    int rc = mproc_queue_reserve(w->tq, &buf, sizeof(thdr) + size, 0);
    if (rc == MPROC_ETIMEDOUT)
        return 0;
    if (rc < 0)
        return rc;
    thdr h = {TASK_MAGIC, (uint32_t)count, w->sent + 1, j->out_max, {0}, {0},
              0};
    memcpy(h.fn, &j->fn, sizeof j->fn);
    memcpy(h.arg, &j->arg, sizeof j->arg);
    unsigned char *p = buf;
    memcpy(p, &h, sizeof h);
    p += sizeof h;
    for (size_t i = 0; i < count; i++) {
        const void *d;
        size_t len;
        input_of(j, r->first + i, &d, &len);
        uint64_t l64 = len;
        memcpy(p, &l64, 8);
        if (len > 0)
            memcpy(p + 8, d, len);
        p += 8 + round8(len);
    }
    rc = mproc_queue_commit(w->tq, sizeof(thdr) + size);
    if (rc < 0)
        return rc;
    ochunk *o = &w->oc[(w->oc_head + w->oc_n++) % w->oc_cap];
    o->j = j;
    o->first = r->first;
    o->count = (uint32_t)count;
    o->done = 0;
    o->seq0 = w->sent + 1;
    w->sent += count;
    w->out_tasks += count;
    if (j->kind == J_IMAP)
        for (size_t i = 0; i < count; i++)
            j->win[(r->first + i) % j->win_n].state = S_SENT;
    r->first += count;
    r->count -= count;
    if (r->count == 0) {
        c->pend_head = r->next;
        if (c->pend_head == NULL)
            c->pend_tail = NULL;
        free(r);
    }
    return 1;
}

/* Under mu, on the pool thread: tells an idle worker to exit, with a STOP
 * message rather than mproc_queue_shutdown(), whose wake-up a consumer
 * about to sleep can miss (a put always moves the word it sleeps on). */
static void send_stop(worker *w)
{
    if (w->stop_sent || w->tq == NULL)
        return;
    thdr h = {STOP_MAGIC, 0, 0, 0, {0}, {0}, 0};
    if (mproc_queue_put(w->tq, &h, sizeof h, 0) == 0)
        w->stop_sent = true;
}

static void kill_worker(worker *w)
{
    w->bad = true;
    if (w->proc != NULL)
        (void)mproc_process_kill(w->proc);
}

/* Under mu: hands pending work to workers with credit, one chunk each in
 * turn. True when something was sent. */
static bool dispatch(core *c)
{
    bool any = false;
    while (c->pend_head != NULL) {
        bool sent = false;
        for (unsigned k = 0; k < c->nworkers && c->pend_head != NULL; k++) {
            worker *w = &c->w[(c->rr + k) % c->nworkers];
            if (!has_credit(c, w))
                continue;
            int rc = send_chunk(c, w);
            if (rc < 0)
                kill_worker(w);
            else if (rc > 0)
                sent = true;
        }
        c->rr++;
        if (!sent)
            break;
        any = true;
    }
    return any;
}

/* Under mu: the records of a group of w's results, count of them from
 * sequence number seq0, in p (len bytes). Records already taken (a group
 * found again in the scratch area of a dead worker) are skipped. False
 * when the group is malformed (w is then killed). */
static bool take_group(core *c, worker *w, uint64_t seq0, uint32_t count,
                       uint64_t ns, const unsigned char *p, size_t len)
{
    if (count > 0 && ns > 0) {
        int64_t per = (int64_t)(ns / count);
        if (!w->have_ewma) {
            w->ewma_ns = per;
            w->have_ewma = true;
        } else {
            w->ewma_ns += (per - w->ewma_ns) / 8;
        }
    }
    for (uint32_t k = 0; k < count; k++) {
        trec t;
        if (len < sizeof t)
            return false;
        memcpy(&t, p, sizeof t);
        const unsigned char *body = p + sizeof t;
        size_t blen = t.status == 0 ? t.len : (size_t)t.file_len + t.len;
        if (blen > len - sizeof t)
            return false;
        size_t step = round8(sizeof t + blen);
        p += step < len ? step : len;
        len -= step < len ? step : len;
        if (w->oc_n == 0)
            return false;
        ochunk *o = &w->oc[w->oc_head];
        uint64_t want = o->seq0 + o->done, seq = seq0 + k;
        if (seq < want)
            continue;
        if (seq > want)
            return false;
        mproc_pool_result *j = o->j;
        size_t i = o->first + o->done;
        o->done++;
        w->out_tasks--;
        if (o->done == o->count) {
            w->oc_head = (w->oc_head + 1) % w->oc_cap;
            w->oc_n--;
        }
        if (t.status == 0) {
            task_end(c, j, i, body, blen, NULL, true);
            continue;
        }
        char file[FILE_MAX], msg[MSG_MAX];
        size_t lf = t.file_len < sizeof file - 1 ? t.file_len : sizeof file - 1;
        size_t lm = t.len < sizeof msg - 1 ? t.len : sizeof msg - 1;
        memcpy(file, body, lf);
        file[lf] = '\0';
        memcpy(msg, body + t.file_len, lm);
        msg[lm] = '\0';
        mproc_failure f = {0,   0,    t.status, w->pid, w->name,
                           msg, file, t.line,   "",     true};
        task_end(c, j, i, NULL, 0, rec_new(&f), true);
    }
    return true;
}

/* Under mu: one message from w's result queue (borrowed: m, len). */
static void take_msg(core *c, worker *w, const void *m, size_t len)
{
    ghdr h;
    if (len < sizeof h) {
        kill_worker(w);
        return;
    }
    memcpy(&h, m, sizeof h);
    if (h.kind == RES_READY) {
        if (w->state == W_STARTING)
            w->state = W_READY;
        return;
    }
    if (h.kind != RES_GROUP ||
        !take_group(c, w, h.seq0, h.count, h.ns,
                    (const unsigned char *)m + sizeof h, len - sizeof h))
        kill_worker(w);
}

/* Under mu: takes up to max result messages from w. True when any came. */
static bool collect(core *c, worker *w, size_t max)
{
    size_t n = 0;
    while (n < max && w->rq != NULL) {
        size_t q = 0;
        if (mproc_queue_qsize(w->rq, &q) < 0 || q == 0)
            break;
        const void *m;
        size_t len;
        int rc = mproc_queue_borrow(w->rq, &m, &len, 0);
        if (rc == MPROC_ETIMEDOUT)
            break;
        if (rc < 0) {
            kill_worker(w);
            break;
        }
        take_msg(c, w, m, len);
        mproc_queue_release(w->rq);
        n++;
    }
    return n > 0;
}

/* Under mu: after w died, the results it had finished but not sent, from
 * its scratch area. */
static void salvage(core *c, worker *w)
{
    wslot *sl = &c->sh->slots[w->idx];
    uint32_t count = atomic_load_explicit(&sl->gcount, memory_order_acquire);
    size_t len = atomic_load_explicit(&sl->glen, memory_order_relaxed);
    uint64_t seq0 = atomic_load_explicit(&sl->gseq, memory_order_relaxed);
    size_t cap = c->scratch - sizeof(ghdr);
    if (count == 0)
        return;
    (void)take_group(c, w, seq0, count, 0, scratch_of(c, w->idx) + sizeof(ghdr),
                     len < cap ? len : cap);
}

/* Under mu: sends tasks a dead worker had not started back to the front of
 * the pending list, in order. */
static void requeue(core *c, worker *w)
{
    for (size_t k = w->oc_n; k-- > 0;) {
        ochunk *o = &w->oc[(w->oc_head + k) % w->oc_cap];
        size_t first = o->first + o->done, count = o->count - o->done;
        if (count == 0)
            continue;
        if (o->j->abandoned || c->terminating ||
            pend_push(c, o->j, first, count, true) < 0)
            tasks_cancel(c, o->j, first, count, &rec_canceled);
        else if (o->j->kind == J_IMAP)
            for (size_t i = 0; i < count; i++)
                o->j->win[(first + i) % o->j->win_n].state = S_SENT;
    }
    w->oc_head = w->oc_n = 0;
    w->out_tasks = 0;
}

/* Under mu: fails every pending task after the last worker is gone. */
static void go_broken(core *c)
{
    c->broken = true;
    pend_drop(c, NULL, &rec_broken);
}

/* Under mu, on the pool thread: worker w has exited. */
static void on_death(core *c, worker *w)
{
    collect(c, w, SIZE_MAX);
    salvage(c, w);
    mproc_process *p = w->proc;
    int rc = mproc_process_join(p, REAP_MS);
    int code = 0;
    if (rc == 0)
        (void)mproc_process_exitcode(p, &code);
    const mproc_failure *pf = rc == 0 ? mproc_process_error(p) : NULL;
    mproc_failure made = {code, 0, MPROC_ECHILD, w->pid, w->name, "",
                          "",   0, "",           false};
    char msg[128];
    if (pf == NULL) {
        snprintf(msg, sizeof msg,
                 "exited with status %d while running the task", code);
        made.message = msg;
        pf = &made;
    }
    int err = pf->from_child && pf->error < 0 ? pf->error : MPROC_ECHILD;
    /* The task in hand: the first of w's tasks without a result, if the
     * worker had begun it (its slot names it). */
    uint64_t cur = atomic_load(&c->sh->slots[w->idx].cur);
    mproc_pool_result *held = NULL;
    size_t held_i = 0;
    const mproc_failure *rec = NULL;
    if (w->oc_n > 0) {
        ochunk *o = &w->oc[w->oc_head];
        if (cur == o->seq0 + o->done) {
            held = o->j;
            held_i = o->first + o->done;
            o->done++;
            w->out_tasks--;
            rec = rec_new(pf); /* before p, which pf may point into, goes */
        }
    }
    requeue(c, w);
    bool was_starting = w->state == W_STARTING;
    w->proc = NULL;
    w->pidfd = -1;
    w->state = W_EMPTY;
    mproc_process_destroy(p);
    drop_queues(w);
    bool replace = !c->terminating && !c->stopping;
    if (was_starting && !c->started) {
        /* Creation fails with the initializer's error. */
        if (c->create_rc == 0)
            c->create_rc = err;
        c->terminating = true;
        replace = false;
    } else if (was_starting && c->o.initializer != NULL) {
        /* A replacement whose initializer failed is not tried again: no
         * loop of respawns. */
        replace = false;
    }
    if (replace) {
        int r = make_queues(c, w);
        if (r == 0 && (r = start_worker(c, w)) < 0)
            drop_queues(w);
        if (r < 0)
            replace = false;
    }
    if (!replace && c->started)
        c->live--;
    if (held != NULL)
        task_end(c, held, held_i, NULL, 0, rec, true);
    if (c->started && c->live == 0 && !c->broken)
        go_broken(c);
}

/* Under mu: looks for workers that exited. True when one did. */
static bool check_deaths(core *c)
{
    struct pollfd fds[64];
    unsigned idx[64];
    bool any = false;
    for (unsigned base = 0; base < c->nworkers; base += 64) {
        nfds_t n = 0;
        for (unsigned k = base; k < c->nworkers && k < base + 64; k++) {
            worker *w = &c->w[k];
            if (w->proc == NULL)
                continue;
            if (w->pidfd < 0) {
                if (mproc_process_is_alive(w->proc) == 0) {
                    on_death(c, w);
                    any = true;
                }
                continue;
            }
            fds[n].fd = w->pidfd;
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            idx[n++] = k;
        }
        if (n == 0 || poll(fds, n, 0) <= 0)
            continue;
        for (nfds_t k = 0; k < n; k++)
            if (fds[k].revents != 0) {
                on_death(c, &c->w[idx[k]]);
                any = true;
            }
    }
    return any;
}

/* Under mu: ends every task still owed (terminate). */
static void cancel_all(core *c)
{
    pend_drop(c, NULL, &rec_canceled);
    for (unsigned k = 0; k < c->nworkers; k++) {
        worker *w = &c->w[k];
        for (size_t q = 0; q < w->oc_n; q++) {
            ochunk *o = &w->oc[(w->oc_head + q) % w->oc_cap];
            tasks_cancel(c, o->j, o->first + o->done, o->count - o->done,
                         &rec_canceled);
        }
        w->oc_head = w->oc_n = 0;
        w->out_tasks = 0;
    }
}

/* Under mu, on the pool thread: SIGTERM, then SIGKILL after the timeout,
 * then reaps every worker. Releases mu while it waits. */
static void end_workers(core *c)
{
    cancel_all(c);
    for (unsigned k = 0; k < c->nworkers; k++)
        if (c->w[k].proc != NULL)
            (void)mproc_process_terminate(c->w[k].proc);
    mproc__deadline d;
    mproc__deadline_init(&d, c->term_ms);
    pthread_mutex_unlock(&c->mu);
    /* Workers are changed only by this thread, so they can be read
     * without mu here; terminate() only signals them under mu. */
    for (;;) {
        bool alive = false;
        for (unsigned k = 0; k < c->nworkers; k++)
            if (c->w[k].proc != NULL && mproc_process_is_alive(c->w[k].proc))
                alive = true;
        if (!alive || mproc__deadline_expired(&d))
            break;
        struct pollfd fds[64];
        nfds_t n = 0;
        bool blind = false;
        for (unsigned k = 0; k < c->nworkers && n < 64; k++) {
            worker *w = &c->w[k];
            if (w->proc == NULL)
                continue;
            if (w->pidfd < 0) {
                blind = true;
                continue;
            }
            if (mproc_process_is_alive(w->proc) != 1)
                continue;
            fds[n].fd = w->pidfd;
            fds[n].events = POLLIN;
            fds[n].revents = 0;
            n++;
        }
        int ms = mproc__deadline_poll_ms(&d);
        if (blind || n == 64 || n == 0)
            ms = ms < 0 || ms > 10 ? 10 : ms;
        (void)poll(fds, n, ms);
    }
    pthread_mutex_lock(&c->mu);
    for (unsigned k = 0; k < c->nworkers; k++) {
        worker *w = &c->w[k];
        if (w->proc == NULL)
            continue;
        if (mproc_process_is_alive(w->proc) == 1)
            (void)mproc_process_kill(w->proc);
    }
    pthread_mutex_unlock(&c->mu);
    for (unsigned k = 0; k < c->nworkers; k++)
        if (c->w[k].proc != NULL)
            (void)mproc_process_join(c->w[k].proc, REAP_MS);
    pthread_mutex_lock(&c->mu);
    for (unsigned k = 0; k < c->nworkers; k++) {
        worker *w = &c->w[k];
        mproc_process *p = w->proc;
        w->proc = NULL;
        w->pidfd = -1;
        w->state = W_EMPTY;
        mproc_process_destroy(p);
        drop_queues(w);
    }
}

/* Nothing for the pool thread to take in right now? */
static bool quiet(core *c)
{
    if (atomic_load(&c->kick) != 0)
        return false;
    for (unsigned k = 0; k < c->nworkers; k++) {
        size_t q = 0;
        worker *w = &c->w[k];
        if (w->rq != NULL && mproc_queue_qsize(w->rq, &q) == 0 && q > 0)
            return false;
    }
    return true;
}

/* The pool thread has nothing to do: spins for the spin budget, then
 * sleeps in poll on the eventfd and the workers' pidfds. Without mu.
 * True when a pidfd became readable. */
static bool idle(core *c)
{
    int64_t budget = mproc__spin_budget_ns();
    if (budget > 0) {
        int64_t until = mproc__os_monotonic_ns() + budget;
        for (unsigned i = 1;; i++) {
            if (!quiet(c))
                return false;
            mproc__os_cpu_relax();
            if ((i & 15u) == 0 && mproc__os_monotonic_ns() > until)
                break;
        }
    }
    atomic_store(&c->sh->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (!quiet(c)) {
        atomic_store(&c->sh->sleeping, 0);
        return false;
    }
    struct pollfd fds[MPROC_POOL_WORKERS_MAX + 1];
    nfds_t n = 0;
    fds[n].fd = c->efd;
    fds[n].events = POLLIN;
    fds[n++].revents = 0;
    int ms = -1;
    for (unsigned k = 0; k < c->nworkers; k++) {
        worker *w = &c->w[k];
        if (w->proc == NULL)
            continue;
        if (w->pidfd < 0) {
            ms = NOPIDFD_POLL_MS;
            continue;
        }
        fds[n].fd = w->pidfd;
        fds[n].events = POLLIN;
        fds[n++].revents = 0;
    }
    int r = poll(fds, n, ms);
    atomic_store(&c->sh->sleeping, 0);
    uint64_t v;
    while (read(c->efd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    if (r < 0 || ms >= 0)
        return true;
    for (nfds_t k = 1; k < n; k++)
        if (fds[k].revents != 0)
            return true;
    return false;
}

static bool all_idle(const core *c)
{
    for (unsigned k = 0; k < c->nworkers; k++)
        if (c->w[k].out_tasks > 0)
            return false;
    return true;
}

static void *pool_thread(void *arg)
{
    core *c = arg;
    pthread_mutex_lock(&c->mu);
    for (unsigned k = 0; k < c->nworkers && c->create_rc == 0; k++) {
        int rc = start_worker(c, &c->w[k]);
        if (rc < 0) {
            c->create_rc = rc;
            c->terminating = true;
        }
    }
    c->last_death_check = mproc__os_monotonic_ns();
    bool deaths = false;
    for (;;) {
        atomic_store(&c->kick, 0);
        if (c->terminating) {
            end_workers(c);
            break;
        }
        bool progress = false;
        for (unsigned k = 0; k < c->nworkers; k++)
            if (c->w[k].proc != NULL && collect(c, &c->w[k], BATCH))
                progress = true;
        int64_t now = mproc__os_monotonic_ns();
        if (deaths || now - c->last_death_check >= DEATH_CHECK_NS) {
            c->last_death_check = now;
            deaths = false;
            if (check_deaths(c))
                progress = true;
        }
        if (c->terminating)
            continue;
        if (!c->started) {
            bool ready = true;
            for (unsigned k = 0; k < c->nworkers; k++)
                if (c->w[k].state != W_READY)
                    ready = false;
            if (ready) {
                c->started = true;
                pthread_cond_broadcast(&c->cv);
            }
        }
        if (dispatch(c))
            progress = true;
        if (c->closed && !c->stopping && c->pend_head == NULL &&
            c->active_jobs == 0 && all_idle(c))
            c->stopping = true;
        if (c->stopping) {
            bool any = false;
            for (unsigned k = 0; k < c->nworkers; k++)
                if (c->w[k].proc != NULL) {
                    any = true;
                    send_stop(&c->w[k]);
                }
            if (!any)
                break;
        }
        if (!progress) {
            pthread_mutex_unlock(&c->mu);
            deaths = idle(c);
            pthread_mutex_lock(&c->mu);
        }
    }
    for (unsigned k = 0; k < c->nworkers; k++)
        drop_queues(&c->w[k]);
    c->done = true;
    pthread_cond_broadcast(&c->cv);
    bool last = core_put_locked(c);
    pthread_mutex_unlock(&c->mu);
    if (last)
        core_free(c);
    return NULL;
}

/* ------------------------------------------------------------ create */

static unsigned cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (unsigned)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1u;
}

int mproc_pool_create(mproc_pool **out, const mproc_pool_opts *opts)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL || o.workers > MPROC_POOL_WORKERS_MAX ||
        o.terminate_timeout_ms < 0 || o.terminate_timeout_ms > TERM_MAX_MS ||
        o.queue_capacity > MPROC_QUEUE_CAPACITY_MAX)
        return MPROC_EINVAL;
    mproc_pool *pool = calloc(1, sizeof *pool);
    core *c = calloc(1, sizeof *c);
    if (pool == NULL || c == NULL) {
        free(pool);
        free(c);
        return MPROC_ENOMEM;
    }
    int rc = 0;
    c->efd = -1;
    c->o = o;
    c->nworkers = o.workers != 0 ? o.workers : cpus_available();
    if (c->nworkers > MPROC_POOL_WORKERS_MAX)
        c->nworkers = MPROC_POOL_WORKERS_MAX;
    c->term_ms =
        o.terminate_timeout_ms != 0 ? o.terminate_timeout_ms : TERM_DEFAULT_MS;
    c->qcap = o.queue_capacity == 0         ? MPROC_QUEUE_CAPACITY_DEFAULT
              : o.queue_capacity < QCAP_MIN ? QCAP_MIN
                                            : o.queue_capacity;
    c->owner = mproc__os_self_pid();
    c->refs = 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->efd < 0) {
        rc = -errno;
        goto fail;
    }
    c->w = calloc(c->nworkers, sizeof *c->w);
    if (c->w == NULL) {
        rc = MPROC_ENOMEM;
        goto fail;
    }
    for (unsigned k = 0; k < c->nworkers; k++) {
        worker *w = &c->w[k];
        w->c = c;
        w->idx = k;
        w->pidfd = -1;
        w->oc_cap = CHUNKS_MAX;
        w->oc = calloc(w->oc_cap, sizeof *w->oc);
        if (w->oc == NULL) {
            rc = MPROC_ENOMEM;
            goto fail;
        }
        if ((rc = make_queues(c, w)) < 0)
            goto fail;
    }
    /* What one message of the queues can carry decides the limits: a task
     * message holds at least one input; a result message one output. */
    size_t inplace = mproc_queue_max_inplace(c->w[0].tq);
    c->max_input = inplace - sizeof(thdr) - 8;
    c->max_out = inplace - sizeof(ghdr) - sizeof(trec);
    if (c->max_input > c->max_out)
        c->max_input = c->max_out;
    c->max_out = c->max_input; /* one limit to document: max_input */
    c->scratch = inplace < SCRATCH_MAX ? inplace & ~(size_t)7 : SCRATCH_MAX;
    if (o.out_max == 0)
        c->o.out_max =
            OUT_MAX_DEFAULT < c->max_out ? OUT_MAX_DEFAULT : c->max_out;
    else if (o.out_max > c->max_out) {
        rc = MPROC_EINVAL;
        goto fail;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    c->scratch_off =
        (sizeof(pshared) + c->nworkers * sizeof(wslot) + page - 1) &
        ~(page - 1);
    c->sh_size = c->scratch_off + c->nworkers * c->scratch;
    void *sh = mmap(NULL, c->sh_size, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        rc = -errno;
        goto fail;
    }
    c->sh = sh;
    c->sh->magic = SH_MAGIC;
    c->sh->version = SH_VERSION;
    c->sh->size = c->sh_size;
    c->live = c->nworkers;
    pthread_sigmask(SIG_SETMASK, NULL, &c->mask);
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    c->refs = 2; /* the pool handle and the thread */
    int tr = pthread_create(&c->thread, NULL, pool_thread, c);
    pthread_sigmask(SIG_SETMASK, &c->mask, NULL);
    if (tr != 0) {
        c->refs = 1;
        rc = -tr;
        goto fail;
    }
    c->thread_started = true;
    pthread_mutex_lock(&c->mu);
    while (!c->started && !c->done)
        pthread_cond_wait(&c->cv, &c->mu);
    rc = c->started ? 0 : c->create_rc;
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        pthread_join(c->thread, NULL);
        goto fail;
    }
    pool->c = c;
    pool->owner = c->owner;
    *out = pool;
    return 0;
fail:
    core_free(c);
    free(pool);
    return rc != 0 ? rc : MPROC_ECHILD;
}

/* ------------------------------------------------------------ submit */

/* Checks common to every call; *cp is the core. */
static int check_pool(const mproc_pool *pool, core **cp)
{
    if (pool == NULL || pool->c == NULL)
        return MPROC_EINVAL;
    if (mproc__os_self_pid() != pool->owner)
        return MPROC_ENOTOWNER;
    *cp = pool->c;
    return 0;
}

/* Under mu: whether new work may be submitted. */
static int can_submit(const core *c)
{
    if (c->closed || c->terminating || c->done)
        return MPROC_ESTATE;
    if (c->broken)
        return MPROC_EBROKEN;
    return 0;
}

static const mproc_pool_call_opts default_call = MPROC_POOL_CALL_OPTS_INIT;

static mproc_pool_result *job_new(core *c, int kind, mproc_pool_fn fn,
                                  void *arg, const mproc_pool_call_opts *opts)
{
    mproc_pool_result *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->c = c;
    j->kind = kind;
    j->fn = fn;
    j->arg = arg;
    j->o = opts != NULL ? *opts : default_call;
    j->refs = 1;
    return j;
}

/* Under mu: makes j active (the pool's reference, a core reference for j)
 * and queues tasks [0, n). */
static int job_start(core *c, mproc_pool_result *j, size_t n)
{
    if (n > 0) {
        int rc = pend_push(c, j, 0, n, false);
        if (rc < 0)
            return rc;
    }
    j->refs++;
    j->active = true;
    c->active_jobs++;
    c->refs++;
    if (n == 0 && j->kind != J_IMAP)
        finish_job(c, j);
    return 0;
}

/* Submits j (tasks [0, n)) unless the pool refuses new work; frees j on
 * failure. */
static int job_submit(core *c, mproc_pool_result *j, size_t n)
{
    pthread_mutex_lock(&c->mu);
    int rc = can_submit(c);
    if (rc == 0)
        rc = job_start(c, j, n);
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        job_free(j);
        return rc;
    }
    if (n > 0)
        kick(c);
    return 0;
}

/* The output bound of a call without an output array. */
static size_t bound_of(const core *c, const mproc_pool_call_opts *opts)
{
    return opts != NULL && opts->out_max != 0 ? opts->out_max : c->o.out_max;
}

static int submit_map(mproc_pool_result **res, mproc_pool *pool,
                      mproc_pool_fn fn, void *arg, const void *in,
                      size_t in_size, size_t n, void *out, size_t out_size,
                      const mproc_pool_call_opts *opts, bool keep)
{
    core *c;
    int rc = check_pool(pool, &c);
    if (rc < 0)
        return rc;
    if (fn == NULL || (in == NULL && n > 0) || (out == NULL) != (out_size == 0))
        return MPROC_EINVAL;
    size_t bound = out != NULL ? out_size : bound_of(c, opts);
    if (bound > c->max_out)
        return MPROC_EMSGSIZE;
    if (in_size > c->max_input)
        return MPROC_EMSGSIZE;
    if (in_size == 0) {
        const mproc_pool_input *v = in;
        for (size_t i = 0; i < n; i++) {
            if (v[i].len > c->max_input)
                return MPROC_EMSGSIZE;
            if (v[i].data == NULL && v[i].len > 0)
                return MPROC_EINVAL;
        }
    }
    if (n > 0 && out != NULL && n > SIZE_MAX / out_size)
        return MPROC_EINVAL;
    mproc_pool_result *j = job_new(c, J_MAP, fn, arg, opts);
    if (j == NULL)
        return MPROC_ENOMEM;
    j->in = in;
    j->in_size = in_size;
    j->n = n;
    j->out = out;
    j->out_size = out_size;
    j->out_max = bound;
    j->chunk = j->o.chunksize;
    if (j->chunk == 0) {
        size_t div = 4 * (size_t)c->nworkers;
        j->chunk = n / div + (n % div != 0 ? 1 : 0);
        if (j->chunk == 0)
            j->chunk = 1;
    }
    if (keep && n > 0) {
        j->lens = calloc(n, sizeof *j->lens);
        if (out == NULL) {
            j->keep_outs = true;
            j->outs = calloc(n, sizeof *j->outs);
        }
        if (j->lens == NULL || (out == NULL && j->outs == NULL)) {
            job_free(j);
            return MPROC_ENOMEM;
        }
    }
    if ((rc = job_submit(c, j, n)) < 0)
        return rc;
    *res = j;
    return 0;
}

int mproc_pool_map_async(mproc_pool_result **res, mproc_pool *pool,
                         mproc_pool_fn fn, void *arg, const void *in,
                         size_t in_size, size_t n, void *out, size_t out_size,
                         const mproc_pool_call_opts *opts)
{
    if (res == NULL)
        return MPROC_EINVAL;
    return submit_map(res, pool, fn, arg, in, in_size, n, out, out_size, opts,
                      true);
}

/* Waits for j's end; on a timeout the caller abandons it. */
static int job_wait(mproc_pool_result *j, int64_t timeout_ms)
{
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    core *c = j->c;
    pthread_mutex_lock(&c->mu);
    while (!j->finished && rc == 0)
        rc = wait_cv(c, &d);
    if (j->finished)
        rc = 0;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int job_outcome(const mproc_pool_result *j)
{
    return j->failed > 0 ? MPROC_ECHILD : 0;
}

int mproc_pool_map(mproc_pool *pool, mproc_pool_fn fn, void *arg,
                   const void *in, size_t in_size, size_t n, void *out,
                   size_t out_size, const mproc_pool_call_opts *opts,
                   int64_t timeout_ms)
{
    if (timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (pool != NULL && pool->c != NULL && on_pool_thread(pool->c))
        return MPROC_EDEADLK;
    mproc_pool_result *j;
    int rc = submit_map(&j, pool, fn, arg, in, in_size, n, out, out_size, opts,
                        false);
    if (rc < 0)
        return rc;
    rc = job_wait(j, timeout_ms);
    if (rc == 0)
        rc = job_outcome(j);
    mproc_pool_result_destroy(j);
    return rc;
}

static int submit_apply(mproc_pool_result **res, mproc_pool *pool,
                        mproc_pool_fn fn, void *arg, const void *in,
                        size_t in_len, void *out, size_t out_cap,
                        const mproc_pool_call_opts *opts, bool copy)
{
    core *c;
    int rc = check_pool(pool, &c);
    if (rc < 0)
        return rc;
    if (fn == NULL || (in == NULL && in_len > 0) ||
        (out == NULL && out_cap > 0))
        return MPROC_EINVAL;
    size_t bound = !copy ? out_cap : bound_of(c, opts);
    if (bound > c->max_out || in_len > c->max_input)
        return MPROC_EMSGSIZE;
    mproc_pool_result *j = job_new(c, J_APPLY, fn, arg, opts);
    if (j == NULL)
        return MPROC_ENOMEM;
    j->n = 1;
    j->chunk = 1;
    j->out_max = bound;
    j->in = in;
    j->in_size = in_len;
    j->lens = calloc(1, sizeof *j->lens);
    if (out != NULL) {
        j->out = out;
        j->out_size = out_cap;
    } else if (copy) {
        j->keep_outs = true;
        j->outs = calloc(1, sizeof *j->outs);
    }
    if (copy && in_len > 0) {
        j->in_copy = malloc(in_len);
        if (j->in_copy != NULL)
            memcpy(j->in_copy, in, in_len);
        j->in = j->in_copy;
    }
    if (j->lens == NULL || (j->keep_outs && j->outs == NULL) ||
        (copy && in_len > 0 && j->in_copy == NULL)) {
        job_free(j);
        return MPROC_ENOMEM;
    }
    if ((rc = job_submit(c, j, 1)) < 0)
        return rc;
    *res = j;
    return 0;
}

int mproc_pool_apply_async(mproc_pool_result **res, mproc_pool *pool,
                           mproc_pool_fn fn, void *arg, const void *in,
                           size_t in_len, const mproc_pool_call_opts *opts)
{
    if (res == NULL)
        return MPROC_EINVAL;
    return submit_apply(res, pool, fn, arg, in, in_len, NULL, 0, opts, true);
}

int mproc_pool_apply(mproc_pool *pool, mproc_pool_fn fn, void *arg,
                     const void *in, size_t in_len, void *out, size_t out_cap,
                     size_t *out_len, int64_t timeout_ms)
{
    if (timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (pool != NULL && pool->c != NULL && on_pool_thread(pool->c))
        return MPROC_EDEADLK;
    mproc_pool_result *j;
    int rc =
        submit_apply(&j, pool, fn, arg, in, in_len, out, out_cap, NULL, false);
    if (rc < 0)
        return rc;
    rc = job_wait(j, timeout_ms);
    if (rc == 0)
        rc = job_outcome(j);
    if (rc == 0 && out_len != NULL)
        *out_len = j->lens[0];
    mproc_pool_result_destroy(j);
    return rc;
}

/* ------------------------------------------------------------ results */

int mproc_pool_result_wait(mproc_pool_result *res, int64_t timeout_ms)
{
    if (res == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (timeout_ms != 0 && on_pool_thread(res->c))
        return MPROC_EDEADLK;
    return job_wait(res, timeout_ms);
}

int mproc_pool_result_get(mproc_pool_result *res, int64_t timeout_ms)
{
    int rc = mproc_pool_result_wait(res, timeout_ms);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&res->c->mu);
    rc = job_outcome(res);
    pthread_mutex_unlock(&res->c->mu);
    return rc;
}

int mproc_pool_result_ready(mproc_pool_result *res)
{
    if (res == NULL)
        return MPROC_EINVAL;
    pthread_mutex_lock(&res->c->mu);
    int r = res->finished ? 1 : 0;
    pthread_mutex_unlock(&res->c->mu);
    return r;
}

int mproc_pool_result_successful(mproc_pool_result *res)
{
    if (res == NULL)
        return MPROC_EINVAL;
    pthread_mutex_lock(&res->c->mu);
    int r = !res->finished ? MPROC_ESTATE : res->failed == 0 ? 1 : 0;
    pthread_mutex_unlock(&res->c->mu);
    return r;
}

int mproc_pool_result_output(mproc_pool_result *res, size_t i,
                             const void **data, size_t *len)
{
    if (res == NULL || data == NULL || len == NULL || res->kind == J_IMAP)
        return MPROC_EINVAL;
    pthread_mutex_lock(&res->c->mu);
    int rc = 0;
    if (i >= res->n)
        rc = MPROC_EINVAL;
    else if (!res->finished)
        rc = MPROC_ESTATE;
    else if (res->fails != NULL && res->fails[i] != NULL)
        rc = MPROC_ECHILD;
    else if (res->failed > 0 && res->fails == NULL)
        rc = MPROC_ECHILD; /* the records could not be kept */
    pthread_mutex_unlock(&res->c->mu);
    if (rc < 0)
        return rc;
    /* Ready: nothing changes any more. */
    *len = res->lens != NULL ? res->lens[i] : 0;
    if (res->out != NULL)
        *data = (const unsigned char *)res->out + i * res->out_size;
    else if (res->outs != NULL)
        *data = res->outs[i];
    else
        *data = NULL;
    return 0;
}

const mproc_failure *mproc_pool_result_error(mproc_pool_result *res, size_t i)
{
    if (res == NULL || res->kind == J_IMAP)
        return NULL;
    pthread_mutex_lock(&res->c->mu);
    const mproc_failure *f = NULL;
    if (res->finished && i < res->n && res->failed > 0)
        f = res->fails != NULL ? res->fails[i] : &rec_nomem;
    pthread_mutex_unlock(&res->c->mu);
    return f;
}

int mproc_pool_result_callback_error(mproc_pool_result *res, size_t *index)
{
    if (res == NULL)
        return MPROC_EINVAL;
    pthread_mutex_lock(&res->c->mu);
    int r = res->cb_err;
    if (r != 0 && index != NULL)
        *index = res->cb_index;
    pthread_mutex_unlock(&res->c->mu);
    return r;
}

/* Under mu: the caller gives j up. */
static void job_abandon(core *c, mproc_pool_result *j)
{
    if (j->finished || j->abandoned)
        return;
    j->abandoned = true;
    if (j->kind == J_IMAP) {
        /* Inputs taken and not submitted end here; sent ones end when
         * their results (or their workers' deaths) come. */
        size_t unsent = j->batch_n;
        j->batch_n = 0;
        j->input_done = true;
        pend_drop(c, j, &rec_canceled);
        j->settled += unsent;
        for (size_t i = 0; i < j->win_n; i++) {
            islot *s = &j->win[i];
            free(s->in);
            free(s->out);
            rec_free(s->fail);
            s->in = s->out = NULL;
            s->fail = NULL;
        }
    } else {
        pend_drop(c, j, &rec_canceled);
    }
    if (job_complete(j))
        finish_job(c, j);
}

void mproc_pool_result_destroy(mproc_pool_result *res)
{
    if (res == NULL)
        return;
    core *c = res->c;
    pthread_mutex_lock(&c->mu);
    job_abandon(c, res);
    /* A callback of this result that has begun ends before we return
     * (unless we are that callback). */
    while (res->in_callback > 0 && !on_pool_thread(c))
        pthread_cond_wait(&c->cv, &c->mu);
    bool last = job_put_locked(res);
    pthread_mutex_unlock(&c->mu);
    if (last)
        core_free(c);
}

/* ------------------------------------------------------------ imap */

static int submit_imap(mproc_pool_iter **it, mproc_pool *pool, mproc_pool_fn fn,
                       void *arg, mproc_pool_next_fn next, void *next_ctx,
                       const mproc_pool_call_opts *opts, bool ordered)
{
    core *c;
    if (it == NULL)
        return MPROC_EINVAL;
    int rc = check_pool(pool, &c);
    if (rc < 0)
        return rc;
    if (fn == NULL || next == NULL)
        return MPROC_EINVAL;
    size_t bound = bound_of(c, opts);
    if (bound > c->max_out)
        return MPROC_EMSGSIZE;
    mproc_pool_iter *iter = malloc(sizeof *iter);
    mproc_pool_result *j = job_new(c, J_IMAP, fn, arg, opts);
    if (iter == NULL || j == NULL) {
        free(iter);
        free(j);
        return MPROC_ENOMEM;
    }
    j->ordered = ordered;
    j->next = next;
    j->next_ctx = next_ctx;
    j->out_max = bound;
    j->chunk = j->o.chunksize != 0 ? j->o.chunksize : 1;
    size_t w = j->o.max_in_flight;
    if (w == 0) {
        w = 8 * (size_t)c->nworkers * j->chunk;
        if (w < 16)
            w = 16;
    }
    if (w > ((size_t)1 << 24))
        w = (size_t)1 << 24;
    j->win_n = w;
    j->win = calloc(w, sizeof *j->win);
    j->doneq = ordered ? NULL : calloc(w, sizeof *j->doneq);
    if (j->win == NULL || (!ordered && j->doneq == NULL)) {
        job_free(j);
        free(iter);
        return MPROC_ENOMEM;
    }
    if ((rc = job_submit(c, j, 0)) < 0) {
        free(iter);
        return rc;
    }
    iter->j = j;
    *it = iter;
    return 0;
}

int mproc_pool_imap(mproc_pool_iter **it, mproc_pool *pool, mproc_pool_fn fn,
                    void *arg, mproc_pool_next_fn next, void *next_ctx,
                    const mproc_pool_call_opts *opts)
{
    return submit_imap(it, pool, fn, arg, next, next_ctx, opts, true);
}

int mproc_pool_imap_unordered(mproc_pool_iter **it, mproc_pool *pool,
                              mproc_pool_fn fn, void *arg,
                              mproc_pool_next_fn next, void *next_ctx,
                              const mproc_pool_call_opts *opts)
{
    return submit_imap(it, pool, fn, arg, next, next_ctx, opts, false);
}

/* Under mu: submits the inputs taken and not yet sent. */
static void imap_flush(core *c, mproc_pool_result *j)
{
    if (j->batch_n == 0)
        return;
    size_t first = j->batch_first, n = j->batch_n;
    j->batch_first += n;
    j->batch_n = 0;
    if (c->terminating || c->done || pend_push(c, j, first, n, false) < 0) {
        tasks_cancel(c, j, first, n, &rec_canceled);
        return;
    }
    for (size_t i = 0; i < n; i++)
        j->win[(first + i) % j->win_n].state = S_SENT;
    kick(c);
}

/* Under mu: whether a result can be returned now. */
static bool imap_has_result(const mproc_pool_result *j)
{
    if (!j->ordered)
        return j->dq_n > 0;
    return j->returned < j->n && j->win[j->returned % j->win_n].state == S_DONE;
}

/* Under mu: takes input while the window has room; releases mu around the
 * input callback. At most `limit` inputs. */
static void imap_pull(core *c, mproc_pool_result *j, size_t limit)
{
    size_t taken = 0;
    while (!j->input_done && taken < limit &&
           j->win[j->n % j->win_n].state == S_FREE) {
        size_t index = j->n;
        pthread_mutex_unlock(&c->mu);
        const void *data = NULL;
        size_t len = 0;
        int r = j->next(j->next_ctx, index, &data, &len);
        void *copy = NULL;
        bool toobig = false;
        if (r > 0) {
            if (data == NULL && len > 0) {
                r = MPROC_EINVAL;
            } else if (len > c->max_input) {
                toobig = true;
            } else if ((copy = malloc(len > 0 ? len : 1)) == NULL) {
                r = MPROC_ENOMEM;
            } else if (len > 0) {
                memcpy(copy, data, len);
            }
        }
        pthread_mutex_lock(&c->mu);
        if (r <= 0) {
            j->input_done = true;
            j->input_err = r;
            break;
        }
        islot *s = &j->win[index % j->win_n];
        s->state = S_FILLED;
        s->in = copy;
        s->in_len = len;
        s->out = NULL;
        s->fail = NULL;
        j->n++;
        taken++;
        if (toobig) { /* fails alone, without a worker */
            imap_flush(c, j);
            j->batch_first = j->n;
            task_end(c, j, index, NULL, 0, &rec_toobig, false);
            continue;
        }
        j->batch_n++;
        if (j->batch_n >= j->chunk)
            imap_flush(c, j);
    }
    imap_flush(c, j);
    if (job_complete(j) && !j->finished)
        finish_job(c, j);
}

int mproc_pool_iter_next(mproc_pool_iter *it, size_t *index, const void **data,
                         size_t *len, int64_t timeout_ms)
{
    if (it == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    mproc_pool_result *j = it->j;
    core *c = j->c;
    if (timeout_ms != 0 && on_pool_thread(c))
        return MPROC_EDEADLK;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (j->have_last) {
        islot *s = &j->win[j->last % j->win_n];
        free(s->out);
        rec_free(s->fail);
        s->out = NULL;
        s->fail = NULL;
        s->state = S_FREE;
        j->have_last = false;
        j->last_fail = NULL;
    }
    for (;;) {
        imap_pull(c, j, imap_has_result(j) ? j->chunk : SIZE_MAX);
        if (imap_has_result(j)) {
            size_t i;
            if (j->ordered) {
                i = j->returned++;
            } else {
                i = j->doneq[j->dq_head];
                j->dq_head = (j->dq_head + 1) % j->win_n;
                j->dq_n--;
            }
            j->nreturned++;
            islot *s = &j->win[i % j->win_n];
            j->have_last = true;
            j->last = i;
            j->last_fail = s->fail;
            if (index != NULL)
                *index = i;
            if (data != NULL)
                *data = s->out;
            if (len != NULL)
                *len = s->out_len;
            rc = s->fail != NULL ? MPROC_ECHILD : 0;
            break;
        }
        if (j->input_done && j->nreturned == j->n) {
            if (j->input_err != 0 && !j->input_err_told) {
                j->input_err_told = true;
                rc = j->input_err;
            } else {
                rc = MPROC_ECLOSED;
            }
            break;
        }
        rc = wait_cv(c, &d);
        if (rc < 0)
            break;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

const mproc_failure *mproc_pool_iter_error(mproc_pool_iter *it)
{
    return it != NULL ? it->j->last_fail : NULL;
}

int mproc_pool_iter_callback_error(mproc_pool_iter *it, size_t *index)
{
    if (it == NULL)
        return MPROC_EINVAL;
    return mproc_pool_result_callback_error(it->j, index);
}

void mproc_pool_iter_destroy(mproc_pool_iter *it)
{
    if (it == NULL)
        return;
    mproc_pool_result_destroy(it->j);
    free(it);
}

/* ------------------------------------------------------------ ending */

int mproc_pool_close(mproc_pool *pool)
{
    core *c;
    int rc = check_pool(pool, &c);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    pthread_mutex_unlock(&c->mu);
    kick(c);
    return 0;
}

int mproc_pool_terminate(mproc_pool *pool)
{
    core *c;
    int rc = check_pool(pool, &c);
    if (rc < 0)
        return rc;
    if (on_pool_thread(c))
        return MPROC_EDEADLK;
    pthread_mutex_lock(&c->mu);
    if (!c->done) {
        c->terminating = true;
        for (unsigned k = 0; k < c->nworkers; k++)
            if (c->w[k].proc != NULL)
                (void)mproc_process_terminate(c->w[k].proc);
        kick(c);
        /* The pool thread kills after term_ms and reaps; if it is stuck in
         * a callback, kill from here. */
        mproc__deadline d;
        mproc__deadline_init(&d, c->term_ms + 500);
        while (!c->done && wait_cv(c, &d) == 0)
            ;
        if (!c->done) {
            for (unsigned k = 0; k < c->nworkers; k++)
                if (c->w[k].proc != NULL)
                    (void)mproc_process_kill(c->w[k].proc);
            mproc__deadline_init(&d, REAP_MS + 1000);
            while (!c->done && wait_cv(c, &d) == 0)
                ;
        }
        rc = c->done ? 0 : MPROC_ETIMEDOUT;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mproc_pool_join(mproc_pool *pool, int64_t timeout_ms)
{
    core *c;
    int rc = check_pool(pool, &c);
    if (rc < 0)
        return rc;
    if (timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (on_pool_thread(c))
        return MPROC_EDEADLK;
    mproc__deadline d;
    mproc__deadline_init(&d, timeout_ms);
    pthread_mutex_lock(&c->mu);
    if (!c->closed && !c->terminating && !c->done) {
        pthread_mutex_unlock(&c->mu);
        return MPROC_ESTATE;
    }
    while (!c->done && rc == 0)
        rc = wait_cv(c, &d);
    if (c->done)
        rc = 0;
    bool join = rc == 0 && !c->thread_joined;
    if (join)
        c->thread_joined = true;
    pthread_mutex_unlock(&c->mu);
    if (join)
        pthread_join(c->thread, NULL);
    return rc;
}

void mproc_pool_destroy(mproc_pool *pool)
{
    if (pool == NULL)
        return;
    core *c = pool->c;
    if (c == NULL || mproc__os_self_pid() != pool->owner) {
        return;
    }
    if (on_pool_thread(c)) {
        /* From a callback: cannot wait for ourselves. Stop and let the
         * thread free what is left. */
        pthread_mutex_lock(&c->mu);
        c->terminating = true;
        pthread_detach(c->thread);
        c->thread_joined = true;
        bool last = core_put_locked(c);
        pthread_mutex_unlock(&c->mu);
        free(pool);
        if (last)
            core_free(c);
        return;
    }
    (void)mproc_pool_terminate(pool);
    pthread_mutex_lock(&c->mu);
    bool done = c->done;
    bool join = !c->thread_joined;
    c->thread_joined = true;
    pthread_mutex_unlock(&c->mu);
    if (join) {
        if (done)
            pthread_join(c->thread, NULL);
        else
            pthread_detach(c->thread);
    }
    pthread_mutex_lock(&c->mu);
    bool last = core_put_locked(c);
    pthread_mutex_unlock(&c->mu);
    free(pool);
    if (last)
        core_free(c);
}

unsigned mproc_pool_workers(const mproc_pool *pool)
{
    return pool != NULL && pool->c != NULL ? pool->c->nworkers : 0;
}

size_t mproc_pool_max_input(const mproc_pool *pool)
{
    return pool != NULL && pool->c != NULL ? pool->c->max_input : 0;
}
