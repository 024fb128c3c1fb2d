/* Connections under kill -9: a sender killed at random points never makes
 * the receiver hang or accept a torn message; what it did receive is whole
 * and in order, and the end is reported as MPROC_ECLOSED (a message cut
 * by the death is dropped). Several senders on one ring end killed at
 * random points leave the ring to the survivors, who send all they have;
 * a receiver killed at random points leaves every sender with
 * MPROC_ECLOSED in bounded time. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal/ring.h"
#include "mproc.h"
#include "testlib.h"

/* Every pipe here has the ring size its edge cases were written for. */
static const mproc_pipe_opts ring64 = {TEST_RING};

#define ROUNDS 30
#define MAX_MSG (256 * 1024)

/* Message i: 8-byte sequence number, then bytes derived from it. */
static size_t msg_len(uint64_t i)
{
    /* Mostly small, sometimes larger than the pipe and the read buffer. */
    uint64_t h = i * 2654435761u;
    return (h % 7 == 0) ? 8 + (size_t)(h % MAX_MSG) : 8 + (size_t)(h % 200);
}

static void msg_fill(unsigned char *b, size_t len, uint64_t i)
{
    memcpy(b, &i, 8);
    for (size_t k = 8; k < len; k++)
        b[k] = (unsigned char)(k * 31u + i);
}

static int msg_ok(const unsigned char *b, size_t len, uint64_t i)
{
    uint64_t got;
    if (len != msg_len(i))
        return 0;
    memcpy(&got, b, 8);
    if (got != i)
        return 0;
    for (size_t k = 8; k < len; k++)
        if (b[k] != (unsigned char)(k * 31u + i))
            return 0;
    return 1;
}

static mproc_conn *g_send;

static int child_sends_forever(void *arg)
{
    (void)arg;
    unsigned char *b = malloc(MAX_MSG + 8);
    if (b == NULL)
        return 2;
    for (uint64_t i = 0;; i++) {
        size_t len = msg_len(i);
        msg_fill(b, len, i);
        if (mproc_conn_send(g_send, b, len, test_ms(20000)) != 0)
            return 3;
    }
}

static void kill_sender_at_random_points(bool duplex)
{
    srand((unsigned)getpid());
    unsigned char *b = malloc(MAX_MSG + 8);
    ck_assert_ptr_nonnull(b);
    int closed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        g_send = w;
        mproc_process *p;
        ck_assert_int_eq(
            mproc_process_start(&p, child_sends_forever, NULL, NULL), 0);
        mproc_conn_close(w);
        /* Receive for a random while, then kill the sender wherever it is. */
        int64_t until = test_now_ms() + rand() % 20;
        uint64_t next = 0;
        size_t len;
        int rc = 0;
        while (test_now_ms() < until) {
            rc = mproc_conn_recv(r, b, MAX_MSG + 8, &len, test_ms(5000));
            ck_assert_msg(rc == 0, "round %d: recv %s before the kill", round,
                          mproc_errname(rc));
            ck_assert_msg(msg_ok(b, len, next), "round %d: message %llu torn",
                          round, (unsigned long long)next);
            next++;
        }
        ck_assert_int_eq(mproc_process_kill(p), 0);
        ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
        int code = 0;
        ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
        ck_assert_int_eq(code, -SIGKILL);
        mproc_process_destroy(p);
        /* Drain: whole messages in order, then a clear end, never a hang. */
        for (;;) {
            rc = mproc_conn_recv(r, b, MAX_MSG + 8, &len, test_ms(5000));
            if (rc != 0)
                break;
            ck_assert_msg(msg_ok(b, len, next), "round %d: message %llu torn",
                          round, (unsigned long long)next);
            next++;
        }
        /* A message the kill cut is dropped, wherever the kill landed. */
        ck_assert_msg(rc == MPROC_ECLOSED, "round %d: end reported as %s",
                      round, mproc_errname(rc));
        closed++;
        mproc_conn_close(r);
    }
    free(b);
    fprintf(stderr, "%s: %d rounds ended MPROC_ECLOSED\n",
            duplex ? "duplex" : "pipe", closed);
}

START_TEST(pipe_sender_killed_at_random_points_never_tears_or_hangs)
{
    kill_sender_at_random_points(false);
}
END_TEST

START_TEST(duplex_sender_killed_at_random_points_never_tears_or_hangs)
{
    kill_sender_at_random_points(true);
}
END_TEST

/* ----- several senders on one ring end ----- */

