/* Connections through shared-memory rings (mproc_pipe ends): several
 * sending processes, senders killed or timed out inside a message, the
 * doorbell and readiness, a peer that writes garbage into the ring, a
 * receiver that goes away, ends passed to other processes, and bad input. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/conn.h"
#include "internal/frame.h"
#include "internal/ring.h"
#include "mproc.h"
#include "os/os.h"
#include "testlib.h"

/* Every pipe here has the ring size its edge cases were written for. */
static const mproc_pipe_opts ring64 = {TEST_RING};

/* Waits up to ms for a forked child and returns its exit code (128+signal
 * when killed); a child still running then is killed and -2 returned. */
static int reap(pid_t pid, int64_t ms)
{
    int pfd = mproc__os_pidfd_open(pid);
    if (pfd >= 0) {
        struct pollfd p = {pfd, POLLIN, 0};
        int64_t until = test_now_ms() + ms;
        int k;
        do {
            int64_t left = until - test_now_ms();
            k = poll(&p, 1, left > 0 ? (int)left : 0);
        } while (k < 0 && errno == EINTR);
        close(pfd);
        if (k == 0) {
            kill(pid, SIGKILL);
            test_wait_status(pid);
            return -2;
        }
    }
    return test_wait_status(pid);
}

/* Waits (bounded) until a word in the ring reaches a value: the state the
 * test needs another process to be in, not a guess at how long it takes. */
static int await_word(_Atomic uint32_t *w, uint32_t want, int64_t ms)
{
    int64_t until = test_now_ms() + ms;
    while (atomic_load(w) != want) {
        if (test_now_ms() > until)
            return -1;
        usleep(1000);
    }
    return 0;
}

/* Waits (bounded) until a ring's sender sleeps for room with more than
 * half the ring in use: it cannot go on until the receiver takes some. */
static int await_full(mproc__ringio *x, int64_t ms)
{
    int64_t until = test_now_ms() + ms;
    while (atomic_load(&x->r->w.room.wait) == 0 ||
           mproc__rec_pos(atomic_load(&x->r->w.head)) -
                   atomic_load(&x->r->w.tail) <=
               TEST_RING / 2u) {
        if (test_now_ms() > until)
            return -1;
        usleep(1000);
    }
    return 0;
}

/* Publishes raw bytes (n, within what is left before the ring's end) to a
 * ring as a (broken) peer would, counting one message. */
static int put_raw(mproc__ringio *x, const void *b, size_t n)
{
    mproc__deadline d;
    mproc__deadline_init(&d, 1000);
    int rc = mproc__ring_lock(x, &d);
    if (rc < 0)
        return rc;
    uint64_t h = atomic_load(&x->r->w.head);
    uint32_t pos = mproc__rec_pos(h);
    memcpy(x->r->data + (pos & (TEST_RING - 1)), b, n);
    atomic_store(&x->r->w.head,
                 mproc__rec_pack(mproc__rec_cnt(h) + 1, pos + (uint32_t)n));
    mproc__rec_wake_consumers(&x->v);
    mproc__ring_unlock(x);
    return 0;
}

/* A record as put_raw would publish it: its header and up to 16 bytes of
 * payload (dlen of them) in b; returns the bytes to publish. */
static size_t rec_bytes(unsigned char *b, uint32_t kind, uint32_t len,
                        const void *data, size_t dlen)
{
    mproc__rec h = {.len = len, .kind = (uint8_t)kind};
    memcpy(b, &h, sizeof h);
    memcpy(b + sizeof h, data, dlen);
    return sizeof h + ((dlen + 7u) & ~(size_t)7u);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

struct sender {
    mproc_conn *c;
    const unsigned char *buf;
    size_t len;
    int count; /* messages of len bytes from buf + i * len */
    int rc;
};

static void *send_thread(void *p)
{
    struct sender *s = p;
    s->rc = 0;
    for (int i = 0; i < s->count && s->rc == 0; i++)
        s->rc = mproc_conn_send(s->c, s->buf + (size_t)i * s->len, s->len,
                                test_ms(10000));
    return NULL;
}

/* ----- several sending processes ----- */

#define NCHILD 4
#define PER_CHILD 2000
#define MAXMSG (150u * 1024u)

/* The size of message seq of child id: the ring's edges first (a message
 * of exactly the most that travels whole, one byte more, ...), then
 * mostly small ones,
 * some empty and some larger than the ring (streamed). */
static size_t msg_size(unsigned id, unsigned seq)
{
    static const size_t edge[] = {0, 1, 5, 32759, 32760, 32761, 65536, MAXMSG};
    if (seq < 8)
        return edge[(seq + id) % 8];
    if (seq % 101 == 0)
        return 0;
    uint32_t h = id * 2654435761u ^ seq * 2246822519u;
    h ^= h >> 15;
    h *= 2654435761u;
    h ^= h >> 13;
    if (h % 50 == 0)
        return 60000 + (h / 50) % (MAXMSG - 60000 + 1);
    return 1 + h % 3000;
}

/* A message says who sent it: byte 0 the child, bytes 1-4 (when there) the
 * sequence number, the rest a pattern of both. */
static void fill_msg(unsigned char *b, size_t n, unsigned id, unsigned seq)
{
    if (n == 0)
        return;
    b[0] = (unsigned char)id;
    size_t off = 1;
    for (; off < 5 && off < n; off++)
        b[off] = (unsigned char)(seq >> (8 * (off - 1)));
    test_pattern(b + off, n - off, id * 131u + seq);
}

static int child_sends_many(mproc_conn *w, unsigned id)
{
    unsigned char *b = malloc(MAXMSG);
    if (b == NULL)
        return 2;
    for (unsigned seq = 0; seq < PER_CHILD; seq++) {
        size_t n = msg_size(id, seq);
        fill_msg(b, n, id, seq);
        int rc = mproc_conn_send(w, b, n, test_ms(10000));
        if (rc != 0)
            return 3;
    }
    free(b);
    return 0;
}

START_TEST(several_processes_send_on_one_end_without_interleaving)
{
    unsigned zeros = 0;
    for (unsigned id = 0; id < NCHILD; id++)
        for (unsigned seq = 0; seq < PER_CHILD; seq++)
            zeros += msg_size(id, seq) == 0;
    unsigned char *b = malloc(MAXMSG);
    ck_assert_ptr_nonnull(b);
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        pid_t pids[NCHILD];
        for (unsigned id = 0; id < NCHILD; id++) {
            pids[id] = fork();
            ck_assert_int_ge(pids[id], 0);
            if (pids[id] == 0) {
                mproc_conn_close(r);
                _exit(child_sends_many(w, id));
            }
        }
        mproc_conn_close(w);
        unsigned next[NCHILD] = {0}, got_zeros = 0;
        int bad = 0;
        for (unsigned k = 0; k < NCHILD * PER_CHILD && bad == 0; k++) {
            size_t n = 0;
            void *p = NULL;
            unsigned char *m = b;
            int rc;
            if (k % 7 == 0) {
                rc = mproc_conn_recv_alloc(r, &p, &n, MAXMSG, test_ms(10000));
                m = p;
            } else {
                rc = mproc_conn_recv(r, b, MAXMSG, &n, test_ms(10000));
            }
            if (rc != 0) {
                bad = 1000 + rc;
            } else if (n == 0) {
                got_zeros++;
            } else if (m[0] >= NCHILD) {
                bad = 2;
            } else {
                unsigned id = m[0];
                while (next[id] < PER_CHILD && msg_size(id, next[id]) == 0)
                    next[id]++;
                unsigned seq = next[id]++;
                unsigned char *want = malloc(n);
                if (seq >= PER_CHILD || msg_size(id, seq) != n || want == NULL)
                    bad = 3;
                else if (fill_msg(want, n, id, seq), memcmp(want, m, n) != 0)
                    bad = 4; /* torn, interleaved or out of order */
                free(want);
            }
            free(p);
        }
        size_t n_end = 0;
        int rc_end = bad == 0
                         ? mproc_conn_recv(r, b, MAXMSG, &n_end, test_ms(10000))
                         : 0;
        if (bad != 0)
            for (unsigned id = 0; id < NCHILD; id++)
                kill(pids[id], SIGKILL);
        int st[NCHILD];
        for (unsigned id = 0; id < NCHILD; id++)
            st[id] = reap(pids[id], test_ms(10000));
        ck_assert_msg(bad == 0, "duplex %d: bad %d", duplex, bad);
        for (unsigned id = 0; id < NCHILD; id++) {
            while (next[id] < PER_CHILD && msg_size(id, next[id]) == 0)
                next[id]++;
            ck_assert_uint_eq(next[id], PER_CHILD);
            ck_assert_int_eq(st[id], 0);
        }
        ck_assert_uint_eq(got_zeros, zeros);
        /* Every sender closed (exited): the end reports it. */
        ck_assert_int_eq(rc_end, MPROC_ECLOSED);
        mproc_conn_close(r);
    }
    free(b);
}
END_TEST

START_TEST(sender_with_a_stale_view_never_overwrites_unread_messages)
{
    /* Two handles on one send end (each keeps its own view of how far the
     * receiver is): one sends while the other is idle, so the idle one's
     * view falls more than a ring behind. */
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w, *x, *y, *w2;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        ck_assert_int_eq(mproc_pipe(&x, &y, true, &ring64), 0);
        ck_assert_int_eq(mproc_conn_send_conn(x, w, 0), 0);
        ck_assert_int_eq(mproc_conn_recv_conn(y, &w2, test_ms(1000)), 0);
        unsigned char m[1000], got[1000];
        size_t n;
        ck_assert_int_eq(mproc_conn_send(w, m, sizeof m, 0), 0);
        ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
        for (int i = 0; i < 80; i++) {
            ck_assert_int_eq(mproc_conn_send(w2, m, sizeof m, 0), 0);
            ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
        }
        int count = 0, rc;
        for (;;) {
            test_pattern(m, sizeof m, (unsigned)count);
            if ((rc = mproc_conn_send(w2, m, sizeof m, 0)) != 0)
                break;
            count++;
        }
        ck_assert_int_eq(rc, MPROC_ETIMEDOUT);
        /* The ring is full: the stale handle must wait, not overwrite. */
        memset(m, 0xee, sizeof m);
        ck_assert_int_eq(mproc_conn_send(w, m, sizeof m, 0), MPROC_ETIMEDOUT);
        ck_assert_int_eq(mproc_conn_send(w, m, 16, 0), MPROC_ETIMEDOUT);
        for (int i = 0; i < count; i++) {
            ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
            ck_assert_uint_eq(n, sizeof m);
            ck_assert(test_pattern_ok(got, n, (unsigned)i));
        }
        ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0),
                         MPROC_ETIMEDOUT);
        /* With room again, it sends. */
        ck_assert_int_eq(mproc_conn_send(w, m, sizeof m, 0), 0);
        ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
        ck_assert_uint_eq(got[0], 0xee);
        mproc_conn_close(w2);
        mproc_conn_close(x);
        mproc_conn_close(y);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
}
END_TEST

/* ----- senders that stop inside a message ----- */

/* A child that sends one 64 MiB message nobody reads: it blocks inside. */
static void child_sends_huge(mproc_conn *r, mproc_conn *w)
{
    mproc_conn_close(r);
    size_t len = (size_t)64 << 20;
    char *b = calloc(1, len);
    mproc_conn_send(w, b, len, MPROC_FOREVER);
    _exit(1);
}

