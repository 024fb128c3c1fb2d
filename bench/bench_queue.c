/*
 * Queues against their peers, in one run. Cases: 64-byte messages one way
 * (queue.oneway_64B, msgs_per_s); 64-byte ping-pong through two queues
 * (queue.rtt_64B, rtt_p50_us, rtt_p99_us); 1 MiB messages one way
 * (queue.bulk_1MiB, gbytes_per_s); 2 producers and 2 consumers on one
 * queue (queue.mpmc_64B, msgs_per_s); 64-byte messages put and got 32 at a
 * time where the impl has a batched form (queue.batch_64B, msgs_per_s); a
 * 64-byte message every 300 us to a consumer that has gone to sleep
 * (queue.wake_64B, latency_p50_us). Producers sit on one CPU, consumers on
 * another (checked); every message is checked, and in mpmc every message
 * put is got exactly once.
 * Impls: mproc_queue (default options: 1 MiB of memory, no bound in
 * messages; put_batch/get_batch in batch_64B), spsc_ring_futex and
 * spsc_ring_spin (bench/spsc.h: 1024 slots of 64 bytes; for 1 MiB, 4 slots
 * of 64 KiB that carry it in fragments), mproc_conn (mproc_pipe() ends),
 * raw_pipe (one write and one read per message), posix_mq (10 messages of
 * 64 bytes), zeromq (PUSH/PULL over ipc://). The Python peer is
 * bench/py/queue.py. An impl that cannot take part in a case prints a
 * LEFTOUT line that says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
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
#define NPROD 2
#define NCONS 2
#define SEQ_MASK                                                               \
    (((uint64_t)1 << 56) - 1) /* mpmc tag: producer << 56 | seq                \
                               */
#define DRAIN_MS 50 /* mpmc: a consumer leaves after this long with nothing */
#define WAKE_GAP_US 300

/* Two one-way channels: UP (child to parent) and DOWN (parent to child);
 * mpmc uses UP alone, shared by every process. */
enum { UP = 0, DOWN = 1 };
/* Who calls start/finish: the two sides of a two-process case, or the
 * producers, consumers and coordinator of mpmc. */
enum { R_PARENT, R_CHILD, R_PROD, R_CONS, R_COORD };
enum { C_ONEWAY, C_RTT, C_BULK, C_MPMC, C_BATCH, C_WAKE, NCASES };

struct impl {
    const char *name;
    const char *left_out[NCASES]; /* why it sits a case out; NULL: it runs */
    void (*make)(size_t size, int mpmc);          /* before fork; dies */
    void (*start)(int role, int idx);             /* after fork */
    void (*put)(int ch, const void *b, size_t n); /* dies on failure */
    /* One message of exactly n bytes: 0, or 1 when timeout_ms (>= 0)
     * passed first. Dies on failure. */
    int (*get)(int ch, void *b, size_t n, int timeout_ms);
    /* count messages of each bytes laid one after another in b. */
    void (*put_batch)(int ch, const void *b, size_t each, size_t count);
    /* Up to max messages of each bytes into b; returns how many (>= 1). */
    size_t (*get_batch)(int ch, void *b, size_t each, size_t max);
    void (*finish)(int role);
};

static void check_mproc(int rc, const char *what)
{
    if (rc != 0)
        bench_die("%s: %s", what, mproc_strerror(rc));
}

/* ----- mproc_queue ----- */

static mproc_queue *qq[2];

static void q_make(size_t size, int mpmc)
{
    (void)size;
    (void)mpmc;
    check_mproc(mproc_queue_create(&qq[UP], NULL, NULL), "mproc_queue_create");
    check_mproc(mproc_queue_create(&qq[DOWN], NULL, NULL),
                "mproc_queue_create");
}

static void q_start(int role, int idx)
{
    (void)role;
    (void)idx;
}

static void q_put(int ch, const void *b, size_t n)
{
    check_mproc(mproc_queue_put(qq[ch], b, n, MPROC_FOREVER),
                "mproc_queue_put");
}

static int q_get(int ch, void *b, size_t n, int timeout_ms)
{
    size_t len = 0;
    int rc = mproc_queue_get(qq[ch], b, n, &len,
                             timeout_ms < 0 ? MPROC_FOREVER : timeout_ms);
    if (rc == MPROC_ETIMEDOUT)
        return 1;
    check_mproc(rc, "mproc_queue_get");
    if (len != n)
        bench_die("mproc_queue_get: %zu bytes", len);
    return 0;
}