#define NSEND 3
#define QUOTA 400              /* messages per sender and round */
#define BIG_MAX (200u * 1024u) /* largest message: three rings' worth */
#define MSG_HDR 16u            /* sender id, magic, sequence number */
#define MSG_MAGIC 0x5354524du
#define MULTI_ROUNDS 30
#define KILLED_RECEIVER_ROUNDS 20

/* A frame (8-byte header + payload) above the ring size is streamed in
 * chunks; a sender killed inside one cuts it (the receiver drops it). */
static bool streamed(uint64_t len)
{
    return len + 8 > TEST_RING;
}

static uint64_t mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The run's PRNG (splitmix64): a seed printed on failure replays a run. */
static uint64_t rnd(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15u;
    return mix(*s);
}

static uint64_t run_seed(void)
{
    const char *e = getenv("MPROC_STRESS_SEED");
    if (e != NULL && *e != '\0')
        return strtoull(e, NULL, 0);
    return mix((uint64_t)test_now_ms() * 1000003u ^ (uint64_t)getpid());
}

/* What one round's senders send. Every message names its sender and
 * sequence number, so it is at least MSG_HDR bytes (empty messages are
 * covered by tests/test_conn.c); sizes run up to BIG_MAX, a few of them
 * larger than the ring. */
typedef struct round_plan {
    uint64_t seed;
    bool small_only; /* no message is streamed: a kill can never cut */
    int big_first;   /* this sender's first message is BIG_MAX, or -1 */
} round_plan;

static size_t plan_len(const round_plan *pl, unsigned id, uint64_t seq)
{
    if (seq == 0 && (int)id == pl->big_first)
        return BIG_MAX;
    uint64_t h = mix(pl->seed ^ mix(((uint64_t)id << 48) ^ (seq + 1)));
    unsigned kind = (unsigned)(h & 7u);
    h >>= 3;
    uint64_t whole = TEST_RING - 8; /* the largest payload that fits */
    if (kind == 0 && !pl->small_only)
        return (size_t)(whole + 1 + h % (BIG_MAX - whole));
    if (kind <= 2)
        return (size_t)(MSG_HDR + h % (whole - MSG_HDR + 1));
    return (size_t)(MSG_HDR + h % 300);
}

/* Payload bytes depend on the sender, the sequence and the position (also
 * its high bits), so a misplaced or stale chunk shows. */
static unsigned char pattern(unsigned id, uint64_t seq, size_t k)
{
    return (unsigned char)((k >> 8) ^ (k * 131u) ^ (seq * 7u) ^ (id * 59u));
}

static void plan_fill(unsigned char *b, size_t len, unsigned id, uint64_t seq)
{
    uint32_t w[2] = {id, MSG_MAGIC};
    memcpy(b, w, 8);
    memcpy(b + 8, &seq, 8);
    for (size_t k = MSG_HDR; k < len; k++)
        b[k] = pattern(id, seq, k);
}

/* Checks a received message: NULL when whole and correct, with its sender
 * and sequence in *id, *seq; else a short reason. */
static const char *plan_check(const round_plan *pl, const unsigned char *b,
                              size_t len, unsigned *id, uint64_t *seq)
{
    uint32_t w[2];
    if (len < MSG_HDR)
        return "shorter than its header";
    memcpy(w, b, 8);
    memcpy(seq, b + 8, 8);
    *id = w[0];
    if (w[1] != MSG_MAGIC || w[0] >= NSEND)
        return "bad header";
    if (len != plan_len(pl, *id, *seq))
        return "wrong length";
    for (size_t k = MSG_HDR; k < len; k++)
        if (b[k] != pattern(*id, *seq, k))
            return "wrong payload";
    return NULL;
}

/* What each sender was doing, in memory shared with the test: read after
 * the sender is gone. */
typedef struct sender_state {
    _Atomic uint64_t cur_seq, cur_len; /* the message being sent */
    _Atomic uint64_t done;             /* messages whose send returned 0 */
    _Atomic int in_send;               /* inside mproc_conn_send */
    _Atomic int rc;                    /* the send's failure */
} sender_state;

typedef struct shared_state {
    _Atomic int go; /* senders that wait for it may start */
    sender_state s[NSEND];
} shared_state;

typedef struct sender_arg {
    mproc_conn *w, *r; /* r: the receiving end, closed at once */
    shared_state *sh;
    const round_plan *pl;
    unsigned id;
    bool wait_go;
} sender_arg;

/* Sender exit codes. */
enum { SENT_ALL = 0, GOT_BROKEN = 10, GOT_CLOSED = 11, FAILED = 12 };

