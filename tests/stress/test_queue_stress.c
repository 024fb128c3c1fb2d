/* Queues under kill -9 at random points, seeded (MPROC_STRESS_SEED replays
 * a run; every case prints its seed): producers killed inside puts of small
 * and streamed messages, consumers killed inside get, get_alloc, get_batch
 * and borrow, processes killed asleep in put or get, JoinableQueue workers
 * killed between get and task_done. Every message is counted in and out:
 * none torn, none twice, none lost beyond what mproc/queue.h allows; no
 * later call waits past its timeout; no join hangs. A short form runs in
 * CTest; MPROC_STRESS_LONG=1 (`make stress`) runs each case to at least
 * 200 kills. Forked helpers only _exit. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

/* ------------------------------------------------------------ helpers */

static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The run's PRNG (splitmix64). */
static uint64_t rnd(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15u;
    return mix(*s);
}

static uint64_t run_seed(const char *what)
{
    const char *e = getenv("MPROC_STRESS_SEED");
    uint64_t seed =
        e != NULL && *e != '\0'
            ? strtoull(e, NULL, 0)
            : mix((uint64_t)test_now_ms() * 1000003u ^ (uint64_t)getpid());
    fprintf(stderr, "%s: seed %llu (MPROC_STRESS_SEED)\n", what,
            (unsigned long long)seed);
    return seed;
}

/* MPROC_STRESS_LONG=1: at least LONG_KILLS kills per case. */
#define LONG_KILLS 200
#define SHORT_KILLS 30
#define SHORT_BUDGET_MS 6000

static bool long_form(void)
{
    const char *e = getenv("MPROC_STRESS_LONG");
    return e != NULL && *e != '\0' && strcmp(e, "0") != 0;
}

/* Whether a case goes on with another round: the short form stops at
 * SHORT_KILLS or its time budget, the long form at LONG_KILLS. */
static bool more_rounds(int kills, int64_t started)
{
    if (long_form())
        return kills < LONG_KILLS;
    return kills < SHORT_KILLS &&
           test_now_ms() - started < test_ms(SHORT_BUDGET_MS);
}

static void *shared_mem(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    return p;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(fn(arg));
    return p;
}

static void kill_and_reap(pid_t p)
{
    kill(p, SIGKILL);
    int code = test_wait_status(p);
    ck_assert(code == 128 + SIGKILL || code >= 0);
}

/* Waits up to ms for pid to exit: its code (as test_wait_status), or -2
 * when it is still running then. */
static int wait_exit(pid_t pid, int64_t ms)
{
    int64_t until = test_now_ms() + test_ms(ms);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0)
            return -1;
        if (test_now_ms() > until)
            return -2;
        usleep(1000);
    }
}

static mproc_queue *new_queue(size_t capacity, size_t maxsize, bool joinable)
{
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = capacity;
    o.maxsize = maxsize;
    o.joinable = joinable;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    return q;
}

/* Messages: a header (magic, sender, sequence, length), then bytes that
 * depend on all three and on the position, its high bits included, so a
 * piece out of place or of another message shows. */
#define MSG_MAGIC 0x5153544du
#define MSG_HDR 24u

static unsigned char pat(uint32_t id, uint64_t seq, size_t k)
{
    return (unsigned char)((k >> 8) ^ (k >> 16) * 17u ^ (k * 131u) ^
                           (seq * 7u) ^ (id * 59u));
}

static void msg_fill(unsigned char *b, size_t len, uint32_t id, uint64_t seq)
{
    uint32_t w[2] = {MSG_MAGIC, id};
    uint64_t l = len;
    memcpy(b, w, 8);
    memcpy(b + 8, &seq, 8);
    memcpy(b + 16, &l, 8);
    for (size_t k = MSG_HDR; k < len; k++)
        b[k] = pat(id, seq, k);
}

/* NULL when b holds a whole message (its sender and sequence in *id,
 * *seq), else what is wrong. */