static void q_put_batch(int ch, const void *b, size_t each, size_t count)
{
    mproc_queue_msg m[BATCH];
    for (size_t i = 0; i < count; i++) {
        m[i].data = (const unsigned char *)b + i * each;
        m[i].len = each;
    }
    size_t sent = 0;
    check_mproc(mproc_queue_put_batch(qq[ch], m, count, &sent, MPROC_FOREVER),
                "mproc_queue_put_batch");
    if (sent != count)
        bench_die("mproc_queue_put_batch: %zu of %zu", sent, count);
}

static size_t q_get_batch(int ch, void *b, size_t each, size_t max)
{
    size_t lens[BATCH], got = 0;
    check_mproc(mproc_queue_get_batch(qq[ch], b, each * max, lens, max, &got,
                                      MPROC_FOREVER),
                "mproc_queue_get_batch");
    for (size_t i = 0; i < got; i++)
        if (lens[i] != each)
            bench_die("mproc_queue_get_batch: %zu bytes", lens[i]);
    return got;
}

static void q_finish(int role)
{
    (void)role;
    mproc_queue_close(qq[UP]);
    mproc_queue_close(qq[DOWN]);
}

/* ----- the SPSC rings (bench/spsc.h) ----- */

static spsc *rings[2];

static void ring_make(size_t size, int mode)
{
    /* 64-byte messages: 1024 slots of 64 bytes; 1 MiB: 4 slots of 64 KiB,
     * the message in 16 fragments. */
    uint32_t nslots = size > SMALL ? 4 : 1024;
    uint32_t slot = size > SMALL ? 65536 : SMALL;
    for (int i = 0; i < 2; i++)
        if ((rings[i] = spsc_create(nslots, slot, mode)) == NULL)
            bench_die("spsc_create: %s", strerror(errno));
}

static void rf_make(size_t size, int mpmc)
{
    (void)mpmc;
    ring_make(size, SPSC_FUTEX);
}

static void rs_make(size_t size, int mpmc)
{
    (void)mpmc;
    ring_make(size, SPSC_SPIN);
}

static void ring_start(int role, int idx)
{
    (void)role;
    (void)idx;
}

static void ring_put(int ch, const void *b, size_t n)
{
    spsc_send(rings[ch], b, n);
}

static int ring_get(int ch, void *b, size_t n, int timeout_ms)
{
    (void)timeout_ms; /* never asked: the rings sit mpmc out */
    size_t got = spsc_recv(rings[ch], b, n);
    if (got != n)
        bench_die("spsc_recv: %zu bytes", got);
    return 0;
}

static void ring_put_batch(int ch, const void *b, size_t each, size_t count)
{
    spsc_send_batch(rings[ch], b, each, count);
}

static size_t ring_get_batch(int ch, void *b, size_t each, size_t max)
{
    size_t lens[BATCH];
    size_t got = spsc_recv_batch(rings[ch], b, each * max, lens, max);
    for (size_t i = 0; i < got; i++)
        if (lens[i] != each)
            bench_die("spsc_recv_batch: %zu bytes", lens[i]);
    return got;
}

static void ring_finish(int role)
{
    (void)role;
    for (int i = 0; i < 2; i++) {
        spsc_destroy(rings[i]);
        rings[i] = NULL;
    }
}

/* ----- mproc connections (mproc_pipe ends) ----- */

static mproc_conn *mc[2][2]; /* [UP|DOWN][recv end, send end] */

static void mc_make(size_t size, int mpmc)
{
    (void)size;
    (void)mpmc;
    check_mproc(mproc_pipe(&mc[UP][0], &mc[UP][1], false, NULL), "mproc_pipe");
    check_mproc(mproc_pipe(&mc[DOWN][0], &mc[DOWN][1], false, NULL),
                "mproc_pipe");
}

static void mc_start(int role, int idx)
{
    (void)idx;
    int child = role == R_CHILD;
    mproc_conn_close(mc[UP][child ? 0 : 1]);
    mproc_conn_close(mc[DOWN][child ? 1 : 0]);
}

static void mc_put(int ch, const void *b, size_t n)
{
    check_mproc(mproc_conn_send(mc[ch][1], b, n, MPROC_FOREVER),
                "mproc_conn_send");
}

static int mc_get(int ch, void *b, size_t n, int timeout_ms)
{
    size_t got = 0;
    int rc = mproc_conn_recv(mc[ch][0], b, n, &got,
                             timeout_ms < 0 ? MPROC_FOREVER : timeout_ms);
    if (rc == MPROC_ETIMEDOUT)
        return 1;
    check_mproc(rc, "mproc_conn_recv");
    if (got != n)
        bench_die("mproc_conn_recv: %zu bytes", got);
    return 0;
}