static int child_sender(void *p)
{
    const sender_arg *a = p;
    mproc_conn_close(a->r);
    sender_state *st = &a->sh->s[a->id];
    unsigned char *b = malloc(BIG_MAX);
    if (b == NULL)
        return FAILED;
    int64_t until = test_now_ms() + test_ms(10000);
    while (a->wait_go && atomic_load(&a->sh->go) == 0)
        if (test_now_ms() > until || usleep(200) < 0)
            return FAILED;
    for (uint64_t seq = 0; seq < QUOTA; seq++) {
        size_t len = plan_len(a->pl, a->id, seq);
        plan_fill(b, len, a->id, seq);
        atomic_store(&st->cur_seq, seq);
        atomic_store(&st->cur_len, len);
        atomic_store(&st->in_send, 1);
        int rc = mproc_conn_send(a->w, b, len, test_ms(10000));
        if (rc != 0) {
            atomic_store(&st->rc, rc);
            return rc == MPROC_EBROKEN   ? GOT_BROKEN
                   : rc == MPROC_ECLOSED ? GOT_CLOSED
                                         : FAILED;
        }
        atomic_store(&st->done, seq + 1);
        atomic_store(&st->in_send, 0);
    }
    free(b);
    return SENT_ALL;
}

/* Kills p (which may have ended by itself) and reaps it. */
static void kill_and_join(mproc_process *p)
{
    (void)mproc_process_kill(p);
    ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
}

enum { ROUND_CLEAN, ROUND_CUT };

/* One round: NSEND senders on one send end; kill some at random moments
 * (or, forced, the one inside a streamed message); receive and check
 * everything. Returns ROUND_CUT when a killed sender's streamed message
 * was dropped, else ROUND_CLEAN. */
static int senders_round(int round, uint64_t run, uint64_t *rs, bool duplex,
                         bool small_only, bool forced_cut, shared_state *sh,
                         unsigned char *b)
{
    memset(sh, 0, sizeof *sh);
    round_plan pl = {rnd(rs), small_only, forced_cut ? 0 : -1};
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
    sender_arg args[NSEND];
    mproc_process *p[NSEND];
    for (unsigned i = 0; i < NSEND; i++) {
        args[i] = (sender_arg){w, r, sh, &pl, i, forced_cut && i != 0};
        ck_assert_int_eq(
            mproc_process_start(&p[i], child_sender, &args[i], NULL), 0);
    }
    mproc_conn_close(w);

    bool to_kill[NSEND] = {false}, killed[NSEND] = {false};
    int64_t kill_at[NSEND] = {0};
    if (forced_cut) {
        /* Sender 0 alone streams a message three times the ring; once the
         * ring holds its first part (the receiver takes nothing), it is
         * inside: kill it there, then let the others go. */
        ck_assert_msg(mproc_conn_poll(r, test_ms(5000)) == 0,
                      "seed %llu round %d: nothing came",
                      (unsigned long long)run, round);
        kill_and_join(p[0]);
        killed[0] = true;
        atomic_store(&sh->go, 1);
    } else {
        unsigned mask = 1u + (unsigned)(rnd(rs) % ((1u << NSEND) - 1u));
        int64_t now = test_now_ms();
        for (unsigned i = 0; i < NSEND; i++)
            if (mask & (1u << i)) {
                to_kill[i] = true;
                kill_at[i] = now + (int64_t)(rnd(rs) % 21u);
            }
    }

    uint64_t next[NSEND] = {0};
    int rc;
    for (;;) {
        /* Kill whoever is due; wait for a message until the next kill. */
        int64_t now = test_now_ms(), wait = test_ms(5000);
        for (unsigned i = 0; i < NSEND; i++) {
            if (!to_kill[i] || killed[i])
                continue;
            if (kill_at[i] <= now) {
                kill_and_join(p[i]);
                killed[i] = true;
            } else if (kill_at[i] - now < wait) {
                wait = kill_at[i] - now;
            }
        }
        bool pending = wait < test_ms(5000);
        size_t len;
        rc = mproc_conn_recv(r, b, BIG_MAX, &len, wait);
        if (rc == MPROC_ETIMEDOUT && pending)
            continue;
        if (rc != 0)
            break;
        unsigned id;
        uint64_t seq;
        const char *bad = plan_check(&pl, b, len, &id, &seq);
        ck_assert_msg(bad == NULL,
                      "seed %llu round %d: message of %zu bytes: %s",
                      (unsigned long long)run, round, len, bad);
        ck_assert_msg(seq == next[id],
                      "seed %llu round %d: sender %u sequence %llu after %llu",
                      (unsigned long long)run, round, id,
                      (unsigned long long)seq, (unsigned long long)next[id]);
        next[id]++;
    }
    /* Kills due after the stream ended (every sender finished early). */
    for (unsigned i = 0; i < NSEND; i++)
        if (to_kill[i] && !killed[i]) {
            kill_and_join(p[i]);
            killed[i] = true;
        }
    ck_assert_msg(rc == MPROC_ECLOSED,
                  "seed %llu round %d: the stream ended with %s",
                  (unsigned long long)run, round, mproc_errname(rc));
    bool cut = false;
    for (unsigned i = 0; i < NSEND; i++) {
        if (!killed[i])
            ck_assert_int_eq(mproc_process_join(p[i], test_ms(10000)), 0);
        int code;
        ck_assert_int_eq(mproc_process_exitcode(p[i], &code), 0);
        mproc_process_destroy(p[i]);
        sender_state *st = &sh->s[i];
        uint64_t done = atomic_load(&st->done);
        int in_send = atomic_load(&st->in_send);
        bool died = code == -SIGKILL;
        /* A survivor sends all it has, whatever the others' deaths cut. */
        ck_assert_msg(died || code == SENT_ALL,
                      "seed %llu round %d: sender %u ended with %d (%s)",
                      (unsigned long long)run, round, i, code,
                      mproc_errname(atomic_load(&st->rc)));
        ck_assert_msg(!died || killed[i], "seed %llu round %d: sender %u died",
                      (unsigned long long)run, round, i);
        /* Everything a sender was told went, came (and at most the one it
         * was sending when killed); a survivor's whole quota came. */
        ck_assert_msg(next[i] >= done && next[i] <= done + (uint64_t)in_send,
                      "seed %llu round %d: sender %u sent %llu (in send: %d), "
                      "%llu came",
                      (unsigned long long)run, round, i,
                      (unsigned long long)done, in_send,
                      (unsigned long long)next[i]);
        ck_assert_msg(code != SENT_ALL || next[i] == QUOTA,
                      "seed %llu round %d: sender %u: %llu of %d came",
                      (unsigned long long)run, round, i,
                      (unsigned long long)next[i], QUOTA);
        if (died && in_send && streamed(atomic_load(&st->cur_len)) &&
            next[i] == done)
            cut = true;
    }
    /* Killed with its message three rings long half in the ring: that
     * message never comes. */
    ck_assert_msg(!forced_cut || next[0] == 0,
                  "seed %llu round %d: a message whose sender was killed "
                  "inside it arrived",
                  (unsigned long long)run, round);
    mproc_conn_close(r);
    return cut ? ROUND_CUT : ROUND_CLEAN;
}