static const char *msg_check(const unsigned char *b, size_t len, uint32_t *id,
                             uint64_t *seq)
{
    uint32_t w[2];
    uint64_t l;
    if (len < MSG_HDR)
        return "shorter than its header";
    memcpy(w, b, 8);
    memcpy(seq, b + 8, 8);
    memcpy(&l, b + 16, 8);
    *id = w[1];
    if (w[0] != MSG_MAGIC)
        return "bad magic";
    if (l != len)
        return "wrong length";
    for (size_t k = MSG_HDR; k < len; k++)
        if (b[k] != pat(*id, *seq, k))
            return "wrong payload";
    return NULL;
}

/* A message length for (seed, id, seq) on a queue of capacity cap: mostly
 * small, some up to the largest whole message, some streamed (up to three
 * times the queue). */
static size_t msg_len(uint64_t seed, uint32_t id, uint64_t seq, size_t cap)
{
    uint64_t h = mix(seed ^ mix(((uint64_t)id << 40) ^ (seq + 1)));
    size_t whole = cap / 2 - 8;
    unsigned kind = (unsigned)(h % 10);
    h /= 10;
    if (kind == 0)
        return whole + 1 + (size_t)(h % (3 * cap - whole));
    if (kind <= 2)
        return MSG_HDR + (size_t)(h % (whole - MSG_HDR + 1));
    return MSG_HDR + (size_t)(h % 300);
}

/* ------------------------------------------- producers killed in a put */

#define NPROD 3
#define QUOTA 200
#define P_CAP 16384u

typedef struct prod_state {
    _Atomic uint64_t done;    /* puts that returned 0 */
    _Atomic uint64_t cur_len; /* the message being put */
    _Atomic int in_put;
    _Atomic int rc;
} prod_state;

typedef struct prod_job {
    mproc_queue *q;
    prod_state *st;
    uint64_t seed;
    uint32_t id;
} prod_job;

static int child_producer(void *arg)
{
    prod_job *j = arg;
    unsigned char *b = malloc(3 * P_CAP + MSG_HDR);
    if (b == NULL)
        return 20;
    for (uint64_t seq = 0; seq < QUOTA; seq++) {
        size_t len = msg_len(j->seed, j->id, seq, P_CAP);
        msg_fill(b, len, j->id, seq);
        atomic_store(&j->st->cur_len, len);
        atomic_store(&j->st->in_put, 1);
        int rc = mproc_queue_put(j->q, b, len, test_ms(10000));
        if (rc != 0) {
            atomic_store(&j->st->rc, rc);
            return 10;
        }
        atomic_store(&j->st->done, seq + 1);
        atomic_store(&j->st->in_put, 0);
    }
    free(b);
    return 0;
}

/* Checks one message of a producers' round: whole, and the next of its
 * producer (no gap, no repeat). */
static void take_produced(uint64_t run, int round, const unsigned char *m,
                          size_t len, uint64_t *next)
{
    uint32_t id;
    uint64_t seq;
    const char *bad = msg_check(m, len, &id, &seq);
    ck_assert_msg(bad == NULL, "seed %llu round %d: a message of %zu bytes: %s",
                  (unsigned long long)run, round, len, bad);
    ck_assert_msg(id < NPROD, "seed %llu round %d: sender %u",
                  (unsigned long long)run, round, id);
    ck_assert_msg(seq == next[id],
                  "seed %llu round %d: producer %u: message %llu after %llu",
                  (unsigned long long)run, round, id, (unsigned long long)seq,
                  (unsigned long long)next[id]);
    next[id]++;
}