static void mc_put_batch(int ch, const void *b, size_t each, size_t count)
{
    mproc_conn_msg m[BATCH];
    for (size_t i = 0; i < count; i++) {
        m[i].data = (const unsigned char *)b + i * each;
        m[i].len = each;
    }
    size_t sent = 0;
    check_mproc(
        mproc_conn_send_batch(mc[ch][1], m, count, &sent, MPROC_FOREVER),
        "mproc_conn_send_batch");
    if (sent != count)
        bench_die("mproc_conn_send_batch: %zu of %zu", sent, count);
}

/* No batched receive: one message per call. */
static size_t mc_get_batch(int ch, void *b, size_t each, size_t max)
{
    (void)max;
    mc_get(ch, b, each, -1);
    return 1;
}

static void mc_finish(int role)
{
    int child = role == R_CHILD;
    mproc_conn_close(mc[UP][child ? 1 : 0]);
    mproc_conn_close(mc[DOWN][child ? 0 : 1]);
}

/* ----- raw pipe: one write and one read per message ----- */

static int fds[2][2] = {{-1, -1}, {-1, -1}}; /* [UP|DOWN][read, write] */

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

/* Reads exactly n bytes; on a non-blocking fd waits in poll. Returns 1
 * when timeout_ms (>= 0) passes before the first byte. */
static int read_all(int fd, void *b, size_t n, int timeout_ms)
{
    char *p = b;
    size_t done = 0;
    while (done < n) {
        ssize_t k = read(fd, p + done, n - done);
        if (k > 0) {
            done += (size_t)k;
            continue;
        }
        if (k == 0)
            bench_die("read: EOF");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            bench_die("read: %s", strerror(errno));
        struct pollfd pf = {fd, POLLIN, 0};
        int rc = poll(&pf, 1, done == 0 ? timeout_ms : -1);
        if (rc == 0)
            return 1;
    }
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void pipe_make(size_t size, int mpmc)
{
    (void)size;
    if (pipe2(fds[UP], O_CLOEXEC) != 0 || pipe2(fds[DOWN], O_CLOEXEC) != 0)
        bench_die("pipe2: %s", strerror(errno));
    /* Several consumers: a reader that polled readable may find the
     * message taken by the other; it polls again. 64-byte writes are
     * atomic (PIPE_BUF), so reads of 64 bytes take whole messages. */
    if (mpmc && fcntl(fds[UP][0], F_SETFL, O_NONBLOCK) != 0)
        bench_die("fcntl: %s", strerror(errno));
}

static void pipe_start(int role, int idx)
{
    (void)idx;
    if (role != R_PARENT && role != R_CHILD)
        return;
    int child = role == R_CHILD;
    close_fd(&fds[UP][child ? 0 : 1]);
    close_fd(&fds[DOWN][child ? 1 : 0]);
}

static void pipe_put(int ch, const void *b, size_t n)
{
    write_all(fds[ch][1], b, n);
}

static int pipe_get(int ch, void *b, size_t n, int timeout_ms)
{
    return read_all(fds[ch][0], b, n, timeout_ms);
}

/* Batched: one write of the whole batch (2 KiB, atomic), reads of as much
 * as is there. */
static void pipe_put_batch(int ch, const void *b, size_t each, size_t count)
{
    write_all(fds[ch][1], b, each * count);
}

static size_t pipe_get_batch(int ch, void *b, size_t each, size_t max)
{
    ssize_t k;
    while ((k = read(fds[ch][0], b, each * max)) < 0 && errno == EINTR)
        ;
    if (k <= 0)
        bench_die("read: %s", k == 0 ? "EOF" : strerror(errno));
    size_t got = (size_t)k, part = got % each;
    if (part != 0) {
        read_all(fds[ch][0], (char *)b + got, each - part, -1);
        got += each - part;
    }
    return got / each;
}

static void pipe_finish(int role)
{
    (void)role;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            close_fd(&fds[i][j]);
}

/* ----- POSIX message queues ----- */

static char mq_names[2][64];
static mqd_t mqs[2];

static void mq_make(size_t size, int mpmc)
{
    (void)size;
    (void)mpmc;
    struct mq_attr a = {0};
    a.mq_maxmsg = 10; /* the default per-queue limit */
    a.mq_msgsize = SMALL;
    for (int i = 0; i < 2; i++) {
        snprintf(mq_names[i], sizeof mq_names[i], "/mproc-benchq-%d-%d",
                 (int)getpid(), i);
        mqs[i] = mq_open(mq_names[i], O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                         0600, &a);
        if (mqs[i] == (mqd_t)-1)
            bench_die("mq_open: %s", strerror(errno));
    }
}

static void mq_start(int role, int idx)
{
    (void)role;
    (void)idx;
}

static void mq_put(int ch, const void *b, size_t n)
{
    while (mq_send(mqs[ch], b, n, 0) < 0)
        if (errno != EINTR)
            bench_die("mq_send: %s", strerror(errno));
}

static int mq_get(int ch, void *b, size_t n, int timeout_ms)
{
    struct timespec until;
    if (timeout_ms >= 0) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)timeout_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
    }
    ssize_t k;
    while ((k = timeout_ms < 0
                    ? mq_receive(mqs[ch], b, SMALL, NULL)
                    : mq_timedreceive(mqs[ch], b, SMALL, NULL, &until)) < 0) {
        if (errno == ETIMEDOUT)
            return 1;
        if (errno != EINTR)
            bench_die("mq_receive: %s", strerror(errno));
    }
    if ((size_t)k != n)
        bench_die("mq_receive: %zd bytes", k);
    return 0;
}