/* RUN_SERIAL several_senders_killed_at_random_never_corrupt_the_ring */
START_TEST(several_senders_killed_at_random_never_corrupt_the_ring)
{
    uint64_t run = run_seed(), rs = run;
    fprintf(stderr, "several senders: seed %llu (MPROC_STRESS_SEED)\n",
            (unsigned long long)run);
    unsigned char *b = malloc(BIG_MAX);
    ck_assert_ptr_nonnull(b);
    /* What the senders were doing, shared with them (inherited). */
    shared_state *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(sh != MAP_FAILED);
    int n[2] = {0, 0}, random_n[2] = {0, 0};
    for (int round = 0; round < MULTI_ROUNDS; round++) {
        /* Every third round over a duplex pair. Some rounds force a case:
         * a sender killed deliberately inside a message larger than the
         * ring (cut), or messages that all fit the ring (never cut,
         * wherever the kills land); the others are left to chance. */
        bool duplex = round % 3 == 1;
        bool forced_cut = round % 8 == 3, small_only = round % 8 == 6;
        int end = senders_round(round, run, &rs, duplex, small_only, forced_cut,
                                sh, b);
        n[end]++;
        if (!forced_cut && !small_only)
            random_n[end]++;
    }
    free(b);
    munmap(sh, sizeof *sh);
    fprintf(stderr,
            "several senders: %d rounds without a cut message, %d with "
            "one dropped; of the random ones %d without, %d with\n",
            n[ROUND_CLEAN], n[ROUND_CUT], random_n[ROUND_CLEAN],
            random_n[ROUND_CUT]);
    ck_assert_int_gt(n[ROUND_CLEAN], 0);
    ck_assert_int_gt(n[ROUND_CUT], 0);
}
END_TEST

/* ----- a receiver killed at random points ----- */

typedef struct receiver_arg {
    mproc_conn *r, *w; /* w: the sending end, closed at once */
} receiver_arg;