/* The messages a second sender sends once told (go), each checked by the
 * receiver: "x" then "y". Holds the end until told again, so that EOF is
 * not what the receiver sees. */
static void child_sends_after_go(mproc_conn *r, mproc_conn *w, int go[2])
{
    mproc_conn_close(r);
    close(go[1]);
    char c;
    if (read(go[0], &c, 1) != 1)
        _exit(2);
    int rc1 = mproc_conn_send(w, "x", 1, test_ms(5000));
    int rc2 = mproc_conn_send(w, "y", 1, test_ms(5000));
    while (read(go[0], &c, 1) > 0)
        ;
    _exit(rc1 == 0 && rc2 == 0 ? 0 : 3);
}

/* The receiving end of a pipe whose sender was killed inside a message
 * larger than the ring, once the receiver saw it begin ("before", sent
 * ahead of it, is taken and checked). With go (not NULL), a second
 * sender, *b, holds the send end and sends "x" and "y" once a byte is
 * written to *go. */
static mproc_conn *killed_inside(bool duplex, pid_t *b, int *go)
{
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
    ck_assert_int_eq(mproc_conn_send(w, "before", 6, 0), 0);
    int g[2] = {-1, -1};
    if (go != NULL)
        ck_assert_int_eq(pipe2(g, O_CLOEXEC), 0);
    pid_t a = fork();
    ck_assert_int_ge(a, 0);
    if (a == 0)
        child_sends_huge(r, w);
    if (go != NULL) {
        *b = fork();
        ck_assert_int_ge(*b, 0);
        if (*b == 0)
            child_sends_after_go(r, w, g);
        close(g[0]);
        *go = g[1];
    }
    mproc_conn_close(w);
    char buf[16];
    size_t n = 0;
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
    ck_assert_mem_eq(buf, "before", 6);
    /* The large message has begun: kill its sender inside it. */
    ck_assert_int_eq(mproc_conn_poll(r, test_ms(10000)), 0);
    kill(a, SIGKILL);
    ck_assert_int_eq(reap(a, test_ms(10000)), 128 + SIGKILL);
    return r;
}

/* "x" and "y" from the second sender, then (it told to end and reaped)
 * the end of the stream: nothing of the cut message ever shows. */
static void second_sender_and_end(mproc_conn *r, pid_t b, int go)
{
    void *p = NULL;
    size_t n = 0;
    ck_assert_int_eq(mproc_conn_recv_alloc(r, &p, &n, SIZE_MAX, test_ms(10000)),
                     0);
    ck_assert_uint_eq(n, 1);
    ck_assert_mem_eq(p, "x", 1);
    free(p);
    char buf[4];
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, test_ms(5000)), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_mem_eq(buf, "y", 1);
    close(go);
    ck_assert_int_eq(reap(b, test_ms(10000)), 0);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, test_ms(5000)),
                     MPROC_ECLOSED);
}

/* A sender killed inside a message larger than the ring, nobody else
 * sending: the receiver's sleep slice finds the dead sender and cuts the
 * message, which is dropped whole; then the other sender goes on. */
START_TEST(sender_killed_inside_a_large_message_is_dropped_and_others_go_on)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        pid_t b;
        int go;
        mproc_conn *r = killed_inside(duplex, &b, &go);
        int64_t t0 = test_now_ms();
        void *p = NULL;
        size_t n;
        ck_assert_int_eq(mproc_conn_recv_alloc(r, &p, &n, SIZE_MAX, 300),
                         MPROC_ETIMEDOUT);
        ck_assert_ptr_null(p);
        ck_assert_int_lt(test_now_ms() - t0, test_ms(5000));
        /* The receiver aborted it itself (nothing else took the lock) and
         * took its records. */
        mproc__ring *g = mproc__conn_ringio(r, false)->r;
        ck_assert_uint_eq(atomic_load(&g->w.pinside), 0);
        ck_assert_uint_eq(mproc__rec_pos(atomic_load(&g->w.rd)),
                          mproc__rec_pos(atomic_load(&g->w.head)));
        ck_assert_int_eq(write(go, "g", 1), 1);
        second_sender_and_end(r, b, go);
        mproc_conn_close(r);
    }
}
END_TEST

/* The same death with the next sender coming first: it aborts the message
 * when it takes the dead sender's lock, and its own messages follow. */
START_TEST(next_sender_cuts_a_dead_senders_large_message)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        pid_t b;
        int go;
        mproc_conn *r = killed_inside(duplex, &b, &go);
        ck_assert_int_eq(write(go, "g", 1), 1);
        second_sender_and_end(r, b, go);
        mproc_conn_close(r);
    }
}
END_TEST

/* The only sender killed inside a large message: the receiver drops it
 * and sees the end of the stream, not a protocol error. */
START_TEST(last_sender_killed_inside_a_large_message_ends_the_stream)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r = killed_inside(duplex, NULL, NULL);
        void *p = NULL;
        size_t n;
        ck_assert_int_eq(
            mproc_conn_recv_alloc(r, &p, &n, SIZE_MAX, test_ms(10000)),
            MPROC_ECLOSED);
        ck_assert_ptr_null(p);
        mproc_conn_close(r);
    }
}
END_TEST

/* The same with a buffer too small for the message: it is not reported
 * by its size (its sender is dead, which the receiver looks up before it
 * says MPROC_EMSGSIZE), it is dropped, and the stream ends. */
START_TEST(a_dead_senders_message_is_not_reported_by_its_size)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r = killed_inside(duplex, NULL, NULL);
        char buf[16];
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0),
                         MPROC_ECLOSED);
        mproc_conn_close(r);
    }
}
END_TEST

/* A send that times out inside a message with the ring exactly full owes
 * its ABORT; what the receiver then reads before it frees the room for
 * it, lazily. The message is not reported by its size to a small buffer
 * (the receiver, finding its sender gone, frees and ends it). */
START_TEST(a_message_aborted_in_a_full_ring_is_not_reported_by_its_size)
{
    mproc_pipe_opts o = MPROC_PIPE_OPTS_INIT;
    o.ring_size = 4096;
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &o), 0);
    unsigned char m[10000] = {0};
    char small[32];
    size_t n;
    ck_assert_int_eq(mproc_conn_send(w, m, 16, 0), 0);
    ck_assert_int_eq(mproc_conn_send(w, m, sizeof m, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_conn_recv(r, small, sizeof small, &n, 0), 0);
    ck_assert_uint_eq(n, 16);
    ck_assert_int_eq(mproc_conn_recv(r, small, 8, &n, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_conn_send(w, "z", 1, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, small, 8, &n, 0), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_mem_eq(small, "z", 1);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

struct batcher {
    mproc_conn *w;
    const unsigned char *m;
    size_t sent;
    int rc;
};

static void *send_two(void *p)
{
    struct batcher *b = p;
    mproc_conn_msg two[2] = {{b->m, 2040}, {b->m, 2040}};
    b->rc = mproc_conn_send_batch(b->w, two, 2, &b->sent, test_ms(5000));
    return NULL;
}

/* A batch whose first message went out the slow way (it waited for the
 * room the receiver had read and not yet freed) and whose second waits
 * for room only the receiver can make: the first is rung for before the
 * wait, so a receiver asleep on its fd alone (an event loop) wakes. */
START_TEST(a_batch_rings_for_what_it_published_before_it_waits)
{
    mproc_pipe_opts o = MPROC_PIPE_OPTS_INIT;
    o.ring_size = 4096;
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &o), 0);
    static unsigned char m[2040];
    unsigned char got[2040];
    size_t n;
    /* 504 bytes read and not freed (less than an eighth of the ring). */
    ck_assert_int_eq(mproc_conn_send(w, m, 1984, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
    ck_assert_int_eq(mproc_conn_send(w, m, 496, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
    /* The receiver arms its doorbell and waits on the fd alone. */
    ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0),
                     MPROC_ETIMEDOUT);
    struct batcher b = {w, m, 0, -1};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, send_two, &b), 0);
    struct pollfd p = {mproc_conn_fd(r), POLLIN, 0};
    int k = poll(&p, 1, (int)test_ms(3000));
    int rc1 = mproc_conn_recv(r, got, sizeof got, &n, test_ms(5000));
    int rc2 = mproc_conn_recv(r, got, sizeof got, &n, test_ms(5000));
    pthread_join(t, NULL);
    ck_assert_int_eq(k, 1);
    ck_assert_int_eq(rc1, 0);
    ck_assert_int_eq(rc2, 0);
    ck_assert_int_eq(b.rc, 0);
    ck_assert_uint_eq(b.sent, 2);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

/* Two large messages whose sends timed out inside them while the receiver
 * has not reached the first: the first began behind 20 small ones, timed
 * out with the ring full (its ABORT owed: no room for it), and is aborted
 * by the second send, which began in the room the small ones left and
 * timed out too. */
static void two_cut_messages(mproc_conn **r, mproc_conn **w)
{
    size_t len = 1 << 20;
    unsigned char *big = calloc(1, len);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(mproc_pipe(r, w, false, &ring64), 0);
    unsigned char small[1000];
    for (int i = 0; i < 20; i++) {
        test_pattern(small, sizeof small, (unsigned)i);
        ck_assert_int_eq(mproc_conn_send(*w, small, sizeof small, 0), 0);
    }
    ck_assert_int_eq(mproc_conn_send(*w, big, len, 50), MPROC_ETIMEDOUT);
    /* The receiver takes the small ones, not reaching the first cut. */
    size_t n;
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(mproc_conn_recv(*r, small, sizeof small, &n, 0), 0);
        ck_assert(test_pattern_ok(small, n, (unsigned)i));
    }
    ck_assert_int_eq(mproc_conn_send(*w, big, len, 50), MPROC_ETIMEDOUT);
    free(big);
}

/* The receiver drops both, even with a buffer too small for either and
 * no time to wait: neither is reported as too large. */
START_TEST(two_cut_messages_are_dropped_not_reported_by_size)
{
    mproc_conn *r, *w;
    two_cut_messages(&r, &w);
    char buf[16];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0),
                     MPROC_ETIMEDOUT);
    /* Both were dropped: the ring is read to its end, and the stream goes
     * on. */
    mproc__ring *g = mproc__conn_ringio(r, false)->r;
    ck_assert_uint_eq(mproc__rec_pos(atomic_load(&g->w.rd)),
                      mproc__rec_pos(atomic_load(&g->w.head)));
    ck_assert_int_eq(mproc_conn_send(w, "z", 1, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_mem_eq(buf, "z", 1);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

/* Begins a streamed message of total bytes under the senders' lock, as its
 * sender would, publishing its first piece (with 30000 bytes) and a middle
 * one (30000 more): left begun. */
static void begin_stream(mproc__ringio *io, uint64_t total,
                         const unsigned char *part)
{
    mproc__deadline d;
    mproc__deadline_init(&d, 1000);
    uint32_t pos;
    ck_assert_int_eq(mproc__rec_place(&io->v, 8 + 30008, 1, &d, &pos), 0);
    mproc__rec_put_hdr(&io->v, pos, MPROC__REC_FIRST, 30008);
    unsigned char *p = (unsigned char *)(mproc__rec_at(&io->v, pos) + 1);
    memcpy(p, &total, 8);
    memcpy(p + 8, part, 30000);
    atomic_store(&io->r->w.pinside, 1);
    mproc__rec_publish(&io->v, pos + 8 + 30008, 1);
    ck_assert_int_eq(mproc__rec_place(&io->v, 8 + 30000, 0, &d, &pos), 0);
    mproc__rec_put_hdr(&io->v, pos, MPROC__REC_MID, 30000);
    memcpy(mproc__rec_at(&io->v, pos) + 1, part, 30000);
    mproc__rec_publish(&io->v, pos + 8 + 30000, 0);
}

/* A receiver that timed out inside a message (it holds the part that came)
 * whose sender then gave up on it: the next sender aborts it before its
 * own, which times out too and is aborted in turn. Both are dropped, the
 * first where the receiver stands; nothing of either is delivered, not
 * even as the rest of the other. */
START_TEST(a_message_left_begun_under_a_waiting_receiver_is_dropped)
{
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &ring64), 0);
    mproc__ringio *io = mproc__conn_ringio(w, true);
    unsigned char *part = malloc(30000);
    ck_assert_ptr_nonnull(part);
    memset(part, 'a', 30000);
    mproc__deadline d;
    mproc__deadline_init(&d, 1000);
    ck_assert_int_eq(mproc__ring_lock(io, &d), 0);
    begin_stream(io, 100000, part);
    /* The receiver takes the 60000 bytes there and times out inside,
     * while the lock is held by a live thread: it cannot end it. */
    size_t len = 1 << 20, n;
    unsigned char *got = malloc(len);
    ck_assert_ptr_nonnull(got);
    ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 100), MPROC_ETIMEDOUT);
    ck_assert_uint_eq(mproc__rec_pos(atomic_load(&io->r->w.rd)),
                      mproc__rec_pos(atomic_load(&io->r->w.head)));
    mproc__ring_unlock(io); /* left begun: its sender gave up */
    /* The next sender aborts it, then fills the ring with a message of
     * its own and times out. */
    unsigned char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    memset(big, 'b', len);
    ck_assert_int_eq(mproc_conn_send(w, big, len, 0), MPROC_ETIMEDOUT);
    /* Both messages are dropped, neither reported by its size (the part
     * the receiver holds of the first one is dropped with it); nothing of
     * either ever comes. */
    char small[16];
    ck_assert_int_eq(mproc_conn_recv(r, small, sizeof small, &n, 0),
                     MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 500), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_conn_send(w, "z", 1, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 1000), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_mem_eq(got, "z", 1);
    ck_assert_uint_eq(mproc__rec_rescued(), 0);
    free(big);
    free(got);
    free(part);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