static void mq_finish(int role)
{
    for (int i = 0; i < 2; i++) {
        mq_close(mqs[i]);
        if (role == R_PARENT || role == R_COORD)
            mq_unlink(mq_names[i]);
    }
}

/* ----- ZeroMQ over ipc:// ----- */

#ifdef MPROC_BENCH_HAVE_ZMQ
static void *zctx, *zs[2];
static char zpath[2][128];
static int ztimeout = -1;

static void zmq_make(size_t size, int mpmc)
{
    (void)size;
    (void)mpmc;
    /* Two processes: a path per channel. mpmc: a path per consumer, each
     * producer connected to both (PUSH deals round robin). */
    for (int i = 0; i < 2; i++)
        snprintf(zpath[i], sizeof zpath[i], "/tmp/mproc-benchq-%d-%d.ipc",
                 (int)getpid(), i);
}

static void *zsock(int type, const char *path, int bind)
{
    void *s = zmq_socket(zctx, type);
    char ep[160];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    if (s == NULL || (bind ? zmq_bind(s, ep) : zmq_connect(s, ep)) != 0)
        bench_die("zmq socket/bind/connect: %s", zmq_strerror(zmq_errno()));
    return s;
}

static void zmq_start(int role, int idx)
{
    zs[UP] = zs[DOWN] = NULL;
    ztimeout = -1;
    if (role == R_COORD)
        return;
    zctx = zmq_ctx_new();
    if (zctx == NULL)
        bench_die("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    if (role == R_CONS) {
        zs[UP] = zsock(ZMQ_PULL, zpath[idx], 1);
    } else if (role == R_PROD) {
        zs[UP] = zsock(ZMQ_PUSH, zpath[0], 0);
        char ep[160];
        snprintf(ep, sizeof ep, "ipc://%s", zpath[1]);
        if (zmq_connect(zs[UP], ep) != 0)
            bench_die("zmq_connect: %s", zmq_strerror(zmq_errno()));
    } else {
        int child = role == R_CHILD;
        for (int i = 0; i < 2; i++) {
            /* UP: the child pushes; DOWN: the parent pushes. */
            int pushes = (i == UP) == child;
            zs[i] = zsock(pushes ? ZMQ_PUSH : ZMQ_PULL, zpath[i], !child);
        }
    }
}

static void zmq_put(int ch, const void *b, size_t n)
{
    while (zmq_send(zs[ch], b, n, 0) < 0)
        if (zmq_errno() != EINTR)
            bench_die("zmq_send: %s", zmq_strerror(zmq_errno()));
}