START_TEST(producers_killed_at_random_points_of_a_put_deliver_no_torn_message)
{
    uint64_t run = run_seed("killed producers"), rs = run;
    prod_state *st = shared_mem(sizeof(prod_state) * NPROD);
    int kills = 0, inside_stream = 0, rounds = 0;
    int64_t started = test_now_ms();
    while (more_rounds(kills, started)) {
        int round = rounds++;
        memset(st, 0, sizeof(prod_state) * NPROD);
        mproc_queue *q = new_queue(P_CAP, 0, false);
        size_t whole = mproc_queue_max_inplace(q);
        uint64_t seed = rnd(&rs);
        prod_job jobs[NPROD];
        pid_t p[NPROD];
        bool to_kill[NPROD], killed[NPROD] = {false, false, false};
        int64_t kill_at[NPROD];
        unsigned mask = 1u + (unsigned)(rnd(&rs) % ((1u << NPROD) - 1u));
        for (uint32_t i = 0; i < NPROD; i++) {
            jobs[i] = (prod_job){q, &st[i], seed, i};
            p[i] = spawn(child_producer, &jobs[i]);
            to_kill[i] = (mask & (1u << i)) != 0;
            kill_at[i] = test_now_ms() + (int64_t)(rnd(&rs) % 40u);
        }
        uint64_t next[NPROD] = {0, 0, 0};
        int exited = 0;
        bool gone[NPROD] = {false, false, false};
        int codes[NPROD] = {0, 0, 0};
        /* Take messages while the producers run; kill the chosen ones at
         * their moment. */
        while (exited < NPROD) {
            int64_t now = test_now_ms(), wait = 20;
            for (uint32_t i = 0; i < NPROD; i++) {
                if (!to_kill[i] || killed[i] || gone[i])
                    continue;
                if (kill_at[i] <= now) {
                    kill(p[i], SIGKILL);
                    killed[i] = true;
                } else if (kill_at[i] - now < wait) {
                    wait = kill_at[i] - now;
                }
            }
            void *m = NULL;
            size_t len;
            int rc = mproc_queue_get_alloc(q, &m, &len, 4 * P_CAP, wait);
            if (rc == 0) {
                take_produced(run, round, m, len, next);
                free(m);
            } else {
                ck_assert_msg(
                    rc == MPROC_ETIMEDOUT, "seed %llu round %d: get: %s",
                    (unsigned long long)run, round, mproc_errname(rc));
            }
            for (uint32_t i = 0; i < NPROD; i++) {
                int s;
                if (!gone[i] && waitpid(p[i], &s, WNOHANG) == p[i]) {
                    gone[i] = true;
                    exited++;
                    codes[i] =
                        WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
                }
            }
        }
        /* Every producer is gone: what is left drains, then the end. */
        ck_assert_int_eq(mproc_queue_shutdown(q), 0);
        int rc;
        for (;;) {
            void *m = NULL;
            size_t len;
            rc = mproc_queue_get_alloc(q, &m, &len, 4 * P_CAP, test_ms(5000));
            if (rc != 0)
                break;
            take_produced(run, round, m, len, next);
            free(m);
        }
        ck_assert_msg(rc == MPROC_ECLOSED,
                      "seed %llu round %d: drained with %s",
                      (unsigned long long)run, round, mproc_errname(rc));
        for (uint32_t i = 0; i < NPROD; i++) {
            uint64_t done = atomic_load(&st[i].done);
            int in_put = atomic_load(&st[i].in_put);
            bool died = codes[i] == 128 + SIGKILL;
            ck_assert_msg(died || codes[i] == 0,
                          "seed %llu round %d: producer %u ended with %d (%s)",
                          (unsigned long long)run, round, i, codes[i],
                          mproc_errname(atomic_load(&st[i].rc)));
            /* Every put that returned came, and at most the one it was in
             * when killed; a survivor's whole quota came. */
            ck_assert_msg(next[i] >= done && next[i] <= done + (uint64_t)in_put,
                          "seed %llu round %d: producer %u: %llu put (in a "
                          "put: %d), %llu came",
                          (unsigned long long)run, round, i,
                          (unsigned long long)done, in_put,
                          (unsigned long long)next[i]);
            ck_assert(died || next[i] == QUOTA);
            if (died) {
                kills++;
                if (in_put && atomic_load(&st[i].cur_len) > whole)
                    inside_stream++;
            }
        }
        mproc_queue_close(q);
    }
    fprintf(stderr,
            "killed producers: %d kills in %d rounds, %d inside a streamed "
            "put\n",
            kills, rounds, inside_stream);
    ck_assert_int_gt(kills, 0);
    if (long_form())
        ck_assert_int_ge(inside_stream, 1);
    munmap(st, sizeof(prod_state) * NPROD);
}
END_TEST