START_TEST(sender_killed_before_its_large_message_began_tears_nothing)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        /* A full ring: a large message cannot begin. */
        unsigned char m[1000];
        int count = 0, rc;
        do {
            test_pattern(m, sizeof m, (unsigned)count);
        } while ((rc = mproc_conn_send(w, m, sizeof m, 0)) == 0 && ++count);
        ck_assert_int_eq(rc, MPROC_ETIMEDOUT);
        mproc__ringio *x = mproc__conn_ringio(w, true);
        ck_assert_ptr_nonnull(x);
        atomic_store(&x->r->w.room.wait, 0);
        pid_t a = fork();
        ck_assert_int_ge(a, 0);
        if (a == 0)
            child_sends_huge(r, w);
        /* It holds the senders' lock and waits for room. */
        int waited = await_word(&x->r->w.room.wait, 1, test_ms(10000));
        kill(a, SIGKILL);
        ck_assert_int_eq(reap(a, test_ms(10000)), 128 + SIGKILL);
        ck_assert_int_eq(waited, 0);
        /* Nothing of it was published: the next sender goes on. */
        unsigned char *big = malloc(200000);
        ck_assert_ptr_nonnull(big);
        test_pattern(big, 200000, 77);
        struct sender s = {w, big, 200000, 1, -1};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, send_thread, &s), 0);
        unsigned char *got = malloc(200000);
        ck_assert_ptr_nonnull(got);
        size_t n = 0;
        int bad = -1;
        for (int i = 0; i < count && bad < 0; i++)
            if (mproc_conn_recv(r, got, sizeof m, &n, test_ms(10000)) != 0 ||
                n != sizeof m || !test_pattern_ok(got, n, (unsigned)i))
                bad = i;
        int rc2 =
            bad < 0 ? mproc_conn_recv(r, got, 200000, &n, test_ms(10000)) : -1;
        if (rc2 != 0)
            mproc_conn_close(r), r = NULL; /* let the sender out */
        pthread_join(t, NULL);
        ck_assert_int_eq(bad, -1);
        ck_assert_int_eq(s.rc, 0);
        ck_assert_int_eq(rc2, 0);
        ck_assert_uint_eq(n, 200000);
        ck_assert(test_pattern_ok(got, n, 77));
        free(big);
        free(got);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
}
END_TEST

/* Runs a traced child until its first sendmsg(2) has sent an fd token
 * (MPROC__RING_FDTOK_LEN bytes), leaving it stopped there: 0, or -1 when
 * it never got there. */
static int stop_after_first_sendmsg(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
        return -1;
    if (ptrace(PTRACE_SETOPTIONS, pid, 0,
               (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)) != 0)
        return -1;
    long last = -1;
    int sig = 0;
    for (int i = 0; i < 100000; i++) {
        if (ptrace(PTRACE_SYSCALL, pid, 0, (void *)(long)sig) != 0 ||
            waitpid(pid, &st, 0) != pid || !WIFSTOPPED(st))
            return -1;
        sig = 0;
        if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
            sig = WSTOPSIG(st) == SIGSTOP ? 0 : WSTOPSIG(st);
            continue;
        }
        struct __ptrace_syscall_info info;
        memset(&info, 0, sizeof info);
        if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof info, &info) <=
            0)
            return -1;
        if (info.op == PTRACE_SYSCALL_INFO_ENTRY)
            last = (long)info.entry.nr;
        else if (info.op == PTRACE_SYSCALL_INFO_EXIT && last == SYS_sendmsg &&
                 info.exit.rval == MPROC__RING_FDTOK_LEN)
            return 0;
    }
    return -1;
}

START_TEST(sender_killed_between_its_fds_and_its_frame_never_gives_wrong_fds)
{
    /* Over a ring, the fds of mproc_conn_send_fd go ahead on the socket,
     * then the frame is published. A sender killed between the two (a
     * traced child stopped right after its sendmsg) leaves fds no frame
     * claims: the next sender's frame still delivers its own fd (the
     * frame names its file), and the connection goes on. */
    mproc_conn *x, *y;
    ck_assert_int_eq(mproc_pipe(&x, &y, true, &ring64), 0);
    int pa[2], pb[2];
    ck_assert_int_eq(pipe2(pa, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pb, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
            _exit(2);
        raise(SIGSTOP);
        _exit(mproc_conn_send_fd(x, pa[1], test_ms(5000)) == 0 ? 0 : 3);
    }
    int stopped = stop_after_first_sendmsg(pid);
    kill(pid, SIGKILL);
    int st = reap(pid, test_ms(10000));
    if (stopped != 0 && st == 2) {
        test_skip("ptrace not permitted here");
        return;
    }
    ck_assert_int_eq(stopped, 0);
    ck_assert_int_eq(st, 128 + SIGKILL);
    int rc1 = mproc_conn_send_fd(x, pb[1], test_ms(5000));
    int fd = -1;
    int rc2 = mproc_conn_recv_fd(y, &fd, test_ms(5000));
    struct stat got, dead;
    ck_assert_int_eq(fstat(pa[1], &dead), 0);
    struct stat mine;
    ck_assert_int_eq(fstat(pb[1], &mine), 0);
    ck_assert_int_eq(rc1, 0);
    ck_assert_int_eq(rc2, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fstat(fd, &got), 0);
    ck_assert_uint_ne(got.st_ino, dead.st_ino);
    ck_assert_uint_eq(got.st_ino, mine.st_ino);
    close(fd);
    char buf[4];
    size_t n;
    ck_assert_int_eq(mproc_conn_send(x, "ok", 2, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(y, buf, sizeof buf, &n, 1000), 0);
    ck_assert_uint_eq(n, 2);
    for (int i = 0; i < 2; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    mproc_conn_close(x);
    mproc_conn_close(y);
}
END_TEST

/* A send that times out inside a message larger than the ring: the
 * message is dropped whole (cut where it stopped), and the direction goes
 * on for every sender, this one too. */
START_TEST(send_timed_out_inside_a_large_message_drops_only_it)
{
    size_t len = 1 << 20;
    unsigned char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    test_pattern(big, len, 3);
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        int go[2];
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        /* Another holder of the send end, forked before the timeout. */
        pid_t b = fork();
        ck_assert_int_ge(b, 0);
        if (b == 0)
            child_sends_after_go(r, w, go);
        close(go[0]);
        ck_assert_int_eq(mproc_conn_send(w, "one", 3, 0), 0);
        ck_assert_int_eq(mproc_conn_send(w, "two", 3, 0), 0);
        int64_t t0 = test_now_ms();
        ck_assert_int_eq(mproc_conn_send(w, big, len, 50), MPROC_ETIMEDOUT);
        int64_t took = test_now_ms() - t0;
        ck_assert_int_ge(took, 45);
        ck_assert_int_lt(took, test_ms(5000));
        /* This sender goes on at once, in the room the cut one left. */
        ck_assert_int_eq(mproc_conn_send(w, "z", 1, 0), 0);
        ck_assert_int_eq(write(go[1], "g", 1), 1);
        /* The messages before it arrive; it is dropped; the other
         * sender's follow. */
        char buf[8];
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_mem_eq(buf, "one", 3);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_mem_eq(buf, "two", 3);
        /* A small buffer: the cut message is dropped, not reported as
         * too large for it. */
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_mem_eq(buf, "z", 1);
        unsigned char *got = malloc(len);
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, test_ms(5000)), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_mem_eq(got, "x", 1);
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, test_ms(5000)), 0);
        ck_assert_mem_eq(got, "y", 1);
        /* This sender goes on: a batch, then the large message whole. */
        mproc_conn_msg ms[2] = {{"a", 1}, {"b", 1}};
        size_t sent = 9;
        /* (Not 0: the other sender may still hold the lock for a moment
         * after the receiver has its last message.) */
        ck_assert_int_eq(mproc_conn_send_batch(w, ms, 2, &sent, test_ms(5000)),
                         0);
        ck_assert_uint_eq(sent, 2);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_mem_eq(buf, "a", 1);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_mem_eq(buf, "b", 1);
        struct sender job = {w, big, len, 1, -1};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, send_thread, &job), 0);
        memset(got, 0, len);
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, test_ms(10000)), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_eq(job.rc, 0);
        ck_assert_uint_eq(n, len);
        ck_assert_mem_eq(got, big, len);
        free(got);
        close(go[1]);
        ck_assert_int_eq(reap(b, test_ms(10000)), 0);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
    free(big);
}
END_TEST