static int zmq_get(int ch, void *b, size_t n, int timeout_ms)
{
    if (timeout_ms != ztimeout) {
        zmq_setsockopt(zs[ch], ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
        ztimeout = timeout_ms;
    }
    int k;
    while ((k = zmq_recv(zs[ch], b, n, 0)) < 0) {
        if (zmq_errno() == EAGAIN)
            return 1;
        if (zmq_errno() != EINTR)
            bench_die("zmq_recv: %s", zmq_strerror(zmq_errno()));
    }
    if ((size_t)k != n)
        bench_die("zmq_recv: %d bytes", k);
    return 0;
}

static void zmq_finish(int role)
{
    if (zctx != NULL) {
        /* Senders deliver what they queued before they go. */
        int linger = role == R_CHILD || role == R_PROD ? -1 : 0;
        for (int i = 0; i < 2; i++) {
            if (zs[i] == NULL)
                continue;
            zmq_setsockopt(zs[i], ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(zs[i]);
            zs[i] = NULL;
        }
        zmq_ctx_term(zctx);
        zctx = NULL;
    }
    if (role == R_PARENT || role == R_COORD)
        for (int i = 0; i < 2; i++)
            unlink(zpath[i]);
}
#endif

#define NO_MPMC_RING "a single-producer single-consumer ring"

static const struct impl impls[] = {
    {"mproc_queue",
     {NULL},
     q_make,
     q_start,
     q_put,
     q_get,
     q_put_batch,
     q_get_batch,
     q_finish},
    {"spsc_ring_futex",
     {[C_MPMC] = NO_MPMC_RING},
     rf_make,
     ring_start,
     ring_put,
     ring_get,
     ring_put_batch,
     ring_get_batch,
     ring_finish},
    {"spsc_ring_spin",
     {[C_MPMC] = NO_MPMC_RING},
     rs_make,
     ring_start,
     ring_put,
     ring_get,
     ring_put_batch,
     ring_get_batch,
     ring_finish},
    {"mproc_conn",
     {[C_MPMC] = "one process receives on an mproc_pipe end"},
     mc_make,
     mc_start,
     mc_put,
     mc_get,
     mc_put_batch,
     mc_get_batch,
     mc_finish},
    {"raw_pipe",
     {NULL},
     pipe_make,
     pipe_start,
     pipe_put,
     pipe_get,
     pipe_put_batch,
     pipe_get_batch,
     pipe_finish},
    {"posix_mq",
     {[C_BULK] = "messages above msgsize_max (8 KiB by default)",
      [C_BATCH] = "no batched send or receive"},
     mq_make,
     mq_start,
     mq_put,
     mq_get,
     NULL,
     NULL,
     mq_finish},
#ifdef MPROC_BENCH_HAVE_ZMQ
    {"zeromq",
     {[C_BATCH] = "no batched send or receive"},
     zmq_make,
     zmq_start,
     zmq_put,
     zmq_get,
     NULL,
     NULL,
     zmq_finish},
#endif
};

/* ----- processes, CPUs and the shared counters ----- */

struct shared {
    atomic_int stop;       /* producers: send the end mark (mpmc: just stop) */
    atomic_int drain;      /* mpmc: the producers are gone, expect is known */
    atomic_int give_up;    /* mpmc: messages went missing; leave */
    atomic_int prods_done; /* mpmc: producers that stopped putting */
    atomic_int release;    /* mpmc: the consumers are done; producers go */
    _Atomic uint64_t expect; /* mpmc: how many the producers put */
    struct {
        alignas(64) _Atomic uint64_t n;
    } got[NCONS], sent[NPROD];
    atomic_int cpu[1 + NPROD + NCONS]; /* where each process ran */
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

/* The producers' side and the consumers' side really ran on two CPUs. */
static void check_cpus(const char *name, int prod, int cons)
{
    if (ncpu_start >= 2 && (prod < 0 || cons < 0 || prod == cons))
        bench_die("%s: producer on CPU %d, consumer on CPU %d", name, prod,
                  cons);
}

/* In a child just forked: dies with the parent (a ring that spins must
 * not outlive a benchmark killed by its timeout). */
static void tie_to_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
}

static void wait_ok(const struct impl *im, pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("%s: a child failed", im->name);
}

/* Runs fn in a forked child (the producer side, CPU 0) while the parent
 * (the consumer side) goes to CPU 1. */
static pid_t spawn(const struct impl *im, size_t size,
                   void (*fn)(const struct impl *))
{
    atomic_store(&sh->stop, 0);
    im->make(size, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        tie_to_parent(parent);
        atomic_store(&sh->cpu[0], pin(0));
        im->start(R_CHILD, 0);
        fn(im);
        im->finish(R_CHILD);
        _exit(0);
    }
    atomic_store(&sh->cpu[1], pin(1));
    im->start(R_PARENT, 0);
    return pid;
}

static void reap(const struct impl *im, pid_t pid)
{
    im->finish(R_PARENT);
    wait_ok(im, pid);
    check_cpus(im->name, atomic_load(&sh->cpu[0]), atomic_load(&sh->cpu[1]));
}

static void check_msg(const struct impl *im, const void *buf, size_t n,
                      uint64_t i)
{
    if (!bench_check(buf, n, i))
        bench_die("%s: message %llu damaged", im->name, (unsigned long long)i);
}

/* ----- one way ----- */

static size_t msg_size;

static void producer(const struct impl *im)
{
    static unsigned char buf[BIG];
    for (uint64_t i = 0;; i++) {
        if (atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
            uint64_t end = END_MARK;
            memcpy(buf, &end, 8);
            im->put(UP, buf, msg_size);
            return;
        }
        bench_fill(buf, msg_size, i);
        im->put(UP, buf, msg_size);
    }
}

/* Messages per second over secs, counted from the first message. */
static double one_way(const struct impl *im, size_t size, double secs)
{
    static unsigned char buf[BIG];
    msg_size = size;
    pid_t pid = spawn(im, size, producer);
    uint64_t n = 0, counted = 0;
    double t0 = 0, t1 = 0;
    for (;;) {
        im->get(UP, buf, size, -1);
        uint64_t tag;
        memcpy(&tag, buf, 8);
        if (tag == END_MARK)
            break;
        check_msg(im, buf, size, n);
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

static void oneway_case(const struct impl *im, double secs, double *a,
                        double *b)
{
    (void)b;
    *a = one_way(im, SMALL, secs);
}

static void bulk_case(const struct impl *im, double secs, double *a, double *b)
{
    (void)b;
    *a = one_way(im, BIG, secs) * (double)BIG / 1e9;
}

/* ----- batches of BATCH ----- */

static void batch_producer(const struct impl *im)
{
    static unsigned char buf[BATCH * SMALL];
    for (uint64_t i = 0;; i += BATCH) {
        if (atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
            uint64_t end = END_MARK;
            memcpy(buf, &end, 8);
            im->put(UP, buf, SMALL);
            return;
        }
        for (size_t j = 0; j < BATCH; j++)
            bench_fill(buf + j * SMALL, SMALL, i + j);
        im->put_batch(UP, buf, SMALL, BATCH);
    }
}

static void batch_case(const struct impl *im, double secs, double *a, double *b)
{
    (void)b;
    static unsigned char buf[BATCH * SMALL];
    pid_t pid = spawn(im, SMALL, batch_producer);
    uint64_t n = 0, counted = 0;
    double t0 = 0, t1 = 0;
    for (int end = 0; !end;) {
        size_t k = im->get_batch(UP, buf, SMALL, BATCH);
        for (size_t j = 0; j < k; j++) {
            uint64_t tag;
            memcpy(&tag, buf + j * SMALL, 8);
            if (tag == END_MARK) {
                if (j + 1 != k)
                    bench_die("%s: messages after the end", im->name);
                end = 1;
                break;
            }
            check_msg(im, buf + j * SMALL, SMALL, n);
            n++;
        }
        if (end)
            break;
        if (t0 == 0) {
            t0 = bench_now_s();
            counted = n; /* counted from the end of the first get */
        } else if (t1 == 0 && bench_now_s() - t0 >= secs) {
            t1 = bench_now_s();
            counted = n - counted;
            atomic_store(&sh->stop, 1);
        }
    }
    reap(im, pid);
    *a = (double)counted / (t1 - t0);
}

/* ----- ping-pong through two queues ----- */

static void echoer(const struct impl *im)
{
    unsigned char buf[SMALL];
    for (;;) {
        im->get(DOWN, buf, SMALL, -1);
        im->put(UP, buf, SMALL);
        uint64_t tag;
        memcpy(&tag, buf, 8);
        if (tag == END_MARK)
            return;
    }
}

static double *samples;

static void rtt_case(const struct impl *im, double secs, double *p50,
                     double *p99)
{
    unsigned char out[SMALL], in[SMALL];
    pid_t pid = spawn(im, SMALL, echoer);
    size_t n = 0;
    double t0 = bench_now_s();
    for (uint64_t i = 0;; i++) {
        bench_fill(out, SMALL, i);
        int64_t a = bench_now_ns();
        im->put(DOWN, out, SMALL);
        im->get(UP, in, SMALL, -1);
        int64_t b = bench_now_ns();
        check_msg(im, in, SMALL, i);
        if (i >= 100 && n < MAX_SAMPLES) /* skip the warm-up */
            samples[n++] = (double)(b - a) / 1000.0;
        if ((i & 63) == 0 && bench_now_s() - t0 >= secs)
            break;
    }
    uint64_t end = END_MARK;
    memcpy(out, &end, 8);
    im->put(DOWN, out, SMALL);
    im->get(UP, in, SMALL, -1);
    reap(im, pid);
    *p50 = bench_percentile(samples, n, 50);
    *p99 = bench_percentile(samples, n, 99);
}

/* ----- wake-up: one message every WAKE_GAP_US ----- */

/* Far past any spin: the consumer has gone to sleep each time, so this is
 * what a wake-up costs, from the put to the get (the producer's
 * CLOCK_MONOTONIC time travels in bytes 16-23, which bench_fill leaves
 * alone in a 64-byte message). */
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
        im->put(UP, buf, SMALL);
        if (stop)
            return;
    }
}

static void wake_case(const struct impl *im, double secs, double *a, double *b)
{
    (void)b;
    unsigned char buf[SMALL];
    pid_t pid = spawn(im, SMALL, paced_producer);
    size_t n = 0;
    double t0 = bench_now_s();
    for (uint64_t i = 0;; i++) {
        im->get(UP, buf, SMALL, -1);
        int64_t now = bench_now_ns();
        uint64_t tag;
        memcpy(&tag, buf, 8);
        if (tag == END_MARK)
            break;
        if (tag != i)
            bench_die("%s: message %llu damaged", im->name,
                      (unsigned long long)i);
        check_msg(im, buf, SMALL, i);
        int64_t sent;
        memcpy(&sent, buf + 16, 8);
        if (i >= 10 && n < MAX_SAMPLES)
            samples[n++] = (double)(now - sent) / 1000.0;
        if (bench_now_s() - t0 >= secs)
            atomic_store(&sh->stop, 1);
    }
    reap(im, pid);
    *a = bench_percentile(samples, n, 50);
}

/* ----- several producers and consumers on one queue ----- */

static void mpmc_producer(const struct impl *im, int p)
{
    unsigned char buf[SMALL];
    uint64_t i = 0;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        uint64_t tag = (uint64_t)p << 56 | i;
        bench_fill(buf, SMALL, tag);
        im->put(UP, buf, SMALL);
        i++;
    }
    atomic_store(&sh->sent[p].n, i);
    atomic_fetch_add(&sh->prods_done, 1);
    /* Connected until every message is got: ZeroMQ lost messages here
     * (a thousand or so, now and then) when its PUSH sockets closed
     * right after their last send, linger -1 notwithstanding. */
    while (!atomic_load(&sh->release)) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static uint64_t total_got(void)
{
    uint64_t t = 0;
    for (int c = 0; c < NCONS; c++)
        t += atomic_load_explicit(&sh->got[c].n, memory_order_relaxed);
    return t;
}

/* Takes messages until the producers are gone and the consumers together
 * got every message they put (looked at each time a get waits DRAIN_MS in
 * vain); each producer's messages must come in its order. */
static void mpmc_consumer(const struct impl *im, int c)
{
    unsigned char buf[SMALL];
    uint64_t next[NPROD] = {0}, n = 0;
    for (;;) {
        if (im->get(UP, buf, SMALL, DRAIN_MS) != 0) {
            if (atomic_load(&sh->drain) &&
                (total_got() >= atomic_load(&sh->expect) ||
                 atomic_load(&sh->give_up)))
                break;
            continue;
        }
        uint64_t tag;
        memcpy(&tag, buf, 8);
        uint64_t p = tag >> 56, seq = tag & SEQ_MASK;
        if (p >= NPROD || seq < next[p] || !bench_check(buf, SMALL, tag))
            bench_die("%s: consumer %d: message %llx damaged or out of order",
                      im->name, c, (unsigned long long)tag);
        next[p] = seq + 1;
        atomic_store_explicit(&sh->got[c].n, ++n, memory_order_relaxed);
    }
}

static pid_t pids[NCONS + NPROD]; /* consumers, then producers */

/* Kills every mpmc child still there, then dies. */
static void mpmc_fail(const struct impl *im, const char *what)
{
    for (int k = 0; k < NCONS + NPROD; k++)
        if (pids[k] > 0)
            kill(pids[k], SIGKILL);
    bench_die("%s: %s", im->name, what);
}

/* Waits a millisecond; no child may have ended meanwhile (none ends before
 * it is told to). */
static void mpmc_nap(const struct impl *im, int from)
{
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
    for (int k = from; k < NCONS + NPROD; k++) {
        int st;
        if (waitpid(pids[k], &st, WNOHANG) == pids[k]) {
            pids[k] = 0;
            mpmc_fail(im, "a child ended early");
        }
    }
}

static void mpmc_case(const struct impl *im, double secs, double *a, double *b)
{
    memset(pids, 0, sizeof pids);
    (void)b;
    atomic_store(&sh->stop, 0);
    atomic_store(&sh->drain, 0);
    atomic_store(&sh->give_up, 0);
    atomic_store(&sh->prods_done, 0);
    atomic_store(&sh->release, 0);
    for (int i = 0; i < NCONS; i++)
        atomic_store(&sh->got[i].n, 0);
    for (int i = 0; i < NPROD; i++)
        atomic_store(&sh->sent[i].n, 0);
    im->make(SMALL, 1);
    /* Consumers first (CPU 1), then producers (CPU 0): cpu[1 + k]. */
    pid_t parent = getpid();
    for (int k = 0; k < NCONS + NPROD; k++) {
        int cons = k < NCONS, idx = cons ? k : k - NCONS;
        pids[k] = fork();
        if (pids[k] < 0)
            mpmc_fail(im, "fork failed");
        if (pids[k] == 0) {
            tie_to_parent(parent);
            atomic_store(&sh->cpu[1 + k], pin(cons ? 1 : 0));
            im->start(cons ? R_CONS : R_PROD, idx);
            if (cons)
                mpmc_consumer(im, idx);
            else
                mpmc_producer(im, idx);
            im->finish(cons ? R_CONS : R_PROD);
            _exit(0);
        }
    }
    im->start(R_COORD, 0);
    int64_t give_up = bench_now_ns() + 10 * (int64_t)1000000000;
    while (total_got() == 0) {
        if (bench_now_ns() > give_up)
            mpmc_fail(im, "no message in 10 s");
        mpmc_nap(im, 0);
    }
    double t0 = bench_now_s();
    uint64_t c0 = total_got();
    struct timespec w = {(time_t)secs,
                         (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&w, NULL);
    double t1 = bench_now_s();
    uint64_t c1 = total_got();
    atomic_store(&sh->stop, 1);
    while (atomic_load(&sh->prods_done) < NPROD)
        mpmc_nap(im, 0);
    uint64_t sent = 0;
    for (int i = 0; i < NPROD; i++)
        sent += atomic_load(&sh->sent[i].n);
    atomic_store(&sh->expect, sent);
    atomic_store(&sh->drain, 1);
    /* Messages lost would keep the consumers waiting: after 5 s they are
     * told to leave, and the count below fails. */
    give_up = bench_now_ns() + 5 * (int64_t)1000000000;
    for (int k = 0; k < NCONS; k++) {
        int st;
        pid_t got;
        while ((got = waitpid(pids[k], &st, WNOHANG)) == 0) {
            if (bench_now_ns() > give_up)
                atomic_store(&sh->give_up, 1);
            mpmc_nap(im, NCONS);
        }
        pids[k] = 0;
        if (got < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            mpmc_fail(im, "a consumer failed");
    }
    atomic_store(&sh->release, 1);
    for (int k = NCONS; k < NCONS + NPROD; k++) {
        wait_ok(im, pids[k]);
        pids[k] = 0;
    }
    im->finish(R_COORD);
    if (total_got() != sent)
        bench_die("%s: %llu messages put, %llu got", im->name,
                  (unsigned long long)sent, (unsigned long long)total_got());
    for (int p = 0; p < NPROD; p++)
        for (int c = 0; c < NCONS; c++)
            check_cpus(im->name, atomic_load(&sh->cpu[1 + NCONS + p]),
                       atomic_load(&sh->cpu[1 + c]));
    *a = (double)(c1 - c0) / (t1 - t0);
}

/* ----- the cases ----- */

struct bcase {
    const char *bench, *metric, *metric2; /* metric2: NULL, or a second */
    void (*run)(const struct impl *im, double secs, double *a, double *b);
};

static const struct bcase cases[NCASES] = {
    [C_ONEWAY] = {"queue.oneway_64B", "msgs_per_s", NULL, oneway_case},
    [C_RTT] = {"queue.rtt_64B", "rtt_p50_us", "rtt_p99_us", rtt_case},
    [C_BULK] = {"queue.bulk_1MiB", "gbytes_per_s", NULL, bulk_case},
    [C_MPMC] = {"queue.mpmc_64B", "msgs_per_s", NULL, mpmc_case},
    [C_BATCH] = {"queue.batch_64B", "msgs_per_s", NULL, batch_case},
    [C_WAKE] = {"queue.wake_64B", "latency_p50_us", NULL, wake_case},
};

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
    static double v[16][16], w[16][16];
    for (int c = 0; c < NCASES; c++) {
        const struct bcase *bc = &cases[c];
        if (!bench_case_enabled(bc->bench))
            continue;
        /* Repeats go round the impls (A, B, C, A, B, C, ...) so that load
         * from elsewhere on the machine falls on every impl alike. */
        for (int r = 0; r < reps; r++)
            for (size_t k = 0; k < nimpl; k++)
                if (bench_impl_enabled(impls[k].name) &&
                    impls[k].left_out[c] == NULL)
                    bc->run(&impls[k], secs, &v[k][r], &w[k][r]);
        for (size_t k = 0; k < nimpl; k++) {
            if (!bench_impl_enabled(impls[k].name))
                continue;
            if (impls[k].left_out[c] != NULL) {
                printf("LEFTOUT bench=%s impl=%s reason=%s\n", bc->bench,
                       impls[k].name, impls[k].left_out[c]);
                continue;
            }
            bench_result(bc->bench, impls[k].name, bc->metric,
                         median(v[k], reps));
            if (bc->metric2 != NULL)
                bench_result(bc->bench, impls[k].name, bc->metric2,
                             median(w[k], reps));
        }
        fflush(stdout);
    }
    free(samples);
    munmap(sh, sizeof *sh);
    return 0;
}
