/*
 * Connections against their peers, in one run: 64-byte messages one way
 * (msgs_per_s), 64-byte ping-pong (rtt_p50_us, rtt_p99_us), a 64-byte
 * message every 300 us to a receiver that sleeps in between
 * (latency_p50_us: the cost of a wake-up) and 1 MiB messages one way
 * (gbytes_per_s). A forked producer and the parent
 * consumer sit on different CPUs; every message is checked.
 * Impls: mproc_conn (simplex mproc pipes), mproc_conn_kernel (the same
 * over mproc_pipe_kernel), mproc_conn_duplex (one duplex mproc pipe),
 * mproc_conn_batch (mproc_conn_send_batch of 32, one way only), raw_pipe (one
 * write/read per message), raw_socketpair, posix_mq, zeromq (PUSH/PULL over
 * ipc://), spsc_ring_futex (bench/spsc.h, the ceiling of a ring between
 * two processes: 1024 slots of 64 bytes; for 1 MiB, 4 slots of 64 KiB that
 * carry it in fragments). The child's and the parent's CPUs are checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mproc.h"
#include "spsc.h"
#ifdef MPROC_BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

#define SMALL 64
#define BIG ((size_t)1 << 20)
#define END_MARK UINT64_MAX
#define MAX_SAMPLES 4000000
#define BATCH 32

/* Two one-way channels: UP (child to parent) and DOWN (parent to child). */
enum { UP = 0, DOWN = 1 };

struct impl {
    const char *name;
    int big_ok;                                  /* can carry 1 MiB messages */
    int rtt_ok;                                  /* takes part in ping-pong */
    int (*make)(void);                           /* before fork */
    void (*start)(int child);                    /* after fork, both sides */
    void (*tx)(int ch, const void *b, size_t n); /* dies on failure */
    void (*rx)(int ch, void *b, size_t n);       /* exactly n bytes */
    void (*flush)(int ch);                       /* may be NULL */
    void (*finish)(int child);                   /* both sides, at the end */
};

/* ----- raw pipe / socketpair: one write and one read per message ----- */

static int fds[2][2]; /* [UP|DOWN][read, write] */
static int sp[2];

static void write_all(int fd, const void *b, size_t n)
{
    const char *p = b;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            bench_die("write: %s", strerror(errno));
        p += k;
        n -= (size_t)k;
    }
}

static void read_all(int fd, void *b, size_t n)
{
    char *p = b;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            bench_die("read: %s", k == 0 ? "EOF" : strerror(errno));
        p += k;
        n -= (size_t)k;
    }
}

static int pipe_make(void)
{
    return pipe2(fds[UP], O_CLOEXEC) | pipe2(fds[DOWN], O_CLOEXEC);
}

static void pipe_start(int child)
{
    close(fds[UP][child ? 0 : 1]);
    close(fds[DOWN][child ? 1 : 0]);
}

static void pipe_tx(int ch, const void *b, size_t n)
{
    write_all(fds[ch][1], b, n);
}

static void pipe_rx(int ch, void *b, size_t n)
{
    read_all(fds[ch][0], b, n);
}

static void pipe_finish(int child)
{
    close(fds[UP][child ? 1 : 0]);
    close(fds[DOWN][child ? 0 : 1]);
}

static int sp_make(void)
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp);
}

static void sp_start(int child)
{
    close(sp[child ? 0 : 1]);
}

static int sp_mine;

static void sp_tx(int ch, const void *b, size_t n)
{
    (void)ch;
    write_all(sp[sp_mine], b, n);
}

static void sp_rx(int ch, void *b, size_t n)
{
    (void)ch;
    read_all(sp[sp_mine], b, n);
}

static void sp_finish(int child)
{
    close(sp[child ? 1 : 0]);
}

static void sp_start_mine(int child)
{
    sp_start(child);
    sp_mine = child ? 1 : 0;
}

/* ----- POSIX message queues ----- */