START_TEST(send_that_times_out_before_any_byte_changes_nothing)
{
    size_t len = 1 << 20;
    unsigned char *big = malloc(len), *got = malloc(len);
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(got);
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        unsigned char m[1000];
        int count = 0, rc;
        for (;;) {
            test_pattern(m, sizeof m, (unsigned)count);
            if ((rc = mproc_conn_send(w, m, sizeof m, 0)) != 0)
                break;
            count++;
        }
        ck_assert_int_eq(rc, MPROC_ETIMEDOUT);
        /* 65 frames of 1008 bytes leave 16: an 8-byte message still fits
         * exactly, then not even an empty one. */
        ck_assert_int_eq(count, (int)(TEST_RING / 1008));
        ck_assert_int_eq(mproc_conn_send(w, "12345678", 8, 0), 0);
        ck_assert_int_eq(mproc_conn_send(w, NULL, 0, 0), MPROC_ETIMEDOUT);
        ck_assert_int_eq(mproc_conn_send(w, NULL, 0, 20), MPROC_ETIMEDOUT);
        /* Larger than the ring, with no room for its first piece. */
        test_pattern(big, len, 1);
        ck_assert_int_eq(mproc_conn_send(w, big, len, 0), MPROC_ETIMEDOUT);
        ck_assert_int_eq(mproc_conn_send(w, big, len, 30), MPROC_ETIMEDOUT);
        mproc_conn_msg ms[3] = {{"a", 1}, {big, len}, {"b", 1}};
        size_t sent = 9;
        ck_assert_int_eq(mproc_conn_send_batch(w, ms, 3, &sent, 0),
                         MPROC_ETIMEDOUT);
        ck_assert_uint_eq(sent, 0);
        /* Everything before is intact, and nothing of the failed sends. */
        size_t n;
        for (int i = 0; i < count; i++) {
            ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 0), 0);
            ck_assert_uint_eq(n, sizeof m);
            ck_assert(test_pattern_ok(got, n, (unsigned)i));
        }
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 0), 0);
        ck_assert_uint_eq(n, 8);
        ck_assert_mem_eq(got, "12345678", 8);
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 0), MPROC_ETIMEDOUT);
        /* The connection still works, for a large message too. */
        struct sender s = {w, big, len, 1, -1};
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, send_thread, &s), 0);
        rc = mproc_conn_recv(r, got, len, &n, test_ms(10000));
        if (rc != 0)
            mproc_conn_close(r), r = NULL;
        pthread_join(t, NULL);
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(s.rc, 0);
        ck_assert_uint_eq(n, len);
        ck_assert(test_pattern_ok(got, n, 1));
        ck_assert_int_eq(mproc_conn_send(w, "end", 3, 0), 0);
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 0), 0);
        ck_assert_mem_eq(got, "end", 3);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
    free(big);
    free(got);
}
END_TEST

START_TEST(sender_dead_holding_the_lock_between_messages_loses_nothing)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        pid_t a = fork();
        ck_assert_int_ge(a, 0);
        if (a == 0) {
            /* Publishes one whole message, then dies with the lock. */
            mproc_conn_close(r);
            mproc__ringio *x = mproc__conn_ringio(w, true);
            mproc__deadline d;
            mproc__deadline_init(&d, 1000);
            if (x == NULL || mproc__ring_lock(x, &d) != 0)
                _exit(2);
            _exit(mproc__rec_put_whole(&x->v, MPROC__REC_MSG, "child", 5, &d) ==
                          0
                      ? 0
                      : 3);
        }
        ck_assert_int_eq(reap(a, test_ms(10000)), 0);
        ck_assert_int_eq(mproc_conn_send(w, "after", 5, test_ms(5000)), 0);
        char buf[8];
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_uint_eq(n, 5);
        ck_assert_mem_eq(buf, "child", 5);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
        ck_assert_uint_eq(n, 5);
        ck_assert_mem_eq(buf, "after", 5);
        /* The lock is an ordinary one again: no wait for a dead owner. */
        int64_t t0 = test_now_ms();
        for (int i = 0; i < 100; i++) {
            ck_assert_int_eq(mproc_conn_send(w, &i, sizeof i, 0), 0);
            int v = -1;
            ck_assert_int_eq(mproc_conn_recv(r, &v, sizeof v, &n, 0), 0);
            ck_assert_int_eq(v, i);
        }
        ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
}
END_TEST

/* ----- the doorbell and readiness ----- */

/* ----- the doorbell's ordering ----- */

#define PINGS 200000u
#define STOP UINT32_MAX
/* The receiver arms this long after its go; the sender publishes from
 * 1.5 us before to 0.5 us after that (the nanosecond it aims at varies
 * from one message to the next). Most messages are there before the arm,
 * so the receiver need not sleep for them, and only those close to it can
 * show a reordering. */
#define ARM_NS 3000
#define EARLY_NS 1500
#define SWEEP_NS 2000u

/* The sender of publish_and_arm_never_lose_a_wake_up: for each message it
 * waits (spinning) for the receiver's go, lets a delay pass that differs
 * from one message to the next, then sends. While it waits it reads the
 * receiver's `armed` word, as its previous send did: each side then holds
 * in its cache the word the other is about to write, which is when a
 * store-load reordering shows. */
static int send_on_go(mproc_conn *w, _Atomic uint32_t *go)
{
    _Atomic uint32_t *armed = &mproc__conn_ringio(w, true)->r->w.data_wait;
    for (uint32_t i = 1; i <= PINGS; i++) {
        int64_t until = test_now_ms() + 10000;
        uint32_t g;
        while ((g = atomic_load(go)) != i)
            if (g == STOP || test_now_ms() > until)
                return 2;
        int64_t t0 = mproc__os_monotonic_ns();
        int64_t delay = ARM_NS - EARLY_NS + i * 7919u % SWEEP_NS;
        while (mproc__os_monotonic_ns() - t0 < delay)
            (void)atomic_load_explicit(armed, memory_order_relaxed);
        if (mproc_conn_send(w, &i, sizeof i, 10000) != 0)
            return 3;
    }
    return 0;
}

/* A receiver that arms the doorbell before each message (and sleeps when
 * it is not there yet), and a sender whose publish falls at every moment
 * around that arm. The
 * sender's publish and its look at `armed`, and the receiver's arm and its
 * look at `head`, are ordered (sequentially consistent) so that one of
 * the two always sees the other; without that, a store-load reordering
 * (real on x86) loses the wake-up and only the receiver's sleep slice
 * (50 ms) ends its wait. The library counts such slices; none may happen.
 * (Timing alone would not show it on a loaded machine. The count would
 * also take a sender stopped for the whole slice in the few instructions
 * between its lock's release and its look at the flag.) */
START_TEST(publish_and_arm_never_lose_a_wake_up)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        test_skip("one CPU: the two sides never run at the same time");
        return;
    }
    _Atomic uint32_t *go = mmap(NULL, sizeof *go, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(go, MAP_FAILED);
    atomic_store(go, 0);
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &ring64), 0);
    pid_t pid = fork();
    if (pid == 0) {
        mproc_conn_close(r);
        _exit(send_on_go(w, go));
    }
    mproc_conn_close(w);
    /* The receiver arms at a set time after its go, reading `head` until
     * then as its spin would: not after a spin whose end varies by
     * microseconds. */
    mproc__rec_set_consumer_spin(0);
    _Atomic uint64_t *head = &mproc__conn_ringio(r, false)->r->w.head;
    uint64_t before = mproc__rec_rescued();
    uint32_t i;
    for (i = 1; i <= PINGS && mproc__rec_rescued() == before; i++) {
        atomic_store(go, i);
        int64_t t0 = mproc__os_monotonic_ns();
        while (mproc__os_monotonic_ns() - t0 < ARM_NS)
            (void)atomic_load_explicit(head, memory_order_relaxed);
        uint32_t got = 0;
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, &got, sizeof got, &n, 10000), 0);
        ck_assert_uint_eq(got, i);
    }
    mproc__rec_set_consumer_spin(-1);
    atomic_store(go, STOP);
    int status = test_wait_status(pid);
    ck_assert_msg(mproc__rec_rescued() == before,
                  "message %u: a wake-up was lost", i - 1);
    ck_assert_int_eq(status, 0);
    mproc_conn_close(r);
    munmap((void *)go, sizeof *go);
}
END_TEST

START_TEST(leftover_doorbell_byte_is_not_readiness)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        int fd = mproc_conn_fd(r);
        struct pollfd pf = {fd, POLLIN, 0};
        char buf[8];
        size_t n;
        mproc_wait_item it = MPROC_WAIT_CONN(r);
        for (int round = 0; round < 2; round++) {
            /* The receiver arms; the send rings; the message is taken at
             * once, so the byte stays on the fd. */
            ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0),
                             MPROC_ETIMEDOUT);
            ck_assert_int_eq(poll(&pf, 1, 0), 0);
            ck_assert_int_eq(mproc_conn_send(w, "ring", 4, 0), 0);
            ck_assert_int_eq(
                mproc_conn_recv(r, buf, sizeof buf, &n, MPROC_FOREVER), 0);
            ck_assert_mem_eq(buf, "ring", 4);
            ck_assert_int_eq(poll(&pf, 1, 0), 1); /* the case under test */
            int64_t t0 = test_now_ms();
            if (round == 0)
                ck_assert_int_eq(mproc_wait(&it, 1, 100), MPROC_ETIMEDOUT);
            else
                ck_assert_int_eq(mproc_conn_poll(r, 100), MPROC_ETIMEDOUT);
            ck_assert_int_ge(test_now_ms() - t0, 90);
            ck_assert_int_eq(it.ready, 0);
            ck_assert_int_eq(poll(&pf, 1, 0), 0); /* the byte was taken */
        }
        /* A message sent later from another process wakes the waiter. */
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(r);
            usleep(50 * 1000);
            _exit(mproc_conn_send(w, "late", 4, 1000) == 0 ? 0 : 1);
        }
        int64_t t0 = test_now_ms();
        int rc1 = mproc_wait(&it, 1, test_ms(5000));
        int64_t took = test_now_ms() - t0;
        int rc2 = mproc_conn_recv(r, buf, sizeof buf, &n, 0);
        ck_assert_int_eq(reap(pid, test_ms(5000)), 0);
        ck_assert_int_eq(rc1, 1);
        ck_assert_int_eq(it.ready, MPROC_WAIT_READ);
        ck_assert_int_lt(took, test_ms(4000));
        ck_assert_int_eq(rc2, 0);
        ck_assert_uint_eq(n, 4);
        ck_assert_mem_eq(buf, "late", 4);
        /* And the same for mproc_conn_poll. */
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(r);
            usleep(50 * 1000);
            _exit(mproc_conn_send(w, "poll", 4, 1000) == 0 ? 0 : 1);
        }
        rc1 = mproc_conn_poll(r, test_ms(5000));
        rc2 = mproc_conn_recv(r, buf, sizeof buf, &n, 0);
        ck_assert_int_eq(reap(pid, test_ms(5000)), 0);
        ck_assert_int_eq(rc1, 0);
        ck_assert_int_eq(rc2, 0);
        ck_assert_mem_eq(buf, "poll", 4);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
}
END_TEST