/* ----------------------------------- consumers killed in a get (or done) */

#define NCONS 3
#define C_MSGS 400
/* Every other round on a larger queue: whole messages up to 128 KiB, so
 * that kills land inside their copies. */
#define C_CAP_SMALL 16384u
#define C_CAP_LARGE (256u * 1024u)
#define C_BATCH 4

typedef struct cons_state {
    _Atomic int in_hand; /* messages its current call may take */
    _Atomic int holding; /* JoinableQueue: tasks got, not yet marked done */
} cons_state;

typedef struct cons_shared {
    _Atomic int got[C_MSGS]; /* times each message came */
    _Atomic int bad;         /* a torn message, or a call that failed */
    _Atomic int bad_rc;
    cons_state c[NCONS];
} cons_shared;

typedef struct cons_job {
    mproc_queue *q;
    cons_shared *sh;
    unsigned slot;
    uint64_t seed;
} cons_job;

static int cons_fail(cons_shared *sh, int rc, int code)
{
    atomic_store(&sh->bad_rc, rc);
    atomic_store(&sh->bad, code);
    return code;
}

/* Spins for about us microseconds (work on a message). */
static void busy_us(uint64_t us)
{
    int64_t until = test_now_ms() * 1000 + (int64_t)us;
    struct timespec ts;
    do
        clock_gettime(CLOCK_MONOTONIC, &ts);
    while ((int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 < until);
}

/* Checks one message a consumer took, works on it a random moment (so
 * that some kills land between a take and its count), and counts it. */
static bool cons_take(cons_shared *sh, const unsigned char *m, size_t len,
                      uint64_t *rs)
{
    uint32_t id;
    uint64_t seq;
    if (msg_check(m, len, &id, &seq) != NULL || id != 0 || seq >= C_MSGS)
        return false;
    if (rnd(rs) % 2 == 0)
        busy_us(rnd(rs) % 200);
    atomic_fetch_add(&sh->got[seq], 1);
    return true;
}

/* Takes messages every way there is until the queue is shut down and
 * empty; a JoinableQueue's tasks are marked done, sometimes after a
 * moment. */
static int child_consumer(void *arg)
{
    cons_job *j = arg;
    cons_state *me = &j->sh->c[j->slot];
    bool joinable = mproc_queue_is_joinable(j->q) == 1;
    size_t cap = 3 * mproc_queue_capacity(j->q) + MSG_HDR;
    unsigned char *b = malloc(cap * C_BATCH);
    if (b == NULL)
        return 20;
    uint64_t rs = j->seed;
    for (;;) {
        unsigned op = (unsigned)(rnd(&rs) % 4);
        int taken = 0, rc;
        size_t len;
        atomic_store(&me->in_hand, op == 2 ? C_BATCH : 1);
        if (op == 0) {
            rc = mproc_queue_get(j->q, b, cap, &len, test_ms(20000));
            if (rc == 0 && !cons_take(j->sh, b, len, &rs))
                return cons_fail(j->sh, 0, 30);
            taken = rc == 0;
        } else if (op == 1) {
            void *m;
            rc = mproc_queue_get_alloc(j->q, &m, &len, cap, test_ms(20000));
            if (rc == 0) {
                bool ok = cons_take(j->sh, m, len, &rs);
                free(m);
                if (!ok)
                    return cons_fail(j->sh, 0, 31);
                taken = 1;
            }
        } else if (op == 2) {
            size_t lens[C_BATCH], got;
            rc = mproc_queue_get_batch(j->q, b, cap * C_BATCH, lens, C_BATCH,
                                       &got, test_ms(20000));
            size_t off = 0;
            for (size_t i = 0; rc == 0 && i < got; i++) {
                if (!cons_take(j->sh, b + off, lens[i], &rs))
                    return cons_fail(j->sh, 0, 32);
                off += lens[i];
            }
            taken = rc == 0 ? (int)got : 0;
        } else {
            const void *d;
            rc = mproc_queue_borrow(j->q, &d, &len, test_ms(20000));
            if (rc == MPROC_EMSGSIZE) { /* streamed: take it by copy */
                rc = mproc_queue_get(j->q, b, cap, &len, test_ms(20000));
                if (rc == 0 && !cons_take(j->sh, b, len, &rs))
                    return cons_fail(j->sh, 0, 33);
                taken = rc == 0;
            } else if (rc == 0) {
                if (!cons_take(j->sh, d, len, &rs))
                    return cons_fail(j->sh, 0, 34);
                taken = 1;
                if (rnd(&rs) % 4 == 0) /* hold it a moment */
                    usleep((useconds_t)(rnd(&rs) % 1000));
                rc = mproc_queue_release(j->q);
            }
        }
        if (rc == MPROC_ECLOSED)
            break;
        if (rc != 0)
            return cons_fail(j->sh, rc, 10);
        if (joinable) {
            atomic_store(&me->holding, taken);
            atomic_store(&me->in_hand, 0);
            if (rnd(&rs) % 4 == 0)
                usleep((useconds_t)(rnd(&rs) % 1000));
            /* holding counts the task_done calls not yet made: a join
             * that returns while one is still to come was told wrong. */
            for (int i = 0; i < taken; i++) {
                atomic_fetch_sub(&me->holding, 1);
                rc = mproc_queue_task_done(j->q);
                if (rc != 0)
                    return cons_fail(j->sh, rc, 11);
            }
        }
        atomic_store(&me->in_hand, 0);
    }
    free(b);
    return 0;
}

/* One round: the test puts C_MSGS messages while NCONS consumers take
 * them; every few messages, a consumer is killed (and replaced). Returns
 * the kills; *lost_ok is what the killed ones may have taken with them,
 * *held says a killed worker held tasks not marked done. */
static int consumers_round(uint64_t run, int round, uint64_t *rs, bool joinable,
                           cons_shared *sh, int *lost, int *lost_ok, bool *held)
{
    memset(sh, 0, sizeof *sh);
    size_t qcap = round % 2 == 0 ? C_CAP_SMALL : C_CAP_LARGE;
    /* Places for the live consumers and one more: a replacement reaps
     * the dead ones' places (settling their tasks) while the round runs,
     * not only at the join. */
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.capacity = qcap;
    o.joinable = joinable;
    o.max_consumers = NCONS + 1;
    mproc_queue *q;
    ck_assert_int_eq(mproc_queue_create(&q, NULL, &o), 0);
    uint64_t seed = rnd(rs);
    /* Made before: puts are then plain copies, faster than the consumers'
     * checks, so the ring stays full and the consumers busy. */
    unsigned char **msgs = malloc(C_MSGS * sizeof *msgs);
    ck_assert_ptr_nonnull(msgs);
    for (uint64_t seq = 0; seq < C_MSGS; seq++) {
        size_t len = msg_len(seed, 0, seq, qcap);
        msgs[seq] = malloc(len);
        ck_assert_ptr_nonnull(msgs[seq]);
        msg_fill(msgs[seq], len, 0, seq);
    }
    cons_job jobs[NCONS];
    pid_t p[NCONS];
    for (unsigned i = 0; i < NCONS; i++) {
        jobs[i] = (cons_job){q, sh, i, rnd(rs)};
        p[i] = spawn(child_consumer, &jobs[i]);
    }
    int kills = 0;
    *lost_ok = 0;
    *held = false;
    /* Kills come after a burst of puts (the ring full, the consumers
     * busy with it) and a random moment: mostly inside their calls. */
    uint64_t next_kill = 4 + rnd(rs) % 25;
    for (uint64_t seq = 0; seq < C_MSGS; seq++) {
        if (seq == next_kill) {
            unsigned i = (unsigned)(rnd(rs) % NCONS);
            busy_us(rnd(rs) % 150);
            kill(p[i], SIGKILL);
            int code = test_wait_status(p[i]);
            ck_assert_msg(code == 128 + SIGKILL,
                          "seed %llu round %d: consumer ended with %d (%s)",
                          (unsigned long long)run, round, code,
                          mproc_errname(atomic_load(&sh->bad_rc)));
            kills++;
            *lost_ok += atomic_load(&sh->c[i].in_hand);
            if (atomic_load(&sh->c[i].holding) > 0)
                *held = true;
            atomic_store(&sh->c[i].in_hand, 0);
            atomic_store(&sh->c[i].holding, 0);
            jobs[i].seed = rnd(rs);
            p[i] = spawn(child_consumer, &jobs[i]);
            next_kill = seq + 4 + rnd(rs) % 25;
        }
        size_t len = msg_len(seed, 0, seq, qcap);
        /* A queue wedged by a death would hold this put up. */
        int rc = mproc_queue_put(q, msgs[seq], len, test_ms(10000));
        ck_assert_msg(rc == 0, "seed %llu round %d: put %llu: %s",
                      (unsigned long long)run, round, (unsigned long long)seq,
                      mproc_errname(rc));
    }
    for (uint64_t seq = 0; seq < C_MSGS; seq++)
        free(msgs[seq]);
    free(msgs);
    if (joinable) {
        /* Every task is done or written off: join neither hangs nor
         * returns while a live worker still holds one. */
        int64_t t0 = test_now_ms();
        int rc = mproc_queue_join(q, test_ms(10000));
        ck_assert_msg(rc == 0 || rc == MPROC_EOWNERDEAD,
                      "seed %llu round %d: join: %s after %lld ms",
                      (unsigned long long)run, round, mproc_errname(rc),
                      (long long)(test_now_ms() - t0));
        ck_assert_msg(rc == MPROC_EOWNERDEAD || !*held,
                      "seed %llu round %d: a worker died holding tasks and "
                      "join said nothing",
                      (unsigned long long)run, round);
        size_t n;
        ck_assert_int_eq(mproc_queue_qsize(q, &n), 0);
        ck_assert_uint_eq(n, 0);
        for (unsigned i = 0; i < NCONS; i++)
            ck_assert_msg(atomic_load(&sh->c[i].holding) == 0,
                          "seed %llu round %d: join returned while consumer "
                          "%u holds a task",
                          (unsigned long long)run, round, i);
        ck_assert_int_eq(mproc_queue_join(q, 0), 0);
    }
    ck_assert_int_eq(mproc_queue_shutdown(q), 0);
    for (unsigned i = 0; i < NCONS; i++) {
        int code = wait_exit(p[i], 10000);
        if (code == -2)
            kill_and_reap(p[i]);
        ck_assert_msg(code == 0,
                      "seed %llu round %d: consumer %u ended with %d (%s)",
                      (unsigned long long)run, round, i, code,
                      mproc_errname(atomic_load(&sh->bad_rc)));
    }
    ck_assert_int_eq(atomic_load(&sh->bad), 0);
    /* Never twice; lost only what the killed ones had in hand. */
    *lost = 0;
    for (unsigned s = 0; s < C_MSGS; s++) {
        int g = atomic_load(&sh->got[s]);
        ck_assert_msg(g <= 1, "seed %llu round %d: message %u came %d times",
                      (unsigned long long)run, round, s, g);
        *lost += g == 0;
    }
    ck_assert_msg(*lost <= *lost_ok,
                  "seed %llu round %d: %d messages lost, the %d killed "
                  "consumers had at most %d in hand",
                  (unsigned long long)run, round, *lost, kills, *lost_ok);
    mproc_queue_close(q);
    return kills;
}

static void consumers_killed(bool joinable)
{
    uint64_t run = run_seed(joinable ? "killed workers" : "killed consumers");
    uint64_t rs = run;
    cons_shared *sh = shared_mem(sizeof *sh);
    int kills = 0, rounds = 0, lost_total = 0, held_rounds = 0;
    int64_t started = test_now_ms();
    while (more_rounds(kills, started)) {
        int lost, lost_ok;
        bool held;
        kills += consumers_round(run, rounds++, &rs, joinable, sh, &lost,
                                 &lost_ok, &held);
        lost_total += lost;
        held_rounds += held;
    }
    fprintf(stderr, "%s: %d kills in %d rounds, %d messages went with them\n",
            joinable ? "killed workers" : "killed consumers", kills, rounds,
            lost_total);
    if (joinable)
        fprintf(stderr, "killed workers: %d rounds had one die holding tasks\n",
                held_rounds);
    ck_assert_int_gt(kills, 0);
    munmap(sh, sizeof *sh);
}

START_TEST(consumers_killed_at_random_points_of_a_get_lose_only_what_they_held)
{
    consumers_killed(false);
}
END_TEST

START_TEST(joinable_workers_killed_between_get_and_task_done_never_hang_join)
{
    consumers_killed(true);
}
END_TEST

/* ------------------------------------------------ killed while asleep */

static mproc_queue *g_q;

typedef struct sleeper {
    size_t len;
    int64_t timeout_ms;
} sleeper;

static int child_sleeps_in_get(void *arg)
{
    (void)arg;
    unsigned char b[512];
    size_t len;
    return mproc_queue_get(g_q, b, sizeof b, &len, test_ms(20000)) == 0 ? 0 : 1;
}

static int child_sleeps_in_put(void *arg)
{
    const sleeper *s = arg;
    unsigned char *b = malloc(s->len);
    if (b == NULL)
        return 20;
    msg_fill(b, s->len, 9, 0);
    int rc = mproc_queue_put(g_q, b, s->len, s->timeout_ms);
    free(b);
    return rc == 0 ? 0 : 1;
}

/* A call with timeout ms must return rc within it (plus slack for a
 * loaded machine); a timeout must not come early. */
#define SLACK_MS 1500

static void timed_put(uint64_t run, int round, mproc_queue *q, size_t len,
                      int64_t ms, int want)
{
    unsigned char *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    msg_fill(b, len, 1, (uint64_t)round);
    int64_t t0 = test_now_ms();
    int rc = mproc_queue_put(q, b, len, ms);
    int64_t took = test_now_ms() - t0;
    free(b);
    ck_assert_msg(rc == want, "seed %llu round %d: put: %s, not %s",
                  (unsigned long long)run, round, mproc_errname(rc),
                  mproc_errname(want));
    ck_assert_msg(took <= ms + test_ms(SLACK_MS),
                  "seed %llu round %d: put with timeout %lld took %lld ms",
                  (unsigned long long)run, round, (long long)ms,
                  (long long)took);
    ck_assert(rc != MPROC_ETIMEDOUT || took >= ms - 2);
}

/* Gets with timeout ms; want 0: a message from sender id. */
static void timed_get(uint64_t run, int round, mproc_queue *q, int64_t ms,
                      int want, uint32_t want_id)
{
    void *m = NULL;
    size_t len = 0;
    int64_t t0 = test_now_ms();
    int rc = mproc_queue_get_alloc(q, &m, &len, SIZE_MAX, ms);
    int64_t took = test_now_ms() - t0;
    ck_assert_msg(rc == want, "seed %llu round %d: get: %s, not %s",
                  (unsigned long long)run, round, mproc_errname(rc),
                  mproc_errname(want));
    ck_assert_msg(took <= ms + test_ms(SLACK_MS),
                  "seed %llu round %d: get with timeout %lld took %lld ms",
                  (unsigned long long)run, round, (long long)ms,
                  (long long)took);
    ck_assert(rc != MPROC_ETIMEDOUT || took >= ms - 2);
    if (rc == 0) {
        uint32_t id;
        uint64_t seq;
        const char *bad = msg_check(m, len, &id, &seq);
        ck_assert_msg(bad == NULL && id == want_id,
                      "seed %llu round %d: got a message of %zu bytes: %s",
                      (unsigned long long)run, round, len,
                      bad != NULL ? bad : "another sender's");
    }
    free(m);
}

enum {
    ASLEEP_GET,        /* a consumer on an empty queue */
    ASLEEP_PUT,        /* a producer on a full queue (maxsize) */
    ASLEEP_PUT_STREAM, /* a producer inside a streamed message */
    ASLEEP_TWO_GETS,   /* one of two consumers; the other must still wake */
    ASLEEP_KINDS
};

START_TEST(processes_killed_asleep_in_put_or_get_hold_up_no_later_call)
{
    uint64_t run = run_seed("killed sleepers"), rs = run;
    int kills = 0, rounds = 0, asleep = 0;
    int64_t started = test_now_ms();
    while (more_rounds(kills, started)) {
        int round = rounds++;
        unsigned kind = (unsigned)(rnd(&rs) % ASLEEP_KINDS);
        useconds_t delay = (useconds_t)(rnd(&rs) % 20000u);
        mproc_queue *q = new_queue(4096, kind == ASLEEP_PUT ? 1 : 0, false);
        g_q = q;
        sleeper sl = {kind == ASLEEP_PUT_STREAM ? 50000u : 100u,
                      test_ms(20000)};
        if (kind == ASLEEP_PUT)
            timed_put(run, round, q, 100, 0, 0); /* now full */
        pid_t p = spawn(kind == ASLEEP_GET || kind == ASLEEP_TWO_GETS
                            ? child_sleeps_in_get
                            : child_sleeps_in_put,
                        &sl);
        pid_t other =
            kind == ASLEEP_TWO_GETS ? spawn(child_sleeps_in_get, NULL) : -1;
        /* Killed anywhere from before it sleeps to well into its sleep. */
        usleep(delay);
        asleep += test_wait_asleep(p, "futex", 0);
        kill_and_reap(p);
        kills++;
        switch (kind) {
        case ASLEEP_GET:
            timed_get(run, round, q, 50, MPROC_ETIMEDOUT, 0);
            timed_put(run, round, q, 100, 0, 0);
            timed_get(run, round, q, 1000, 0, 1);
            break;
        case ASLEEP_PUT:
            /* The killed put never went: the first message, then room. */
            timed_get(run, round, q, 0, 0, 1);
            timed_get(run, round, q, 50, MPROC_ETIMEDOUT, 0);
            timed_put(run, round, q, 100, 0, 0);
            timed_put(run, round, q, 100, 50, MPROC_ETIMEDOUT);
            timed_get(run, round, q, 0, 0, 1);
            break;
        case ASLEEP_PUT_STREAM:
            /* Its producers' side is held by the dead: no part of its
             * message comes, and a get ends on time. */
            timed_get(run, round, q, 150, MPROC_ETIMEDOUT, 0);
            timed_put(run, round, q, 100, 1000, 0);
            timed_get(run, round, q, 1000, 0, 1);
            timed_get(run, round, q, 50, MPROC_ETIMEDOUT, 0);
            break;
        default: {
            timed_put(run, round, q, 100, 0, 0);
            int code = wait_exit(other, 3000);
            if (code == -2)
                kill_and_reap(other);
            ck_assert_msg(code == 0,
                          "seed %llu round %d: the other consumer ended with "
                          "%d",
                          (unsigned long long)run, round, code);
            break;
        }
        }
        ck_assert_int_eq(mproc_queue_empty(q), 1);
        mproc_queue_close(q);
    }
    fprintf(stderr, "killed sleepers: %d kills, %d of them seen asleep\n",
            kills, asleep);
    ck_assert_int_gt(kills, 0);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("queue_stress");
    TEST_ADD(
        s, producers_killed_at_random_points_of_a_put_deliver_no_torn_message);
    TEST_ADD(
        s, consumers_killed_at_random_points_of_a_get_lose_only_what_they_held);
    TEST_ADD(s,
             joinable_workers_killed_between_get_and_task_done_never_hang_join);
    TEST_ADD(s, processes_killed_asleep_in_put_or_get_hold_up_no_later_call);
    return s;
}