static char mq_names[2][64];
static mqd_t mqs[2];

static int mq_make(void)
{
    struct mq_attr a = {0};
    a.mq_maxmsg = 10; /* the default per-queue limit */
    a.mq_msgsize = SMALL;
    for (int i = 0; i < 2; i++) {
        snprintf(mq_names[i], sizeof mq_names[i], "/mproc-bench-%d-%d",
                 (int)getpid(), i);
        mqs[i] = mq_open(mq_names[i], O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                         0600, &a);
        if (mqs[i] == (mqd_t)-1)
            return -1;
    }
    return 0;
}

static void mq_start(int child)
{
    (void)child;
}

static void mq_tx(int ch, const void *b, size_t n)
{
    while (mq_send(mqs[ch], b, n, 0) < 0)
        if (errno != EINTR)
            bench_die("mq_send: %s", strerror(errno));
}

static void mq_rx(int ch, void *b, size_t n)
{
    ssize_t k;
    while ((k = mq_receive(mqs[ch], b, SMALL, NULL)) < 0)
        if (errno != EINTR)
            bench_die("mq_receive: %s", strerror(errno));
    if ((size_t)k != n)
        bench_die("mq_receive: %zd bytes", k);
}

static void mq_finish(int child)
{
    for (int i = 0; i < 2; i++) {
        mq_close(mqs[i]);
        if (!child)
            mq_unlink(mq_names[i]);
    }
}

/* ----- ZeroMQ over ipc:// ----- */

#ifdef MPROC_BENCH_HAVE_ZMQ
static void *zctx, *zs[2];
static char zpath[2][128];

static int zmq_make(void)
{
    for (int i = 0; i < 2; i++)
        snprintf(zpath[i], sizeof zpath[i], "/tmp/mproc-bench-%d-%d.ipc",
                 (int)getpid(), i);
    return 0;
}

static void zmq_start(int child)
{
    zctx = zmq_ctx_new();
    for (int i = 0; i < 2; i++) {
        /* UP: the child pushes; DOWN: the parent pushes. */
        int pushes = (i == UP) == (child != 0);
        zs[i] = zmq_socket(zctx, pushes ? ZMQ_PUSH : ZMQ_PULL);
        char ep[160];
        snprintf(ep, sizeof ep, "ipc://%s", zpath[i]);
        int rc = child ? zmq_connect(zs[i], ep) : zmq_bind(zs[i], ep);
        if (rc != 0)
            bench_die("zmq bind/connect: %s", zmq_strerror(zmq_errno()));
    }
}

static void zmq_tx(int ch, const void *b, size_t n)
{
    while (zmq_send(zs[ch], b, n, 0) < 0)
        if (zmq_errno() != EINTR)
            bench_die("zmq_send: %s", zmq_strerror(zmq_errno()));
}

static void zmq_rx(int ch, void *b, size_t n)
{
    int k;
    while ((k = zmq_recv(zs[ch], b, n, 0)) < 0)
        if (zmq_errno() != EINTR)
            bench_die("zmq_recv: %s", zmq_strerror(zmq_errno()));
    if ((size_t)k != n)
        bench_die("zmq_recv: %d bytes", k);
}