START_TEST(fd_becomes_readable_after_recv_zero_times_out)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        int cmd[2];
        ck_assert_int_eq(pipe2(cmd, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            /* Sends message i on the i-th command byte. */
            mproc_conn_close(r);
            close(cmd[1]);
            char c;
            for (int i = 0; read(cmd[0], &c, 1) == 1; i++)
                if (mproc_conn_send(w, &i, sizeof i, 1000) != 0)
                    _exit(1);
            _exit(0);
        }
        close(cmd[0]);
        mproc_conn_close(w);
        struct pollfd pf = {mproc_conn_fd(r), POLLIN, 0};
        int bad = 0;
        for (int i = 0; i < 4 && bad == 0; i++) {
            int v = -1, rc;
            size_t n;
            /* Drain until MPROC_ETIMEDOUT: the fd then is not readable
             * until another message comes. */
            while ((rc = mproc_conn_recv(r, &v, sizeof v, &n, 0)) == 0)
                ;
            if (rc != MPROC_ETIMEDOUT)
                bad = 1;
            else if (poll(&pf, 1, 0) != 0)
                bad = 2;
            else if (write(cmd[1], "g", 1) != 1)
                bad = 3;
            else if (poll(&pf, 1, (int)test_ms(5000)) != 1)
                bad = 4;
            else if (mproc_conn_recv(r, &v, sizeof v, &n, 0) != 0 || v != i)
                bad = 5;
        }
        close(cmd[1]);
        int st = reap(pid, test_ms(5000));
        ck_assert_int_eq(bad, 0);
        ck_assert_int_eq(st, 0);
        int v;
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, &v, sizeof v, &n, test_ms(5000)),
                         MPROC_ECLOSED);
        mproc_conn_close(r);
    }
}
END_TEST

/* ----- a broken peer ----- */

START_TEST(garbage_in_the_ring_is_eproto)
{
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        mproc__ringio *x = mproc__conn_ringio(w, true);
        ck_assert_ptr_nonnull(x);
        ck_assert_int_eq(mproc_conn_send(w, "good", 4, 0), 0);
        ck_assert_int_eq(put_raw(x, "GARBAGE!GARBAGE!", 16), 0);
        char buf[64];
        size_t n;
        void *p = NULL;
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
        ck_assert_mem_eq(buf, "good", 4);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000),
                         MPROC_EPROTO);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, MPROC_FOREVER),
                         MPROC_EPROTO);
        ck_assert_int_eq(mproc_conn_recv_alloc(r, &p, &n, SIZE_MAX, 0),
                         MPROC_EPROTO);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(mproc_conn_poll(r, MPROC_FOREVER), MPROC_EPROTO);
        mproc_wait_item it = MPROC_WAIT_CONN(r);
        ck_assert_int_eq(mproc_wait(&it, 1, 0), 1); /* the error is "ready" */
        if (duplex) {
            /* Closed both ways: the peer sees EOF. */
            ck_assert_int_eq(mproc_conn_send(r, "x", 1, 0), MPROC_EPROTO);
            ck_assert_int_eq(
                mproc_conn_recv(w, buf, sizeof buf, &n, test_ms(2000)),
                MPROC_ECLOSED);
        }
        /* The ring tells its senders that the receiver gave up (a duplex
         * receiver also shut its socket down: closed, then). */
        ck_assert_int_eq(mproc_conn_send(w, "x", 1, 100),
                         duplex ? MPROC_ECLOSED : MPROC_EBROKEN);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
}
END_TEST

/* Each malformed record, published after a good message as a broken peer
 * would: the receiver reports MPROC_EPROTO (for good) and reads nothing
 * outside the ring. With close_first the sender closes first; with
 * words_bad the shared words themselves make no sense, and even the good
 * message is not read. */
static void malformed(bool duplex, const void *b, size_t n, bool close_first,
                      bool words_bad)
{
    mproc_conn *r, *w;
    char buf[128];
    size_t len;
    ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
    ck_assert_int_eq(mproc_conn_send(w, "ok", 2, 0), 0);
    ck_assert_int_eq(put_raw(mproc__conn_ringio(w, true), b, n), 0);
    if (close_first)
        mproc_conn_close(w);
    if (words_bad) {
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &len, 1000),
                         MPROC_EPROTO);
    } else {
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &len, 1000), 0);
        ck_assert_mem_eq(buf, "ok", 2);
    }
    void *p = NULL;
    ck_assert_int_eq(
        mproc_conn_recv_alloc(r, &p, &len, SIZE_MAX, test_ms(2000)),
        MPROC_EPROTO);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &len, 0),
                     MPROC_EPROTO);
    ck_assert_int_eq(mproc_conn_poll(r, 0), MPROC_EPROTO);
    mproc_conn_close(r);
    if (!close_first)
        mproc_conn_close(w);
}

START_TEST(malformed_records_in_the_ring_are_eproto)
{
    unsigned char b[32];
    uint64_t total = 1 << 20;
    for (int duplex = 0; duplex < 2; duplex++) {
        /* A length beyond what was published. */
        malformed(duplex, b,
                  rec_bytes(b, MPROC__REC_MSG, 100, "0123456789", 10), false,
                  false);
        /* A length beyond the ring's end. */
        malformed(duplex, b,
                  rec_bytes(b, MPROC__REC_MSG, 3u * TEST_RING, "abcdefgh", 8),
                  false, false);
        /* A kind that does not exist, and the kinds no message starts
         * with, beside a streamed one's pieces. */
        malformed(duplex, b, rec_bytes(b, 9, 0, "", 0), false, false);
        malformed(duplex, b, rec_bytes(b, 0, 0, "", 0), false, false);
        /* A header cut short (head not on a record's boundary). */
        malformed(duplex, b, 5, false, true);
        /* A streamed message whose first piece is shorter than its total
         * says, or claims less than it carries. */
        malformed(duplex, b, rec_bytes(b, MPROC__REC_FIRST, 4, "abcd", 4),
                  false, false);
        uint64_t small = 1;
        memcpy(b + 8, &small, 8);
        malformed(duplex, b,
                  rec_bytes(b, MPROC__REC_FIRST, 16, (unsigned char[]){0}, 0) +
                      8,
                  false, false);
        /* A streamed message cut short by its senders' going (every
         * sender closed while a live one seemed to hold it). */
        memcpy(b + 8, &total, 8);
        size_t first = rec_bytes(b, MPROC__REC_FIRST, 8, &total, 8);
        malformed(duplex, b, first, true, false);
        /* An fd message of the wrong size. */
        malformed(duplex, b, rec_bytes(b, MPROC__REC_FDS, 3, "abc", 3), false,
                  false);
        /* Control words that make no sense (more published than the ring
         * holds): an error, not a read beyond the ring. */
        mproc_conn *r, *w;
        char buf[16];
        size_t n;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        mproc__ringio *x = mproc__conn_ringio(w, true);
        ck_assert_int_eq(mproc_conn_send(w, "ok", 2, 0), 0);
        atomic_fetch_add(&x->r->w.head, 3 * (uint64_t)TEST_RING);
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000),
                         MPROC_EPROTO);
        ck_assert_int_eq(mproc_conn_poll(r, 0), MPROC_EPROTO);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
    /* The process is fine: a new pipe works. */
    mproc_conn *r, *w;
    char buf[16];
    size_t n;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &ring64), 0);
    ck_assert_int_eq(mproc_conn_send(w, "fine", 4, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
    ck_assert_mem_eq(buf, "fine", 4);
    mproc_conn_close(r);
    mproc_conn_close(w);
}
END_TEST

/* ----- a receiver that goes away ----- */

static void sigpipe_default(void)
{
    /* Default disposition, not blocked: a raised SIGPIPE would kill the
     * test. */
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

START_TEST(receiver_gone_is_eclosed_for_the_sender)
{
    sigpipe_default();
    size_t len = 1 << 20;
    unsigned char *big = calloc(1, len);
    ck_assert_ptr_nonnull(big);
    for (int duplex = 0; duplex < 2; duplex++) {
        /* (a) Closed in this process, its only holder. */
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        ck_assert_int_eq(mproc_conn_send(w, "lost", 4, 0), 0);
        mproc_conn_close(r);
        /* An empty batch sends nothing, so it reports nothing (it rang
         * once, and failed on "lost"). */
        size_t none = 1;
        ck_assert_int_eq(mproc_conn_send_batch(w, NULL, 0, &none, 0), 0);
        ck_assert_uint_eq(none, 0);
        ck_assert_int_eq(mproc_conn_send(w, "x", 1, 0), MPROC_ECLOSED);
        ck_assert_int_eq(mproc_conn_send(w, "x", 1, MPROC_FOREVER),
                         MPROC_ECLOSED);
        ck_assert_int_eq(mproc_conn_send(w, big, len, MPROC_FOREVER),
                         MPROC_ECLOSED);
        mproc_conn_msg ms[2] = {{"a", 1}, {big, len}};
        ck_assert_int_eq(mproc_conn_send_batch(w, ms, 2, NULL, MPROC_FOREVER),
                         MPROC_ECLOSED);
        if (duplex)
            ck_assert_int_eq(mproc_conn_send_fd(w, 0, MPROC_FOREVER),
                             MPROC_ECLOSED);
        mproc_conn_close(w);

        /* (b) In a child killed while it does not wait for messages (the
         * doorbell is not armed): the sender finds out by itself. */
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        int ready[2];
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(w);
            close(ready[0]);
            if (write(ready[1], "r", 1) != 1)
                _exit(2);
            for (;;)
                pause();
        }
        close(ready[1]);
        mproc_conn_close(r); /* arms the bell: the next send rings */
        char c;
        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        close(ready[0]);
        mproc__ringio *x = mproc__conn_ringio(w, true);
        ck_assert_ptr_nonnull(x);
        for (int i = 0; i < 10; i++)
            ck_assert_int_eq(mproc_conn_send(w, "alive", 5, 0), 0);
        ck_assert_uint_eq(atomic_load(&x->r->w.data_wait), 0);
        kill(pid, SIGKILL);
        ck_assert_int_eq(reap(pid, test_ms(5000)), 128 + SIGKILL);
        int64_t t0 = test_now_ms();
        int rc = 0;
        long sends = 0;
        while ((rc = mproc_conn_send(w, "after", 5, test_ms(2000))) == 0 &&
               test_now_ms() - t0 < test_ms(3000))
            sends++;
        int64_t took = test_now_ms() - t0;
        ck_assert_int_eq(rc, MPROC_ECLOSED);
        ck_assert_int_le(took, test_ms(1000));
        ck_assert_int_eq(mproc_conn_send(w, "x", 1, MPROC_FOREVER),
                         MPROC_ECLOSED);
        ck_assert_int_eq(mproc_conn_send(w, big, len, MPROC_FOREVER),
                         MPROC_ECLOSED);
        mproc_conn_close(w);

        /* (c) In a child killed while it sleeps in recv (armed): the
         * first send after it rings and learns. */
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        x = mproc__conn_ringio(w, true);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(w);
            char b[8];
            size_t n;
            for (;;)
                mproc_conn_recv(r, b, sizeof b, &n, MPROC_FOREVER);
        }
        mproc_conn_close(r); /* sets the flag too */
        /* A message clears it (and rings); the child takes the message
         * and arms again for the next. */
        ck_assert_int_eq(mproc_conn_send(w, "ping", 4, 0), 0);
        int armed = -1;
        for (int64_t until = test_now_ms() + test_ms(5000);
             armed != 0 && test_now_ms() < until; usleep(1000))
            if (atomic_load(&x->r->w.data_wait) != 0 &&
                mproc__rec_pos(atomic_load(&x->r->w.rd)) ==
                    mproc__rec_pos(atomic_load(&x->r->w.head)))
                armed = 0;
        kill(pid, SIGKILL);
        ck_assert_int_eq(reap(pid, test_ms(5000)), 128 + SIGKILL);
        ck_assert_int_eq(armed, 0);
        ck_assert_int_eq(mproc_conn_send(w, "x", 1, 0), MPROC_ECLOSED);
        mproc_conn_close(w);

        /* (d) A sender in a child waits for room; the receiver closes:
         * the send ends with MPROC_ECLOSED soon, never hangs. */
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        x = mproc__conn_ringio(w, true);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(r);
            int rc2 = mproc_conn_send(w, big, len, MPROC_FOREVER);
            _exit(rc2 == MPROC_ECLOSED ? 0 : 10);
        }
        int waiting = await_word(&x->r->w.room.wait, 1, test_ms(5000));
        t0 = test_now_ms();
        mproc_conn_close(r);
        int st = reap(pid, test_ms(5000));
        took = test_now_ms() - t0;
        ck_assert_int_eq(waiting, 0);
        ck_assert_int_eq(st, 0);
        ck_assert_int_le(took, test_ms(1000));
        mproc_conn_close(w);
    }
    free(big);
    sigset_t pend;
    sigpending(&pend);
    ck_assert(!sigismember(&pend, SIGPIPE));
}
END_TEST