/* Receives until killed; a wrong message ends it with 1. */
static int child_receiver(void *p)
{
    const receiver_arg *a = p;
    mproc_conn_close(a->w);
    void *m;
    size_t len;
    int rc;
    while ((rc = mproc_conn_recv_alloc(a->r, &m, &len, BIG_MAX,
                                       test_ms(10000))) == 0) {
        unsigned char *b = m;
        int ok = len >= 8;
        for (size_t k = 8; ok && k < len; k++)
            ok = b[k] == (unsigned char)(k * 13u + b[0]);
        free(m);
        if (!ok)
            return 1;
    }
    fprintf(stderr, "receiver: %s\n", mproc_errname(rc));
    return 2;
}

/* Sends until the send fails: 0 when it failed with MPROC_ECLOSED. */
static int child_sends_until_closed(void *p)
{
    const sender_arg *a = p;
    mproc_conn_close(a->r);
    unsigned char *b = malloc(BIG_MAX);
    if (b == NULL)
        return FAILED;
    uint64_t s = a->pl->seed + a->id;
    for (;;) {
        uint64_t h = rnd(&s);
        size_t len = 8 + (size_t)((h & 3u) == 0 ? (h >> 2) % (BIG_MAX - 8)
                                                : (h >> 2) % 4000u);
        memcpy(b, &h, 8);
        for (size_t k = 8; k < len; k++)
            b[k] = (unsigned char)(k * 13u + b[0]);
        int rc = mproc_conn_send(a->w, b, len, test_ms(10000));
        if (rc != 0) {
            free(b);
            if (rc == MPROC_ECLOSED)
                return SENT_ALL;
            fprintf(stderr, "sender %u: %s\n", a->id, mproc_errname(rc));
            return FAILED;
        }
    }
}

START_TEST(senders_see_closed_when_the_receiver_is_killed_at_random)
{
    uint64_t run = run_seed(), rs = run;
    fprintf(stderr, "killed receiver: seed %llu (MPROC_STRESS_SEED)\n",
            (unsigned long long)run);
    int64_t worst = 0;
    for (int round = 0; round < KILLED_RECEIVER_ROUNDS; round++) {
        bool duplex = round % 2 == 1;
        round_plan pl = {rnd(&rs), false, -1};
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        receiver_arg ra = {r, w};
        mproc_process *rp, *p[NSEND];
        ck_assert_int_eq(mproc_process_start(&rp, child_receiver, &ra, NULL),
                         0);
        sender_arg args[NSEND];
        for (unsigned i = 0; i < NSEND; i++) {
            args[i] = (sender_arg){w, r, NULL, &pl, i, false};
            ck_assert_int_eq(mproc_process_start(&p[i],
                                                 child_sends_until_closed,
                                                 &args[i], NULL),
                             0);
        }
        mproc_conn_close(r);
        mproc_conn_close(w);
        usleep((useconds_t)(rnd(&rs) % 21u) * 1000u);
        kill_and_join(rp);
        int code;
        ck_assert_int_eq(mproc_process_exitcode(rp, &code), 0);
        ck_assert_msg(code == -SIGKILL,
                      "seed %llu round %d: the receiver ended with %d",
                      (unsigned long long)run, round, code);
        mproc_process_destroy(rp);
        /* Each sender learns within 10 ms that nobody reads, or at once
         * when it waits for room: allow far more, but not a hang. */
        int64_t t0 = test_now_ms();
        for (unsigned i = 0; i < NSEND; i++) {
            ck_assert_msg(mproc_process_join(p[i], test_ms(5000)) == 0,
                          "seed %llu round %d: sender %u still sends",
                          (unsigned long long)run, round, i);
            ck_assert_int_eq(mproc_process_exitcode(p[i], &code), 0);
            ck_assert_msg(code == SENT_ALL,
                          "seed %llu round %d: sender %u ended with %d "
                          "(not MPROC_ECLOSED)",
                          (unsigned long long)run, round, i, code);
            mproc_process_destroy(p[i]);
        }
        if (test_now_ms() - t0 > worst)
            worst = test_now_ms() - t0;
    }
    fprintf(stderr,
            "killed receiver: every sender saw MPROC_ECLOSED within "
            "%lld ms\n",
            (long long)worst);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("conn_stress");
    TEST_ADD(s, pipe_sender_killed_at_random_points_never_tears_or_hangs);
    TEST_ADD(s, duplex_sender_killed_at_random_points_never_tears_or_hangs);
    TEST_ADD(s, several_senders_killed_at_random_never_corrupt_the_ring);
    TEST_ADD(s, senders_see_closed_when_the_receiver_is_killed_at_random);
    return s;
}