static void zmq_finish(int child)
{
    int linger = child ? -1 : 0;
    for (int i = 0; i < 2; i++) {
        zmq_setsockopt(zs[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(zs[i]);
    }
    zmq_ctx_term(zctx);
    if (!child)
        for (int i = 0; i < 2; i++)
            unlink(zpath[i]);
}
#endif

/* ----- mproc connections ----- */

static mproc_conn *mc[2][2]; /* [UP|DOWN][recv end, send end] */
static mproc_conn *md[2];    /* duplex: [parent's, child's] */
static int md_mine;

static int mc_make(void)
{
    return mproc_pipe(&mc[UP][0], &mc[UP][1], false, NULL) |
           mproc_pipe(&mc[DOWN][0], &mc[DOWN][1], false, NULL);
}

/* The same ends over the kernel path (mproc_pipe_kernel). */
static int mck_make(void)
{
    return mproc_pipe_kernel(&mc[UP][0], &mc[UP][1], false) |
           mproc_pipe_kernel(&mc[DOWN][0], &mc[DOWN][1], false);
}

static void mc_start(int child)
{
    mproc_conn_close(mc[UP][child ? 0 : 1]);
    mproc_conn_close(mc[DOWN][child ? 1 : 0]);
}

static void mc_tx(int ch, const void *b, size_t n)
{
    int rc = mproc_conn_send(mc[ch][1], b, n, MPROC_FOREVER);
    if (rc != 0)
        bench_die("mproc_conn_send: %s", mproc_strerror(rc));
}

static void mc_rx(int ch, void *b, size_t n)
{
    size_t got;
    int rc = mproc_conn_recv(mc[ch][0], b, n, &got, MPROC_FOREVER);
    if (rc != 0 || got != n)
        bench_die("mproc_conn_recv: %s (%zu bytes)", mproc_strerror(rc), got);
}

static void mc_finish(int child)
{
    mproc_conn_close(mc[UP][child ? 1 : 0]);
    mproc_conn_close(mc[DOWN][child ? 0 : 1]);
}

/* Batching: messages are copied into a ring and sent BATCH at a time. */
static unsigned char batch_buf[BATCH][SMALL];
static mproc_conn_msg batch_msgs[BATCH];
static int batch_n;

static void mcb_flush(int ch)
{
    if (batch_n == 0)
        return;
    int rc = mproc_conn_send_batch(mc[ch][1], batch_msgs, (size_t)batch_n, NULL,
                                   MPROC_FOREVER);
    if (rc != 0)
        bench_die("mproc_conn_send_batch: %s", mproc_strerror(rc));
    batch_n = 0;
}

static void mcb_tx(int ch, const void *b, size_t n)
{
    if (n > SMALL) {
        mcb_flush(ch);
        mc_tx(ch, b, n);
        return;
    }
    memcpy(batch_buf[batch_n], b, n);
    batch_msgs[batch_n].data = batch_buf[batch_n];
    batch_msgs[batch_n].len = n;
    if (++batch_n == BATCH)
        mcb_flush(ch);
}

static int md_make(void)
{
    return mproc_pipe(&md[0], &md[1], true, NULL);
}

static void md_start(int child)
{
    mproc_conn_close(md[child ? 0 : 1]);
    md_mine = child ? 1 : 0;
}

static void md_tx(int ch, const void *b, size_t n)
{
    (void)ch;
    int rc = mproc_conn_send(md[md_mine], b, n, MPROC_FOREVER);
    if (rc != 0)
        bench_die("mproc_conn_send: %s", mproc_strerror(rc));
}

static void md_rx(int ch, void *b, size_t n)
{
    (void)ch;
    size_t got;
    int rc = mproc_conn_recv(md[md_mine], b, n, &got, MPROC_FOREVER);
    if (rc != 0 || got != n)
        bench_die("mproc_conn_recv: %s", mproc_strerror(rc));
}

static void md_finish(int child)
{
    mproc_conn_close(md[child ? 1 : 0]);
}

/* ----- the SPSC ring (bench/spsc.h): the ceiling ----- */

static spsc *rings[2];
static size_t msg_size; /* of the measurement about to start */

static int ring_make(void)
{
    uint32_t nslots = msg_size > SMALL ? 4 : 1024;
    uint32_t slot = msg_size > SMALL ? 65536 : SMALL;
    for (int i = 0; i < 2; i++)
        if ((rings[i] = spsc_create(nslots, slot, SPSC_FUTEX)) == NULL)
            return -1;
    return 0;
}

static void ring_start(int child)
{
    (void)child;
}

static void ring_tx(int ch, const void *b, size_t n)
{
    spsc_send(rings[ch], b, n);
}

static void ring_rx(int ch, void *b, size_t n)
{
    size_t got = spsc_recv(rings[ch], b, n);
    if (got != n)
        bench_die("spsc_recv: %zu bytes", got);
}

static void ring_finish(int child)
{
    (void)child;
    for (int i = 0; i < 2; i++) {
        spsc_destroy(rings[i]);
        rings[i] = NULL;
    }
}

static const struct impl impls[] = {
    {"mproc_conn", 1, 1, mc_make, mc_start, mc_tx, mc_rx, NULL, mc_finish},
    {"mproc_conn_kernel", 1, 1, mck_make, mc_start, mc_tx, mc_rx, NULL,
     mc_finish},
    {"mproc_conn_batch", 0, 0, mc_make, mc_start, mcb_tx, mc_rx, mcb_flush,
     mc_finish},
    {"mproc_conn_duplex", 1, 1, md_make, md_start, md_tx, md_rx, NULL,
     md_finish},
    {"raw_pipe", 1, 1, pipe_make, pipe_start, pipe_tx, pipe_rx, NULL,
     pipe_finish},
    {"raw_socketpair", 1, 1, sp_make, sp_start_mine, sp_tx, sp_rx, NULL,
     sp_finish},
    {"posix_mq", 0, 1, mq_make, mq_start, mq_tx, mq_rx, NULL, mq_finish},
#ifdef MPROC_BENCH_HAVE_ZMQ
    {"zeromq", 1, 1, zmq_make, zmq_start, zmq_tx, zmq_rx, NULL, zmq_finish},
#endif
    {"spsc_ring_futex", 1, 1, ring_make, ring_start, ring_tx, ring_rx, NULL,
     ring_finish},
};

/* ----- the measurements ----- */

struct shared {
    atomic_int stop;
    atomic_int child_cpu;
};

static struct shared *sh;
static int ncpu_start; /* CPUs this program may use */

/* Pins the caller to cpu (bench_pin_cpu) and returns the CPU it now runs
 * on, the single CPU of its affinity; -1 when it is not pinned to one. */
static int pin(int cpu)
{
    bench_pin_cpu(cpu);
    cpu_set_t s;
    if (sched_getaffinity(0, sizeof s, &s) != 0 || CPU_COUNT(&s) != 1)
        return -1;
    int c = sched_getcpu();
    return c >= 0 && CPU_ISSET(c, &s) ? c : -1;
}

static int parent_cpu;

/* Runs fn in a forked child on CPU 0 while the parent is on CPU 1. */
static pid_t spawn(const struct impl *im, void (*fn)(const struct impl *))
{
    atomic_store(&sh->stop, 0);
    if (im->make() != 0)
        bench_die("%s: setup failed: %s", im->name, strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        atomic_store(&sh->child_cpu, pin(0));
        im->start(1);
        fn(im);
        im->finish(1);
        _exit(0);
    }
    parent_cpu = pin(1);
    im->start(0);
    return pid;
}

static void reap(const struct impl *im, pid_t pid)
{
    im->finish(0);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("%s: the child failed", im->name);
    int c = atomic_load(&sh->child_cpu);
    if (ncpu_start >= 2 && (c < 0 || parent_cpu < 0 || c == parent_cpu))
        bench_die("%s: child on CPU %d, parent on CPU %d", im->name, c,
                  parent_cpu);
}

static void producer(const struct impl *im)
{
    static unsigned char buf[BIG];
    for (uint64_t i = 0;; i++) {
        if (atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
            uint64_t end = END_MARK;
            memcpy(buf, &end, 8);
            im->tx(UP, buf, msg_size);
            break;
        }
        bench_fill(buf, msg_size, i);
        im->tx(UP, buf, msg_size);
    }
    if (im->flush != NULL)
        im->flush(UP);
}

/* One way: messages per second (or bytes per second) over secs. */
static double one_way(const struct impl *im, size_t size, double secs)
{
    static unsigned char buf[BIG];
    msg_size = size;
    pid_t pid = spawn(im, producer);
    uint64_t n = 0, counted = 0;
    double t0 = 0, t1 = 0;
    for (;;) {
        im->rx(UP, buf, size);
        uint64_t tag;
        memcpy(&tag, buf, 8);
        if (tag == END_MARK)
            break;
        if (!bench_check(buf, size, n))
            bench_die("%s: message %llu damaged", im->name,
                      (unsigned long long)n);
        n++;
        if (n == 1) {
            t0 = bench_now_s();
        } else if (t1 == 0 && bench_now_s() - t0 >= secs) {
            t1 = bench_now_s();
            counted = n - 1;
            atomic_store(&sh->stop, 1);
        }
    }
    reap(im, pid);
    return (double)counted / (t1 - t0);
}

static void echoer(const struct impl *im)
{
    unsigned char buf[SMALL];
    for (;;) {
        im->rx(DOWN, buf, SMALL);
        im->tx(UP, buf, SMALL);
        uint64_t tag;
        memcpy(&tag, buf, 8);
        if (tag == END_MARK)
            return;
    }
}

static double *samples;

static void ping_pong(const struct impl *im, double secs, double *p50,
                      double *p99)
{
    unsigned char out[SMALL], in[SMALL];
    msg_size = SMALL;
    pid_t pid = spawn(im, echoer);
    size_t n = 0;
    double t0 = bench_now_s();
    for (uint64_t i = 0;; i++) {
        bench_fill(out, SMALL, i);
        int64_t a = bench_now_ns();
        im->tx(DOWN, out, SMALL);
        im->rx(UP, in, SMALL);
        int64_t b = bench_now_ns();
        if (!bench_check(in, SMALL, i))
            bench_die("%s: reply %llu damaged", im->name,
                      (unsigned long long)i);
        if (i >= 100 && n < MAX_SAMPLES) /* skip the warm-up */
            samples[n++] = (double)(b - a) / 1000.0;
        if ((i & 63) == 0 && bench_now_s() - t0 >= secs)
            break;
    }
    uint64_t end = END_MARK;
    memcpy(out, &end, 8);
    im->tx(DOWN, out, SMALL);
    im->rx(UP, in, SMALL);
    reap(im, pid);
    *p50 = bench_percentile(samples, n, 50);
    *p99 = bench_percentile(samples, n, 99);
}

/* One message every WAKE_GAP_US, far past any spin: the receiver has gone
 * to sleep each time, so this is what a wake-up costs, from the send to
 * the receive (the sender's CLOCK_MONOTONIC time travels in bytes 16-23,
 * which bench_fill leaves alone in a 64-byte message). */
#define WAKE_GAP_US 300

static void paced_producer(const struct impl *im)
{
    unsigned char buf[SMALL];
    for (uint64_t i = 0;; i++) {
        struct timespec gap = {0, WAKE_GAP_US * 1000};
        nanosleep(&gap, NULL);
        int stop = atomic_load(&sh->stop);
        bench_fill(buf, SMALL, i);
        if (stop) {
            uint64_t end = END_MARK;
            memcpy(buf, &end, 8);
        }
        int64_t t = bench_now_ns();
        memcpy(buf + 16, &t, 8);
        im->tx(UP, buf, SMALL);
        if (im->flush != NULL)
            im->flush(UP);
        if (stop)
            break;
    }
}

static double wake_latency(const struct impl *im, double secs)
{
    unsigned char buf[SMALL];
    msg_size = SMALL;
    pid_t pid = spawn(im, paced_producer);
    size_t n = 0;
    double t0 = bench_now_s();
    for (uint64_t i = 0;; i++) {
        im->rx(UP, buf, SMALL);
        int64_t now = bench_now_ns();
        uint64_t tag;
        memcpy(&tag, buf, 8);
        if (tag == END_MARK)
            break;
        if (tag != i || !bench_check(buf, SMALL, i))
            bench_die("%s: message %llu damaged", im->name,
                      (unsigned long long)i);
        int64_t sent;
        memcpy(&sent, buf + 16, 8);
        if (i >= 10 && n < MAX_SAMPLES)
            samples[n++] = (double)(now - sent) / 1000.0;
        if (bench_now_s() - t0 >= secs)
            atomic_store(&sh->stop, 1);
    }
    reap(im, pid);
    return bench_percentile(samples, n, 50);
}

static double median(double *v, int n)
{
    return bench_percentile(v, (size_t)n, 50);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* raw peers only; mproc never needs it */
    cpu_set_t avail;
    if (sched_getaffinity(0, sizeof avail, &avail) == 0)
        ncpu_start = CPU_COUNT(&avail);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    samples = malloc(MAX_SAMPLES * sizeof *samples);
    if (sh == MAP_FAILED || samples == NULL)
        bench_die("out of memory");
    int reps = bench_repeats();
    double secs = bench_seconds() / reps; /* one measurement ~ seconds() */
    size_t nimpl = sizeof impls / sizeof impls[0];
    /* Repeats go round the impls (impl A, B, C, A, B, C, ...) so that load
     * from elsewhere on the machine falls on every impl alike. */
    static double v[16][16], w[16][16];
    if (bench_case_enabled("conn.oneway_64B")) {
        for (int r = 0; r < reps; r++)
            for (size_t k = 0; k < nimpl; k++)
                if (bench_impl_enabled(impls[k].name))
                    v[k][r] = one_way(&impls[k], SMALL, secs);
        for (size_t k = 0; k < nimpl; k++)
            if (bench_impl_enabled(impls[k].name))
                bench_result("conn.oneway_64B", impls[k].name, "msgs_per_s",
                             median(v[k], reps));
    }
    if (bench_case_enabled("conn.pingpong_64B")) {
        for (int r = 0; r < reps; r++)
            for (size_t k = 0; k < nimpl; k++)
                if (bench_impl_enabled(impls[k].name) && impls[k].rtt_ok)
                    ping_pong(&impls[k], secs, &v[k][r], &w[k][r]);
        for (size_t k = 0; k < nimpl; k++) {
            if (!bench_impl_enabled(impls[k].name) || !impls[k].rtt_ok)
                continue;
            bench_result("conn.pingpong_64B", impls[k].name, "rtt_p50_us",
                         median(v[k], reps));
            bench_result("conn.pingpong_64B", impls[k].name, "rtt_p99_us",
                         median(w[k], reps));
        }
    }
    if (bench_case_enabled("conn.wake_64B")) {
        for (int r = 0; r < reps; r++)
            for (size_t k = 0; k < nimpl; k++)
                if (bench_impl_enabled(impls[k].name) && impls[k].rtt_ok)
                    v[k][r] = wake_latency(&impls[k], secs);
        for (size_t k = 0; k < nimpl; k++)
            if (bench_impl_enabled(impls[k].name) && impls[k].rtt_ok)
                bench_result("conn.wake_64B", impls[k].name, "latency_p50_us",
                             median(v[k], reps));
    }
    if (bench_case_enabled("conn.oneway_1MiB")) {
        for (int r = 0; r < reps; r++)
            for (size_t k = 0; k < nimpl; k++)
                if (bench_impl_enabled(impls[k].name) && impls[k].big_ok)
                    v[k][r] = one_way(&impls[k], BIG, secs) * (double)BIG / 1e9;
        for (size_t k = 0; k < nimpl; k++)
            if (bench_impl_enabled(impls[k].name) && impls[k].big_ok)
                bench_result("conn.oneway_1MiB", impls[k].name, "gbytes_per_s",
                             median(v[k], reps));
    }
    free(samples);
    munmap(sh, sizeof *sh);
    return 0;
}