/* ----- ends passed to another process ----- */

static const size_t psz[] = {0, 1, 100, 65528, 65529, 200000};
#define NPSZ (sizeof psz / sizeof psz[0])

static int child_uses_passed_ends(mproc_conn *ctl, mproc_conn *ctlk)
{
    mproc_conn *rr = NULL, *ww = NULL, *dd = NULL;
    int64_t t = test_ms(10000);
    if (mproc_conn_recv_conn(ctl, &rr, t) != 0)
        return 10;
    if (mproc_conn_recv_conn(ctlk, &ww, t) != 0)
        return 11;
    if (mproc_conn_recv_conn(ctl, &dd, t) != 0)
        return 12;
    if (!mproc_conn_can_recv(rr) || mproc_conn_can_send(rr) ||
        !mproc_conn_can_send(ww) || mproc_conn_can_recv(ww) ||
        !mproc_conn_can_send(dd) || !mproc_conn_can_recv(dd))
        return 13;
    if (mproc__conn_ringio(rr, false) == NULL ||
        mproc__conn_ringio(ww, true) == NULL ||
        mproc__conn_ringio(dd, true) == NULL)
        return 14; /* not rings any more */
    unsigned char *b = malloc(200000);
    if (b == NULL)
        return 15;
    size_t n;
    for (size_t i = 0; i < NPSZ; i++)
        if (mproc_conn_recv(rr, b, 200000, &n, t) != 0 || n != psz[i] ||
            !test_pattern_ok(b, n, 100 + (unsigned)i))
            return 20 + (int)i;
    if (mproc_conn_recv(rr, b, 200000, &n, t) != MPROC_ECLOSED)
        return 30;
    for (size_t i = 0; i < NPSZ; i++) {
        test_pattern(b, psz[i], 200 + (unsigned)i);
        if (mproc_conn_send(ww, b, psz[i], t) != 0)
            return 40 + (int)i;
    }
    mproc_conn_close(ww);
    for (;;) {
        int rc = mproc_conn_recv(dd, b, 200000, &n, t);
        if (rc == MPROC_ECLOSED)
            break;
        if (rc != 0)
            return 50;
        if (mproc_conn_send(dd, b, n, t) != 0)
            return 51;
    }
    free(b);
    mproc_conn_close(rr);
    mproc_conn_close(dd);
    return 0;
}

START_TEST(ring_end_passed_to_another_process_keeps_working)
{
    /* The child is forked before the pipes exist: it reaches them only
     * through what is passed. */
    mproc_conn *ca, *cb, *ka, *kb;
    ck_assert_int_eq(mproc_pipe(&ca, &cb, true, &ring64), 0);
    ck_assert_int_eq(mproc_pipe_kernel(&ka, &kb, true), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        mproc_conn_close(ca);
        mproc_conn_close(ka);
        _exit(child_uses_passed_ends(cb, kb));
    }
    mproc_conn_close(cb);
    mproc_conn_close(kb);
    mproc_conn *r1, *w1, *r2, *w2, *d1, *d2;
    ck_assert_int_eq(mproc_pipe(&r1, &w1, false, &ring64), 0);
    ck_assert_int_eq(mproc_pipe(&r2, &w2, false, &ring64), 0);
    ck_assert_int_eq(mproc_pipe(&d1, &d2, true, &ring64), 0);
    ck_assert_int_eq(mproc_conn_send_conn(ca, r1, test_ms(1000)), 0);
    ck_assert_int_eq(mproc_conn_send_conn(ka, w2, test_ms(1000)), 0);
    ck_assert_int_eq(mproc_conn_send_conn(ca, d2, test_ms(1000)), 0);
    mproc_conn_close(r1);
    mproc_conn_close(w2);
    mproc_conn_close(d2);
    unsigned char *b = malloc(200000);
    ck_assert_ptr_nonnull(b);
    int bad = 0;
    size_t n;
    int64_t t = test_ms(10000);
    for (size_t i = 0; i < NPSZ && bad == 0; i++) {
        test_pattern(b, psz[i], 100 + (unsigned)i);
        if (mproc_conn_send(w1, b, psz[i], t) != 0)
            bad = 1;
    }
    mproc_conn_close(w1);
    for (size_t i = 0; i < NPSZ && bad == 0; i++)
        if (mproc_conn_recv(r2, b, 200000, &n, t) != 0 || n != psz[i] ||
            !test_pattern_ok(b, n, 200 + (unsigned)i))
            bad = 2;
    if (bad == 0 && mproc_conn_recv(r2, b, 200000, &n, t) != MPROC_ECLOSED)
        bad = 3;
    for (size_t i = 0; i < NPSZ && bad == 0; i++) {
        test_pattern(b, psz[i], 300 + (unsigned)i);
        if (mproc_conn_send(d1, b, psz[i], t) != 0)
            bad = 4;
        else if (memset(b, 0, psz[i]),
                 mproc_conn_recv(d1, b, 200000, &n, t) != 0 || n != psz[i] ||
                     !test_pattern_ok(b, n, 300 + (unsigned)i))
            bad = 5;
    }
    mproc_conn_close(d1);
    if (bad != 0)
        kill(pid, SIGKILL);
    int st = reap(pid, test_ms(10000));
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(st, 0);
    mproc_conn_close(r2);
    mproc_conn_close(ca);
    mproc_conn_close(ka);
    free(b);
}
END_TEST

START_TEST(recv_fd_of_a_passed_ring_end_gives_one_usable_fd)
{
    for (int kernel = 0; kernel < 2; kernel++) {
        mproc_conn *x, *y;
        ck_assert_int_eq(kernel ? mproc_pipe_kernel(&x, &y, true)
                                : mproc_pipe(&x, &y, true, &ring64),
                         0);
        mproc_conn *r, *w, *d1, *d2;
        ck_assert_int_eq(mproc_pipe(&r, &w, false, &ring64), 0);
        ck_assert_int_eq(mproc_pipe(&d1, &d2, true, &ring64), 0);
        mproc_conn *ends[3] = {r, w, d2};
        for (int i = 0; i < 3; i++) {
            int before = count_fds();
            ck_assert_int_eq(mproc_conn_send_conn(x, ends[i], 0), 0);
            int fd = -1;
            ck_assert_int_eq(mproc_conn_recv_fd(y, &fd, test_ms(1000)), 0);
            ck_assert_int_eq(count_fds(), before + 1);
            ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
            struct stat st, want;
            ck_assert_int_eq(fstat(fd, &st), 0);
            ck_assert_int_eq(fstat(mproc_conn_fd(ends[i]), &want), 0);
            /* The end's own doorbell fd, not its memory file. */
            ck_assert_uint_eq(st.st_ino, want.st_ino);
            ck_assert_uint_eq(st.st_dev, want.st_dev);
            int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
            ck_assert_int_eq(acc, i == 0   ? O_RDONLY
                                  : i == 1 ? O_WRONLY
                                           : O_RDWR);
            close(fd);
            ck_assert_int_eq(count_fds(), before);
        }
        /* The connection carries messages as before. */
        ck_assert_int_eq(mproc_conn_send(x, "ok", 2, 0), 0);
        char buf[4];
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(y, buf, sizeof buf, &n, 1000), 0);
        ck_assert_uint_eq(n, 2);
        mproc_conn_close(r);
        mproc_conn_close(w);
        mproc_conn_close(d1);
        mproc_conn_close(d2);
        mproc_conn_close(x);
        mproc_conn_close(y);
    }
}
END_TEST

/* A burst of fds sent before the receiver takes any: every token is read
 * off the socket at the first drain while the frames wait in the ring, so
 * none may be dropped. Each eventfd carries its number. */
START_TEST(burst_of_fds_before_any_recv_all_arrive_in_order)
{
    enum { N = 200 };
    mproc_conn *a, *b;
    ck_assert_int_eq(mproc_pipe(&a, &b, true, &ring64), 0);
    for (int i = 0; i < N; i++) {
        int e = eventfd((unsigned)i + 1, EFD_CLOEXEC);
        ck_assert_int_ge(e, 0);
        ck_assert_int_eq(mproc_conn_send_fd(a, e, 1000), 0);
        close(e);
    }
    /* A poll drains the doorbell: every token is now in this process. */
    ck_assert_int_eq(mproc_conn_poll(b, 0), 0);
    for (int i = 0; i < N; i++) {
        int fd = -1;
        ck_assert_int_eq(mproc_conn_recv_fd(b, &fd, 1000), 0);
        uint64_t v = 0;
        ck_assert_int_eq(read(fd, &v, sizeof v), (ssize_t)sizeof v);
        ck_assert_uint_eq(v, (uint64_t)i + 1);
        close(fd);
    }
    ck_assert_int_eq(mproc_conn_send(a, "end", 3, 0), 0);
    char buf[4];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(b, buf, sizeof buf, &n, 1000), 0);
    mproc_conn_close(a);
    mproc_conn_close(b);
}
END_TEST

START_TEST(many_ring_ends_sent_back_to_back_all_arrive)
{
    /* More fds in flight than an end queues: each arrives with its frame. */
    enum { K = 6 };
    for (int kernel = 0; kernel < 2; kernel++) {
        mproc_conn *x, *y;
        ck_assert_int_eq(kernel ? mproc_pipe_kernel(&x, &y, true)
                                : mproc_pipe(&x, &y, true, &ring64),
                         0);
        mproc_conn *r[K], *w[K];
        for (int i = 0; i < K; i++) {
            ck_assert_int_eq(mproc_pipe(&r[i], &w[i], i % 2 == 1, &ring64), 0);
            ck_assert_int_eq(mproc_conn_send(x, &i, sizeof i, 0), 0);
            ck_assert_int_eq(mproc_conn_send_conn(x, w[i], 0), 0);
        }
        for (int i = 0; i < K; i++) {
            int v = -1;
            size_t n;
            ck_assert_int_eq(mproc_conn_recv(y, &v, sizeof v, &n, 1000), 0);
            ck_assert_int_eq(v, i);
            mproc_conn *e = NULL;
            ck_assert_int_eq(mproc_conn_recv_conn(y, &e, test_ms(1000)), 0);
            ck_assert_int_eq(mproc_conn_send(e, &i, sizeof i, 0), 0);
            mproc_conn_close(e);
            mproc_conn_close(w[i]);
            ck_assert_int_eq(mproc_conn_recv(r[i], &v, sizeof v, &n, 0), 0);
            ck_assert_int_eq(v, i);
            ck_assert_int_eq(
                mproc_conn_recv(r[i], &v, sizeof v, &n, test_ms(1000)),
                MPROC_ECLOSED);
            mproc_conn_close(r[i]);
        }
        mproc_conn_close(x);
        mproc_conn_close(y);
    }
}
END_TEST

/* ----- large messages and the event loop ----- */

/* Stops a child (it holds no lock of ours that matters: it only waits for
 * room in the ring), so that what the ring holds is all there is. */
static int stop_child(pid_t pid)
{
    int st = 0;
    if (kill(pid, SIGSTOP) != 0 || waitpid(pid, &st, WUNTRACED) != pid ||
        !WIFSTOPPED(st))
        return -1;
    return 0;
}

START_TEST(large_message_resumes_after_wait_and_recv_zero_on_a_ring)
{
    /* A receiver that takes a large message with timeout 0 may get it
     * whole when the sender keeps pace; the sender is stopped while the
     * ring is full so that the case under test (a timeout inside the
     * message) surely happens, then goes on. */
    size_t len = 1 << 20;
    unsigned char *got = malloc(len);
    ck_assert_ptr_nonnull(got);
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(r);
            unsigned char *b = malloc(len);
            for (unsigned k = 0; b != NULL && k < 2; k++) {
                test_pattern(b, len, 21 + k);
                if (mproc_conn_send(w, b, len, test_ms(10000)) != 0)
                    _exit(1);
            }
            _exit(b != NULL ? 0 : 2);
        }
        mproc__ringio *x = mproc__conn_ringio(w, true);
        mproc_wait_item it = MPROC_WAIT_CONN(r);
        int bad = 0, rc;
        size_t n = 0, n2 = 0;
        void *p = NULL, *p2 = (void *)1;
        /* First message, with mproc_conn_recv. */
        if (await_full(x, test_ms(10000)) != 0 || stop_child(pid) != 0)
            bad = 1;
        else if (mproc_wait(&it, 1, 0) != 1 ||
                 mproc_conn_recv(r, got, len, &n, 0) != MPROC_ETIMEDOUT)
            bad = 2;
        /* Too small a buffer in the middle: the size, nothing lost. */
        else if (mproc_conn_recv(r, got, 10, &n2, 0) != MPROC_EMSGSIZE ||
                 n2 != len)
            bad = 3;
        kill(pid, SIGCONT);
        for (rc = MPROC_ETIMEDOUT; bad == 0 && rc != 0;) {
            if (mproc_wait(&it, 1, test_ms(10000)) != 1)
                bad = 4;
            else if ((rc = mproc_conn_recv(r, got, len, &n, 0)) != 0 &&
                     rc != MPROC_ETIMEDOUT)
                bad = rc;
        }
        /* Second message, with mproc_conn_recv_alloc. */
        if (bad == 0 &&
            (await_full(x, test_ms(10000)) != 0 || stop_child(pid) != 0))
            bad = 5;
        else if (bad == 0 && (mproc_wait(&it, 1, 0) != 1 ||
                              mproc_conn_recv_alloc(r, &p, &n2, SIZE_MAX, 0) !=
                                  MPROC_ETIMEDOUT))
            bad = 6;
        else if (bad == 0 &&
                 (mproc_conn_recv_alloc(r, &p2, &n2, 10, 0) != MPROC_EMSGSIZE ||
                  n2 != len || p2 != (void *)1))
            bad = 7;
        kill(pid, SIGCONT);
        for (rc = MPROC_ETIMEDOUT; bad == 0 && rc != 0;) {
            if (mproc_wait(&it, 1, test_ms(10000)) != 1)
                bad = 8;
            else if ((rc = mproc_conn_recv_alloc(r, &p, &n2, SIZE_MAX, 0)) !=
                         0 &&
                     rc != MPROC_ETIMEDOUT)
                bad = rc;
        }
        if (bad != 0)
            kill(pid, SIGKILL);
        int st = reap(pid, test_ms(10000));
        ck_assert_int_eq(bad, 0);
        ck_assert_int_eq(st, 0);
        ck_assert_uint_eq(n, len);
        ck_assert(test_pattern_ok(got, len, 21));
        ck_assert_uint_eq(n2, len);
        ck_assert(test_pattern_ok(p, len, 22));
        free(p);
        /* The end goes on. */
        ck_assert_int_eq(mproc_conn_send(w, "next", 4, 0), 0);
        ck_assert_int_eq(mproc_conn_recv(r, got, len, &n, 0), 0);
        ck_assert_uint_eq(n, 4);
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
    free(got);
}
END_TEST

/* Two threads receive on one end with short timeouts: a large message one
 * of them began is finished by whichever comes next, and every message
 * arrives once and whole. */
struct rthread {
    mproc_conn *r;
    _Atomic int *seen; /* per message: times received */
    int nmsg;
    atomic_int *left;
    int bad;
};

static size_t two_size(int i)
{
    return i % 5 == 0 ? 100000 + (size_t)i : 16 + (size_t)i;
}

static void *recv_thread(void *p)
{
    struct rthread *a = p;
    unsigned char *b = malloc(200000);
    int64_t until = test_now_ms() + test_ms(20000);
    while (a->bad == 0 && atomic_load(a->left) > 0) {
        size_t n = 0;
        int rc = mproc_conn_recv(a->r, b, 200000, &n, 2);
        if (rc == MPROC_ETIMEDOUT) {
            if (test_now_ms() > until)
                a->bad = 1;
            continue;
        }
        if (rc == MPROC_ECLOSED)
            break; /* the other thread took the last one */
        int i = -1;
        if (rc == 0 && n >= sizeof i)
            memcpy(&i, b, sizeof i);
        if (rc != 0 || i < 0 || i >= a->nmsg || n != two_size(i) ||
            !test_pattern_ok(b + sizeof i, n - sizeof i, (unsigned)i)) {
            a->bad = rc != 0 ? rc : 2;
            break;
        }
        atomic_fetch_add(&a->seen[i], 1);
        atomic_fetch_sub(a->left, 1);
    }
    free(b);
    return NULL;
}

START_TEST(two_threads_receiving_on_one_end_get_each_message_once)
{
    enum { NMSG = 200 };
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &ring64), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        mproc_conn_close(r);
        unsigned char *b = malloc(200000);
        for (int i = 0; b != NULL && i < NMSG; i++) {
            size_t n = two_size(i);
            memcpy(b, &i, sizeof i);
            test_pattern(b + sizeof i, n - sizeof i, (unsigned)i);
            if (mproc_conn_send(w, b, n, test_ms(10000)) != 0)
                _exit(1);
        }
        _exit(b != NULL ? 0 : 2);
    }
    mproc_conn_close(w);
    static _Atomic int seen[NMSG];
    atomic_int left = NMSG;
    struct rthread a = {r, seen, NMSG, &left, 0}, b = a;
    pthread_t ta, tb;
    ck_assert_int_eq(pthread_create(&ta, NULL, recv_thread, &a), 0);
    ck_assert_int_eq(pthread_create(&tb, NULL, recv_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.bad != 0 || b.bad != 0)
        kill(pid, SIGKILL);
    int st = reap(pid, test_ms(10000));
    ck_assert_int_eq(a.bad, 0);
    ck_assert_int_eq(b.bad, 0);
    ck_assert_int_eq(st, 0);
    for (int i = 0; i < NMSG; i++)
        ck_assert_int_eq(atomic_load(&seen[i]), 1);
    char c;
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, &c, 1, &n, test_ms(5000)),
                     MPROC_ECLOSED);
    mproc_conn_close(r);
}
END_TEST

START_TEST(batch_with_messages_larger_than_the_ring_arrives_whole)
{
    static const size_t bsz[] = {0, 10, 70000, 5, 65528, 65529, 3, 200000, 1};
    enum { NB = sizeof bsz / sizeof bsz[0] };
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            mproc_conn_close(r);
            mproc_conn_msg m[NB];
            for (int i = 0; i < NB; i++) {
                unsigned char *p = malloc(bsz[i] + 1);
                if (p == NULL)
                    _exit(2);
                test_pattern(p, bsz[i], 40 + (unsigned)i);
                m[i].data = p;
                m[i].len = bsz[i];
            }
            size_t sent = 0;
            int rc = mproc_conn_send_batch(w, m, NB, &sent, test_ms(10000));
            _exit(rc == 0 && sent == NB ? 0 : 3);
        }
        mproc_conn_close(w);
        unsigned char *b = malloc(200000);
        ck_assert_ptr_nonnull(b);
        int bad = -1;
        for (int i = 0; i < NB && bad < 0; i++) {
            size_t n = 0;
            if (mproc_conn_recv(r, b, 200000, &n, test_ms(10000)) != 0 ||
                n != bsz[i] || !test_pattern_ok(b, n, 40 + (unsigned)i))
                bad = i;
        }
        if (bad >= 0)
            kill(pid, SIGKILL);
        int st = reap(pid, test_ms(10000));
        ck_assert_int_eq(bad, -1);
        ck_assert_int_eq(st, 0);
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, b, 200000, &n, test_ms(5000)),
                         MPROC_ECLOSED);
        free(b);
        mproc_conn_close(r);
    }
}
END_TEST

START_TEST(batch_that_times_out_reports_exactly_what_was_sent)
{
    enum { NM = 200 };
    for (int duplex = 0; duplex < 2; duplex++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex, &ring64), 0);
        static unsigned char data[NM][1000];
        mproc_conn_msg m[NM];
        for (int i = 0; i < NM; i++) {
            test_pattern(data[i], sizeof data[i], (unsigned)i);
            m[i].data = data[i];
            m[i].len = sizeof data[i];
        }
        /* More than the ring holds and nobody reads. */
        size_t sent = 0;
        ck_assert_int_eq(mproc_conn_send_batch(w, m, NM, &sent, 20),
                         MPROC_ETIMEDOUT);
        ck_assert_uint_gt(sent, 0);
        ck_assert_uint_lt(sent, NM);
        unsigned char got[1000];
        size_t n;
        for (size_t i = 0; i < sent; i++) {
            ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
            ck_assert_uint_eq(n, sizeof got);
            ck_assert(test_pattern_ok(got, n, (unsigned)i));
        }
        /* Exactly those: nothing of the rest, and the end goes on. */
        ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0),
                         MPROC_ETIMEDOUT);
        size_t sent2 = 0;
        ck_assert_int_eq(mproc_conn_send_batch(w, m + sent, 3, &sent2, 0), 0);
        ck_assert_uint_eq(sent2, 3);
        for (size_t i = sent; i < sent + 3; i++) {
            ck_assert_int_eq(mproc_conn_recv(r, got, sizeof got, &n, 0), 0);
            ck_assert(test_pattern_ok(got, n, (unsigned)i));
        }
        mproc_conn_close(r);
        mproc_conn_close(w);
    }
}
END_TEST

/* ----- bad input ----- */

/* A child that receives one message of exactly its ring's size (less the
 * header) on the end it was sent, and echoes its length back. */
static int child_takes_a_whole_ring(void *arg)
{
    mproc_conn *c = arg, *e;
    if (mproc_conn_recv_conn(c, &e, 10000) != 0)
        return 1;
    size_t size = mproc__conn_ringio(e, false)->size;
    unsigned char *b = malloc(size);
    size_t n;
    if (b == NULL || mproc_conn_recv(e, b, size, &n, 10000) != 0 ||
        n != size / 2 - 8 || !test_pattern_ok(b, n, 5))
        return 2;
    uint64_t got = n;
    int rc = mproc_conn_send(c, &got, sizeof got, 10000) != 0 ? 3 : 0;
    free(b);
    mproc_conn_close(e);
    return rc;
}

START_TEST(pipe_ring_size_is_the_callers_and_travels_with_its_end)
{
    mproc_conn *r, *w;
    mproc_pipe_opts o = MPROC_PIPE_OPTS_INIT;
    o.ring_size = 300000; /* rounded up to a power of two */
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &o), 0);
    ck_assert_uint_eq(mproc__conn_ringio(w, true)->size, 512u * 1024u);
    ck_assert_uint_eq(mproc__conn_ringio(r, false)->size, 512u * 1024u);
    /* The default and the bounds. */
    mproc_conn *a, *b;
    ck_assert_int_eq(mproc_pipe(&a, &b, true, NULL), 0);
    ck_assert_uint_eq(mproc__conn_ringio(a, true)->size,
                      MPROC_PIPE_RING_DEFAULT);
    mproc_conn_close(b);
    o.ring_size = MPROC_PIPE_RING_MAX + 1;
    ck_assert_int_eq(mproc_pipe(&a, &b, true, &o), MPROC_EINVAL);
    o.ring_size = 1;
    ck_assert_int_eq(mproc_pipe(&a, &b, true, &o), 0);
    ck_assert_uint_eq(mproc__conn_ringio(a, true)->size, MPROC_PIPE_RING_MIN);
    mproc_conn_close(b);
    mproc_conn_close(a);
    /* The receiving end goes to a child with its ring, whose size the
     * child learns from the memory file. */
    ck_assert_int_eq(mproc_pipe(&a, &b, true, NULL), 0);
    mproc_process *p;
    ck_assert_int_eq(mproc_process_start(&p, child_takes_a_whole_ring, b, NULL),
                     0);
    /* With nobody reading, a message of half the ring goes in whole with
     * timeout 0 (in a ring of the default size it would stream, and time
     * out). */
    size_t len = 256u * 1024u - 8;
    unsigned char *m = malloc(len);
    ck_assert_ptr_nonnull(m);
    test_pattern(m, len, 5);
    ck_assert_int_eq(mproc_conn_send(w, m, len, 0), 0);
    ck_assert_int_eq(mproc_conn_send_conn(a, r, 10000), 0);
    mproc_conn_close(r);
    uint64_t echoed = 0;
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(a, &echoed, sizeof echoed, &n, 10000), 0);
    ck_assert_uint_eq(echoed, len);
    ck_assert_int_eq(mproc_process_join(p, 10000), 0);
    int code = -1;
    ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, 0);
    mproc_process_destroy(p);
    free(m);
    mproc_conn_close(w);
    mproc_conn_close(a);
    mproc_conn_close(b);
}
END_TEST

START_TEST(bad_input_on_ring_ends_is_refused_and_changes_nothing)
{
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, &ring64), 0);
    ck_assert_int_eq(mproc_conn_send(w, "queued", 6, 0), 0);
    char buf[16];
    size_t n;
    void *p = NULL;
    size_t wr;
    mproc_conn_msg m = {"x", 1}, mnull = {NULL, 3};
    /* The wrong direction. */
    ck_assert_int_eq(mproc_conn_send(r, "x", 1, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_batch(r, &m, 1, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv(w, buf, sizeof buf, &n, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv_alloc(w, &p, &n, 100, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_poll(w, 0), MPROC_EINVAL);
    /* NULL buffers and out-params. */
    ck_assert_int_eq(mproc_conn_send(w, NULL, 3, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_batch(w, NULL, 1, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_batch(w, &mnull, 1, NULL, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv(r, NULL, 8, &n, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, NULL, 0),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv_alloc(r, NULL, &n, 100, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv_alloc(r, &p, NULL, 100, 0), MPROC_EINVAL);
    /* Negative timeouts other than MPROC_FOREVER. */
    ck_assert_int_eq(mproc_conn_send(w, "x", 1, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_batch(w, &m, 1, NULL, -7), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, -5), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv_alloc(r, &p, &n, 100, -3), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_poll(r, -100), MPROC_EINVAL);
    mproc_wait_item it = MPROC_WAIT_CONN(r);
    ck_assert_int_eq(mproc_wait(&it, 1, -3), MPROC_EINVAL);
    /* Byte calls, and fds over a pipe. */
    ck_assert_int_eq(mproc_conn_write(w, "x", 1, &wr, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_read(r, buf, sizeof buf, &n, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_fd(w, 0, 0), MPROC_ENOTSOCK);
    ck_assert_int_eq(mproc_conn_send_conn(w, r, 0), MPROC_ENOTSOCK);
    int fd = -7;
    ck_assert_int_eq(mproc_conn_recv_fd(r, &fd, 0), MPROC_ENOTSOCK);
    ck_assert_int_eq(fd, -7);
    mproc_conn *e = NULL;
    ck_assert_int_eq(mproc_conn_recv_conn(r, &e, 0), MPROC_ENOTSOCK);
    ck_assert_ptr_null(e);
    ck_assert_ptr_null(p);
    /* The test hook knows which ends have which ring. */
    ck_assert_ptr_null(mproc__conn_ringio(r, true));
    ck_assert_ptr_null(mproc__conn_ringio(w, false));
    ck_assert_ptr_nonnull(mproc__conn_ringio(r, false));
    /* Nothing changed. */
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(buf, "queued", 6);
    ck_assert_int_eq(mproc_conn_send(w, "next", 4, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0), 0);
    ck_assert_mem_eq(buf, "next", 4);
    mproc_conn_close(r);
    mproc_conn_close(w);

    /* Duplex: fd calls on the wrong kind of message. */
    mproc_conn *a, *b, *k1, *k2;
    ck_assert_int_eq(mproc_pipe(&a, &b, true, &ring64), 0);
    ck_assert_int_eq(mproc_pipe_kernel(&k1, &k2, true), 0);
    ck_assert_ptr_null(mproc__conn_ringio(k1, true));
    ck_assert_int_eq(mproc_conn_send_conn(a, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_conn(a, k1, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send_fd(a, -1, 0), MPROC_EBADF);
    ck_assert_int_eq(mproc_conn_recv_conn(b, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv_conn(b, &e, -2), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_recv_fd(b, NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_conn_send(a, "plain", 5, 0), 0);
    ck_assert_int_eq(mproc_conn_recv_conn(b, &e, test_ms(1000)), MPROC_ESTATE);
    ck_assert_ptr_null(e);
    ck_assert_int_eq(mproc_conn_recv_fd(b, &fd, test_ms(1000)), MPROC_ESTATE);
    ck_assert_int_eq(fd, -7);
    ck_assert_int_eq(mproc_conn_recv(b, buf, sizeof buf, &n, 0), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(buf, "plain", 5);
    /* An end in the ring: an ordinary recv leaves it queued. */
    ck_assert_int_eq(mproc_conn_send_conn(a, k1, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(b, buf, sizeof buf, &n, test_ms(1000)),
                     MPROC_ESTATE);
    ck_assert_int_eq(mproc_conn_recv_alloc(b, &p, &n, 100, 0), MPROC_ESTATE);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(mproc_conn_recv_conn(b, &e, test_ms(1000)), 0);
    ck_assert_int_eq(mproc_conn_send(e, "via", 3, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(k2, buf, sizeof buf, &n, 1000), 0);
    ck_assert_mem_eq(buf, "via", 3);
    mproc_conn_close(e);
    mproc_conn_close(k1);
    mproc_conn_close(k2);
    mproc_conn_close(a);
    mproc_conn_close(b);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("conn_ring");
    TEST_ADD(s, several_processes_send_on_one_end_without_interleaving);
    TEST_ADD(s, sender_with_a_stale_view_never_overwrites_unread_messages);
    TEST_ADD(s,
             sender_killed_inside_a_large_message_is_dropped_and_others_go_on);
    TEST_ADD(s, next_sender_cuts_a_dead_senders_large_message);
    TEST_ADD(s, last_sender_killed_inside_a_large_message_ends_the_stream);
    TEST_ADD(s, a_dead_senders_message_is_not_reported_by_its_size);
    TEST_ADD(s, a_message_aborted_in_a_full_ring_is_not_reported_by_its_size);
    TEST_ADD(s, a_batch_rings_for_what_it_published_before_it_waits);
    TEST_ADD(s, sender_killed_before_its_large_message_began_tears_nothing);
    TEST_ADD(s,
             sender_killed_between_its_fds_and_its_frame_never_gives_wrong_fds);
    TEST_ADD(s, send_timed_out_inside_a_large_message_drops_only_it);
    TEST_ADD(s, two_cut_messages_are_dropped_not_reported_by_size);
    TEST_ADD(s, a_message_left_begun_under_a_waiting_receiver_is_dropped);
    TEST_ADD(s, send_that_times_out_before_any_byte_changes_nothing);
    TEST_ADD(s, sender_dead_holding_the_lock_between_messages_loses_nothing);
    TEST_ADD(s, publish_and_arm_never_lose_a_wake_up);
    TEST_ADD(s, leftover_doorbell_byte_is_not_readiness);
    TEST_ADD(s, fd_becomes_readable_after_recv_zero_times_out);
    TEST_ADD(s, garbage_in_the_ring_is_eproto);
    TEST_ADD(s, malformed_records_in_the_ring_are_eproto);
    TEST_ADD(s, receiver_gone_is_eclosed_for_the_sender);
    TEST_ADD(s, ring_end_passed_to_another_process_keeps_working);
    TEST_ADD(s, recv_fd_of_a_passed_ring_end_gives_one_usable_fd);
    TEST_ADD(s, many_ring_ends_sent_back_to_back_all_arrive);
    TEST_ADD(s, burst_of_fds_before_any_recv_all_arrive_in_order);
    TEST_ADD(s, large_message_resumes_after_wait_and_recv_zero_on_a_ring);
    TEST_ADD(s, two_threads_receiving_on_one_end_get_each_message_once);
    TEST_ADD(s, batch_with_messages_larger_than_the_ring_arrives_whole);
    TEST_ADD(s, batch_that_times_out_reports_exactly_what_was_sent);
    TEST_ADD(s, bad_input_on_ring_ends_is_refused_and_changes_nothing);
    TEST_ADD(s, pipe_ring_size_is_the_callers_and_travels_with_its_end);
    return s;
}
