/*
 * The manager's client: one connection per process (made again in a
 * forked child), RESP2 requests formatted and replies read with hiredis,
 * carried over a Unix or TCP socket, or over an mproc_pipe's shared-memory
 * rings that a manager sends at connect. The typed calls (dict, list,
 * value, queue, lock, ...) are thin: a command, a reply, a code.
 */
#include "internal/manager.h"

#include "os/os.h"
#include "os/task.h"

#include "mproc/conn.h"

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* mproc_mreply is hiredis's redisReply, field for field. */
_Static_assert(sizeof(mproc_mreply) == sizeof(redisReply), "reply layout");
_Static_assert(offsetof(mproc_mreply, integer) == offsetof(redisReply, integer),
               "reply layout");
_Static_assert(offsetof(mproc_mreply, str) == offsetof(redisReply, str),
               "reply layout");
_Static_assert(offsetof(mproc_mreply, element) == offsetof(redisReply, element),
               "reply layout");
_Static_assert(MPROC_MREPLY_ERROR == REDIS_REPLY_ERROR &&
                   MPROC_MREPLY_NIL == REDIS_REPLY_NIL &&
                   MPROC_MREPLY_STATUS == REDIS_REPLY_STATUS,
               "reply types");

/* A reply to a command that waits in the server comes at most this much
 * after the server's own deadline, or the exchange is given up. */
#define REPLY_GRACE_MS 1000
#define RING_PIECE (32 * 1024)
#define RING_MSG_MAX (256 * 1024)
#define NAME_MAX_LEN 1024

typedef struct mlink {
    mproc_conn *sock;
    int fd;
    mproc_conn *ring;
    redisReader *rd;
    const char *transport;
} mlink;

struct mproc_mclient {
    pthread_mutex_t mu;
    pid_t pid;
    mgr_addr addr;
    char *password;
    bool no_rings;
    int server;
    mlink *l;
    char err[256];
    mgr_buf req;
};

/* ----- errors ----- */

int mproc__mgr_error_code(const char *s, size_t n)
{
#define PFX(p) (n >= sizeof(p) - 1 && strncmp(s, p, sizeof(p) - 1) == 0)
    if (PFX("WRONGTYPE"))
        return MPROC_EBADOBJ;
    if (PFX("NOAUTH") || PFX("WRONGPASS") || PFX("NOPERM"))
        return MPROC_EDENIED;
    if (PFX("ERR unknown command"))
        return MPROC_ENOSYS;
    if (PFX("ERR value is not") || PFX("ERR index out of range") ||
        PFX("ERR increment") || PFX("ERR hash value is not") ||
        PFX("ERR value is out of range"))
        return MPROC_ERANGE;
    if (PFX("ERR no such key"))
        return MPROC_ENOENT;
    if (PFX("ERR max number of clients"))
        return MPROC_EAGAIN;
    if (PFX("ERR Protocol error"))
        return MPROC_EPROTO;
    if (PFX("ERR"))
        return MPROC_EINVAL;
    static const struct {
        const char *name;
        int code;
    } own[] = {
        {"ENOTOWNER", MPROC_ENOTOWNER}, {"EOWNERDEAD", MPROC_EOWNERDEAD},
        {"EBROKEN", MPROC_EBROKEN},     {"EOVERRELEASE", MPROC_EOVERRELEASE},
        {"EDEADLK", MPROC_EDEADLK},     {"ENOENT", MPROC_ENOENT},
        {"ETIMEDOUT", MPROC_ETIMEDOUT}, {"EINVAL", MPROC_EINVAL},
    };
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        size_t l = strlen(own[i].name);
        if (n >= l && strncmp(s, own[i].name, l) == 0 &&
            (n == l || s[l] == ' '))
            return own[i].code;
    }
    return MPROC_EPROTO;
#undef PFX
}

int mproc_mreply_code(const mproc_mreply *r)
{
    if (r == NULL || r->type != MPROC_MREPLY_ERROR)
        return 0;
    return mproc__mgr_error_code(r->str, r->len);
}

void mproc_mreply_free(mproc_mreply *r)
{
    if (r != NULL)
        freeReplyObject(r);
}

/* ----- deadlines ----- */

static int64_t mono_ms(void)
{
    return mproc__os_monotonic_ns() / 1000000;
}

/* The exchange's end, from the call's timeout: INT64_MAX for forever. */
static int64_t end_of(int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return INT64_MAX;
    return mono_ms() + timeout_ms + REPLY_GRACE_MS;
}

static int left_ms(int64_t end)
{
    if (end == INT64_MAX)
        return -1;
    int64_t l = end - mono_ms();
    if (l < 0)
        return 0;
    return l > INT_MAX ? INT_MAX : (int)l;
}

/* ----- links ----- */

static void link_free(mlink *l)
{
    if (l == NULL)
        return;
    mproc_conn_close(l->ring);
    mproc_conn_close(l->sock);
    if (l->rd != NULL)
        redisReaderFree(l->rd);
    free(l);
}

static int raw_send(mlink *l, const char *p, size_t n, int64_t end)
{
    if (l->ring != NULL) {
        while (n > 0) {
            size_t k = n < RING_PIECE ? n : RING_PIECE;
            int rc = mproc_conn_send(l->ring, p, k, left_ms(end));
            if (rc < 0)
                return rc;
            p += k;
            n -= k;
        }
        return 0;
    }
    while (n > 0) {
        ssize_t k = send(l->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == EPIPE || errno == ECONNRESET ? MPROC_ECLOSED
                                                         : -errno;
        struct pollfd pf = {.fd = l->fd, .events = POLLOUT};
        int r = poll(&pf, 1, left_ms(end));
        if (r == 0)
            return MPROC_ETIMEDOUT;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
    return 0;
}

/* Reads more bytes into the reader. */
static int raw_recv(mlink *l, int64_t end)
{
    if (l->ring != NULL) {
        void *p = NULL;
        size_t n = 0;
        int rc =
            mproc_conn_recv_alloc(l->ring, &p, &n, RING_MSG_MAX, left_ms(end));
        if (rc < 0)
            return rc;
        rc = redisReaderFeed(l->rd, p, n) == REDIS_OK ? 0 : MPROC_ENOMEM;
        free(p);
        return rc;
    }
    char buf[16384];
    for (;;) {
        ssize_t k = recv(l->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (k > 0)
            return redisReaderFeed(l->rd, buf, (size_t)k) == REDIS_OK
                       ? 0
                       : MPROC_ENOMEM;
        if (k == 0)
            return MPROC_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == ECONNRESET ? MPROC_ECLOSED : -errno;
        struct pollfd pf = {.fd = l->fd, .events = POLLIN};
        int r = poll(&pf, 1, left_ms(end));
        if (r == 0)
            return MPROC_ETIMEDOUT;
        if (r < 0 && errno != EINTR)
            return -errno;
    }
}

static int read_reply(mlink *l, redisReply **out, int64_t end)
{
    for (;;) {
        void *r = NULL;
        if (redisReaderGetReply(l->rd, &r) != REDIS_OK)
            return MPROC_EPROTO;
        if (r != NULL) {
            *out = r;
            return 0;
        }
        int rc = raw_recv(l, end);
        if (rc < 0)
            return rc;
    }
}

static int exchange(mlink *l, const char *cmd, size_t n, redisReply **out,
                    int64_t end)
{
    int rc = raw_send(l, cmd, n, end);
    /* A server that closed may have said why first (a refusal). */
    if (rc == MPROC_ECLOSED && l->ring == NULL && read_reply(l, out, end) == 0)
        return 0;
    return rc < 0 ? rc : read_reply(l, out, end);
}

static int simple(mlink *l, int argc, const char **argv, redisReply **out,
                  int64_t end)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (n < 0)
        return MPROC_ENOMEM;
    int rc = exchange(l, cmd, (size_t)n, out, end);
    redisFreeCommand(cmd);
    return rc;
}

static int tcp_connect(const mgr_addr *a, int64_t end, int *out)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (mproc__mgr_sockaddr(a, &ss, &sl) < 0)
        return MPROC_EINVAL;
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        if (errno != EINPROGRESS) {
            rc = -errno;
        } else {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            int r = poll(&pf, 1, left_ms(end));
            int err = 0;
            socklen_t el = sizeof err;
            if (r == 0)
                rc = MPROC_ETIMEDOUT;
            else if (r < 0)
                rc = -errno;
            else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                rc = -errno;
            else if (err != 0)
                rc = -err;
        }
    }
    if (rc < 0) {
        close(fd);
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Blocking again: the connection module's sends poll by themselves,
     * and the client's raw I/O asks per call. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *out = fd;
    return 0;
}

static void set_err(mproc_mclient *c, const redisReply *r)
{
    size_t n = r->len < sizeof c->err - 1 ? r->len : sizeof c->err - 1;
    memcpy(c->err, r->str, n);
    c->err[n] = '\0';
}

/* Connects this process: socket, AUTH, what the server is, rings. */
static int link_open(mproc_mclient *c, int64_t end, mlink **out)
{
    mlink *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MPROC_ENOMEM;
    l->fd = -1;
    int rc;
    if (c->addr.kind == MGR_ADDR_UNIX) {
        int64_t t = end == INT64_MAX ? MPROC_FOREVER : left_ms(end);
        rc = mproc_client_open(&l->sock, c->addr.path, t);
        l->transport = "unix";
    } else {
        int fd = -1;
        rc = tcp_connect(&c->addr, end, &fd);
        if (rc == 0) {
            rc = mproc_conn_from_fd(&l->sock, fd, MPROC_CONN_MESSAGES);
            if (rc < 0)
                close(fd);
        }
        l->transport = "tcp";
    }
    if (rc == 0) {
        l->fd = mproc_conn_fd(l->sock);
        l->rd = redisReaderCreate();
        if (l->rd == NULL)
            rc = MPROC_ENOMEM;
    }
    redisReply *r = NULL;
    if (rc == 0 && c->password != NULL) {
        const char *argv[] = {"AUTH", c->password};
        rc = simple(l, 2, argv, &r, end);
        if (rc == 0 && r->type == REDIS_REPLY_ERROR) {
            set_err(c, r);
            rc = MPROC_EDENIED;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (rc == 0) {
        const char *argv[] = {"MPROC.HELLO"};
        rc = simple(l, 1, argv, &r, end);
        if (rc == 0) {
            bool mgr = r->type == REDIS_REPLY_STATUS &&
                       strncmp(r->str, "MPROC ", 6) == 0;
            if (r->type == REDIS_REPLY_ERROR) {
                int code = mproc__mgr_error_code(r->str, r->len);
                if (code != MPROC_ENOSYS) {
                    set_err(c, r);
                    rc = code == MPROC_EPROTO ? MPROC_EPROTO : code;
                }
            }
            if (rc == 0)
                c->server = mgr ? MPROC_MSERVER_MANAGER : MPROC_MSERVER_REDIS;
        }
        freeReplyObject(r);
        r = NULL;
    }
    if (rc == 0 && c->server == MPROC_MSERVER_MANAGER &&
        c->addr.kind == MGR_ADDR_UNIX && !c->no_rings) {
        static const char ring_cmd[] = "*1\r\n$10\r\nMPROC.RING\r\n";
        rc = raw_send(l, ring_cmd, sizeof ring_cmd - 1, end);
        if (rc == 0) {
            int64_t t = end == INT64_MAX ? MPROC_FOREVER : left_ms(end);
            rc = mproc_conn_recv_conn(l->sock, &l->ring, t);
        }
        if (rc == 0)
            l->transport = "rings";
    }
    if (rc == MPROC_ECLOSED || rc == MPROC_EPROTO) {
        /* Closed right away: a manager that refuses this peer closes
         * without a word; say so as clearly as the socket lets us. */
        if (rc == MPROC_ECLOSED && c->err[0] == '\0')
            snprintf(c->err, sizeof c->err,
                     "the server closed the connection (not allowed, or "
                     "full)");
    }
    if (rc < 0) {
        link_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

/* Under c->mu: this process's link, connecting when there is none. */
static int get_link(mproc_mclient *c, int64_t end, mlink **out)
{
    if (c->l == NULL) {
        int rc = link_open(c, end, &c->l);
        if (rc < 0)
            return rc;
    }
    *out = c->l;
    return 0;
}

static void drop_link(mproc_mclient *c)
{
    link_free(c->l);
    c->l = NULL;
}

/* Takes the client's lock, after noticing a fork: the child drops the
 * link it inherited (closing only its own copies) and makes its own. */
static void client_lock(mproc_mclient *c)
{
    pid_t me = mproc__os_self_pid(); /* cached, and right in a child */
    if (c->pid != me) {
        pthread_mutex_init(&c->mu, NULL);
        c->pid = me;
        drop_link(c);
    }
    pthread_mutex_lock(&c->mu);
}

/* ----- open, close ----- */

int mproc_mclient_open(mproc_mclient **out, const char *address,
                       const mproc_mclient_opts *opts, int64_t timeout_ms)
{
    if (out == NULL || address == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    mproc_mclient *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__mgr_parse_addr(address, &c->addr);
    if (rc == 0 && opts != NULL && opts->password != NULL) {
        c->password = strdup(opts->password);
        if (c->password == NULL)
            rc = MPROC_ENOMEM;
    } else if (rc == 0 && opts != NULL && opts->password_file != NULL) {
        char buf[256];
        rc = mproc__mgr_read_password(opts->password_file, buf, sizeof buf,
                                      false);
        if (rc == 0) {
            c->password = strdup(buf);
            if (c->password == NULL)
                rc = MPROC_ENOMEM;
        }
        memset(buf, 0, sizeof buf);
    }
    c->no_rings = opts != NULL && opts->no_rings;
    pthread_mutex_init(&c->mu, NULL);
    c->pid = mproc__os_self_pid();
    if (rc == 0) {
        int64_t end = timeout_ms < 0 ? INT64_MAX : mono_ms() + timeout_ms;
        rc = link_open(c, end, &c->l);
    }
    if (rc < 0) {
        free(c->password);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void mproc_mclient_close(mproc_mclient *c)
{
    if (c == NULL)
        return;
    if (c->pid == mproc__os_self_pid())
        pthread_mutex_destroy(&c->mu);
    link_free(c->l);
    if (c->password != NULL) {
        memset(c->password, 0, strlen(c->password));
        free(c->password);
    }
    mproc__mgr_buf_free(&c->req);
    free(c);
}

int mproc_mclient_server(const mproc_mclient *c)
{
    return c != NULL ? c->server : MPROC_EINVAL;
}

const char *mproc_mclient_transport(const mproc_mclient *c)
{
    if (c == NULL)
        return NULL;
    if (c->pid != mproc__os_self_pid() || c->l == NULL)
        return "none";
    return c->l->transport;
}

const char *mproc_mclient_error(mproc_mclient *c, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return buf;
    buf[0] = '\0';
    if (c == NULL)
        return buf;
    client_lock(c);
    snprintf(buf, cap, "%s", c->err);
    pthread_mutex_unlock(&c->mu);
    return buf;
}

/* ----- calls ----- */

/* Sends the n commands formatted in c->req and reads n replies into
 * out[] (the caller frees them). A failure drops the link: what was
 * answered cannot be matched to what was asked any more. */
static int run_locked(mproc_mclient *c, size_t n, redisReply **out,
                      int64_t timeout_ms)
{
    int64_t end = end_of(timeout_ms);
    mlink *l;
    int rc = get_link(c, end, &l);
    if (rc == 0)
        rc = raw_send(l, c->req.p, c->req.len, end);
    size_t got = 0;
    while (rc == 0 && got < n) {
        rc = read_reply(l, &out[got], end);
        if (rc == 0)
            got++;
    }
    if (rc < 0) {
        for (size_t i = 0; i < got; i++)
            freeReplyObject(out[i]);
        drop_link(c);
    }
    return rc;
}

static int format(mgr_buf *b, int argc, const char *const *argv,
                  const size_t *argl)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, (const char **)argv, argl);
    if (n < 0)
        return MPROC_ENOMEM;
    int rc = mproc__mgr_buf_add(b, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc;
}

static int call_argv(mproc_mclient *c, redisReply **out, int argc,
                     const char *const *argv, const size_t *argl,
                     int64_t timeout_ms)
{
    if (c == NULL || out == NULL || argc < 1 || argv == NULL ||
        timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    client_lock(c);
    c->req.len = 0;
    int rc = format(&c->req, argc, argv, argl);
    if (rc == 0)
        rc = run_locked(c, 1, out, timeout_ms);
    if (rc == 0 && (*out)->type == REDIS_REPLY_ERROR)
        set_err(c, *out);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mproc_mclient_call(mproc_mclient *c, mproc_mreply **out, int argc,
                       const char *const *argv, const size_t *argl,
                       int64_t timeout_ms)
{
    return call_argv(c, (redisReply **)out, argc, argv, argl, timeout_ms);
}

int mproc_mclient_ping(mproc_mclient *c, int64_t timeout_ms)
{
    const char *argv[] = {"PING"};
    redisReply *r = NULL;
    int rc = call_argv(c, &r, 1, argv, NULL, timeout_ms);
    if (rc == 0 && r->type == REDIS_REPLY_ERROR)
        rc = mproc__mgr_error_code(r->str, r->len);
    freeReplyObject(r);
    return rc;
}

/* ----- batches ----- */

struct mproc_mbatch {
    mproc_mclient *c;
    mgr_buf cmds;
    size_t n;
    redisReply **replies;
    size_t nreplies;
};

int mproc_mbatch_create(mproc_mbatch **out, mproc_mclient *c)
{
    if (out == NULL || c == NULL)
        return MPROC_EINVAL;
    mproc_mbatch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return MPROC_ENOMEM;
    b->c = c;
    *out = b;
    return 0;
}

static void batch_drop_replies(mproc_mbatch *b)
{
    for (size_t i = 0; i < b->nreplies; i++)
        freeReplyObject(b->replies[i]);
    free(b->replies);
    b->replies = NULL;
    b->nreplies = 0;
}

int mproc_mbatch_add(mproc_mbatch *b, int argc, const char *const *argv,
                     const size_t *argl)
{
    if (b == NULL || argc < 1 || argv == NULL)
        return MPROC_EINVAL;
    int rc = format(&b->cmds, argc, argv, argl);
    if (rc == 0)
        b->n++;
    return rc;
}

int mproc_mbatch_run(mproc_mbatch *b, int64_t timeout_ms)
{
    if (b == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    batch_drop_replies(b);
    if (b->n == 0)
        return 0;
    redisReply **rs = calloc(b->n, sizeof *rs);
    if (rs == NULL)
        return MPROC_ENOMEM;
    mproc_mclient *c = b->c;
    client_lock(c);
    /* The batch's bytes go out as one request buffer. */
    mgr_buf saved = c->req;
    c->req = b->cmds;
    int rc = run_locked(c, b->n, rs, timeout_ms);
    b->cmds = c->req;
    c->req = saved;
    pthread_mutex_unlock(&c->mu);
    if (rc < 0) {
        free(rs);
        return rc;
    }
    b->replies = rs;
    b->nreplies = b->n;
    return 0;
}

size_t mproc_mbatch_count(const mproc_mbatch *b)
{
    return b != NULL ? b->n : 0;
}

const mproc_mreply *mproc_mbatch_reply(const mproc_mbatch *b, size_t i)
{
    if (b == NULL || i >= b->nreplies)
        return NULL;
    return (const mproc_mreply *)b->replies[i];
}

int mproc_mbatch_code(const mproc_mbatch *b, size_t i)
{
    const mproc_mreply *r = mproc_mbatch_reply(b, i);
    return r != NULL ? mproc_mreply_code(r) : MPROC_EINVAL;
}

void mproc_mbatch_clear(mproc_mbatch *b)
{
    if (b == NULL)
        return;
    batch_drop_replies(b);
    b->cmds.len = 0;
    b->n = 0;
}

void mproc_mbatch_destroy(mproc_mbatch *b)
{
    if (b == NULL)
        return;
    batch_drop_replies(b);
    mproc__mgr_buf_free(&b->cmds);
    free(b);
}

/* ----- objects ----- */

/* Every kind's handle is this; the public types are distinct names for
 * it, so the compiler keeps a dict from being passed as a lock. */
typedef struct mobj {
    mproc_mclient *c;
    bool recursive;
    size_t nlen;
    char name[];
} mobj;

struct mproc_mdict {
    mobj o;
};
struct mproc_mlist {
    mobj o;
};
struct mproc_mvalue {
    mobj o;
};
struct mproc_mqueue {
    mobj o;
};
struct mproc_mlock {
    mobj o;
};
struct mproc_mevent {
    mobj o;
};
struct mproc_msemaphore {
    mobj o;
};
struct mproc_mbarrier {
    mobj o;
};

static mobj *obj_new(mproc_mclient *c, const char *name)
{
    if (c == NULL || name == NULL)
        return NULL;
    size_t n = strlen(name);
    if (n == 0 || n > NAME_MAX_LEN)
        return NULL;
    mobj *o = malloc(sizeof *o + n + 1);
    if (o == NULL)
        return NULL;
    o->c = c;
    o->recursive = false;
    o->nlen = n;
    memcpy(o->name, name, n + 1);
    return o;
}

static int obj_open(void **out, mproc_mclient *c, const char *name, size_t size)
{
    if (out == NULL || c == NULL || name == NULL || name[0] == '\0' ||
        strlen(name) > NAME_MAX_LEN)
        return MPROC_EINVAL;
    (void)size;
    mobj *o = obj_new(c, name);
    if (o == NULL)
        return MPROC_ENOMEM;
    *out = o;
    return 0;
}

static size_t dlen(const void *p, size_t n)
{
    return n == MPROC_MSTR ? (p != NULL ? strlen(p) : 0) : n;
}

/* A command on an object: argv[0] the command, argv[1] the name, then
 * up to 6 more arguments. */
typedef struct args {
    int argc;
    const char *argv[8];
    size_t argl[8];
} args;

static void args_init(args *a, const char *cmd, const mobj *o)
{
    a->argc = 0;
    a->argv[a->argc] = cmd;
    a->argl[a->argc++] = strlen(cmd);
    if (o != NULL) {
        a->argv[a->argc] = o->name;
        a->argl[a->argc++] = o->nlen;
    }
}

static bool args_add(args *a, const void *p, size_t n)
{
    if (p == NULL && n != 0 && n != MPROC_MSTR)
        return false;
    a->argv[a->argc] = p != NULL ? p : "";
    a->argl[a->argc++] = p != NULL ? dlen(p, n) : 0;
    return true;
}

static void args_num(args *a, char *buf, long long v)
{
    int n = snprintf(buf, 24, "%lld", v);
    a->argv[a->argc] = buf;
    a->argl[a->argc++] = (size_t)n;
}

/* Runs a; returns the reply in *out (the caller frees), or its error
 * reply's code (the reply freed). */
static int run(const mobj *o, args *a, redisReply **out, int64_t timeout_ms)
{
    redisReply *r = NULL;
    int rc = call_argv(o->c, &r, a->argc, a->argv, a->argl, timeout_ms);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_ERROR) {
        rc = mproc__mgr_error_code(r->str, r->len);
        freeReplyObject(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Runs a and expects an integer: *v (may be NULL). */
static int run_int(const mobj *o, args *a, long long *v, int64_t timeout_ms)
{
    redisReply *r;
    int rc = run(o, a, &r, timeout_ms);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_INTEGER)
        rc = r->type == REDIS_REPLY_NIL ? MPROC_ETIMEDOUT : MPROC_EPROTO;
    else if (v != NULL)
        *v = r->integer;
    freeReplyObject(r);
    return rc;
}

/* Runs a and expects +OK (or any status). */
static int run_ok(const mobj *o, args *a, int64_t timeout_ms)
{
    redisReply *r;
    int rc = run(o, a, &r, timeout_ms);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_NIL)
        rc = MPROC_ETIMEDOUT;
    else if (r->type != REDIS_REPLY_STATUS)
        rc = MPROC_EPROTO;
    freeReplyObject(r);
    return rc;
}

/* Moves a bulk reply's bytes to *out (the string is the reply's own
 * malloc'ed memory, handed over). MPROC_ENOENT for nil. */
static int take_bulk(redisReply *r, void **out, size_t *len)
{
    if (r->type == REDIS_REPLY_NIL)
        return MPROC_ENOENT;
    if (r->type != REDIS_REPLY_STRING)
        return MPROC_EPROTO;
    *out = r->str;
    *len = r->len;
    r->str = NULL;
    r->len = 0;
    return 0;
}

static int run_bulk(const mobj *o, args *a, void **out, size_t *len,
                    int64_t timeout_ms)
{
    if (out == NULL || len == NULL)
        return MPROC_EINVAL;
    redisReply *r;
    int rc = run(o, a, &r, timeout_ms);
    if (rc < 0)
        return rc;
    rc = take_bulk(r, out, len);
    freeReplyObject(r);
    return rc;
}

static int run_array(const mobj *o, args *a, mproc_mreply **out,
                     int64_t timeout_ms)
{
    if (out == NULL)
        return MPROC_EINVAL;
    redisReply *r;
    int rc = run(o, a, &r, timeout_ms);
    if (rc < 0)
        return rc;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return MPROC_EPROTO;
    }
    *out = (mproc_mreply *)r;
    return 0;
}

static int parse_i64(const char *s, size_t n, int64_t *out);
static int parse_dbl(const char *s, size_t n, double *out);

/* Runs a and reads its bulk reply as a number: an integer into *i, or
 * (i NULL) a double into *d. */
static int run_num(const mobj *o, args *a, int64_t *i, double *d,
                   int64_t timeout_ms)
{
    void *p;
    size_t n;
    int rc = run_bulk(o, a, &p, &n, timeout_ms);
    if (rc < 0)
        return rc;
    rc = i != NULL ? parse_i64(p, n, i) : parse_dbl(p, n, d);
    free(p);
    return rc;
}

static bool manager_only(const mobj *o)
{
    return o->c->server == MPROC_MSERVER_MANAGER;
}

static int parse_i64(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 21)
        return MPROC_ERANGE;
    char buf[24];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0' || errno != 0)
        return MPROC_ERANGE;
    *out = v;
    return 0;
}

static int parse_dbl(const char *s, size_t n, double *out)
{
    return mproc__mgr_parse_double(s, n, out) ? 0 : MPROC_ERANGE;
}

#define fmt_dbl(buf, v) mproc__mgr_fmt_double(buf, 40, v)

/* Opens an object that only a manager has, made in the server by cmd
 * name [arg1 [arg2]] when it does not exist; *res (may be NULL) the
 * integer reply. */
static int open_made(void **out, mproc_mclient *c, const char *name,
                     const char *cmd, const char *arg1, const char *arg2,
                     long long *res, int64_t timeout_ms)
{
    mobj *o = NULL;
    int rc = obj_open((void **)&o, c, name, 0);
    if (rc < 0)
        return rc;
    args a;
    args_init(&a, cmd, o);
    if (arg1 != NULL)
        args_add(&a, arg1, MPROC_MSTR);
    if (arg2 != NULL)
        args_add(&a, arg2, MPROC_MSTR);
    rc = manager_only(o) ? run_int(o, &a, res, timeout_ms) : MPROC_ENOSYS;
    if (rc < 0) {
        free(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* cmd name [timeout_ms] on o (NULL: MPROC_EINVAL), expecting an integer
 * (*v may be NULL) or, with cmd_ok, a status. */
static int cmd_int(const mobj *o, const char *cmd, bool timed,
                   int64_t timeout_ms, long long *v)
{
    if (o == NULL)
        return MPROC_EINVAL;
    args a;
    char buf[24];
    args_init(&a, cmd, o);
    if (timed)
        args_num(&a, buf, timeout_ms);
    return run_int(o, &a, v, timeout_ms);
}

static int cmd_ok(const mobj *o, const char *cmd, bool timed,
                  int64_t timeout_ms)
{
    if (o == NULL)
        return MPROC_EINVAL;
    args a;
    char buf[24];
    args_init(&a, cmd, o);
    if (timed)
        args_num(&a, buf, timeout_ms);
    return run_ok(o, &a, timeout_ms);
}

/* A length (LLEN, HLEN) into *out. */
static int cmd_len(const mobj *o, const char *cmd, size_t *out,
                   int64_t timeout_ms)
{
    if (out == NULL)
        return MPROC_EINVAL;
    long long n = 0;
    int rc = cmd_int(o, cmd, false, timeout_ms, &n);
    if (rc == 0)
        *out = (size_t)n;
    return rc;
}

#define OBJP(h) ((h) != NULL ? &(h)->o : NULL)
#define OBJ(h) (&(h)->o)
#define CHECK(h)                                                               \
    do {                                                                       \
        if ((h) == NULL)                                                       \
            return MPROC_EINVAL;                                               \
    } while (0)

int mproc_mclient_del(mproc_mclient *c, const char *name, int64_t timeout_ms)
{
    mobj *o = obj_new(c, name);
    if (o == NULL)
        return c == NULL || name == NULL ? MPROC_EINVAL : MPROC_ENOMEM;
    args a;
    args_init(&a, "DEL", o);
    long long n = 0;
    int rc = run_int(o, &a, &n, timeout_ms);
    free(o);
    return rc < 0 ? rc : (n == 0 ? MPROC_ENOENT : 0);
}

/* ----- dict ----- */

int mproc_mdict_open(mproc_mdict **out, mproc_mclient *c, const char *name)
{
    return obj_open((void **)out, c, name, sizeof(mproc_mdict));
}

void mproc_mdict_close(mproc_mdict *d)
{
    free(d);
}

static int key_args(args *a, const char *cmd, const mobj *o, const void *key,
                    size_t klen)
{
    args_init(a, cmd, o);
    return args_add(a, key, klen) && dlen(key, klen) > 0 ? 0 : MPROC_EINVAL;
}

int mproc_mdict_set(mproc_mdict *d, const void *key, size_t klen,
                    const void *val, size_t vlen, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (key_args(&a, "HSET", OBJ(d), key, klen) < 0 || !args_add(&a, val, vlen))
        return MPROC_EINVAL;
    return run_int(OBJ(d), &a, NULL, timeout_ms);
}

int mproc_mdict_setnx(mproc_mdict *d, const void *key, size_t klen,
                      const void *val, size_t vlen, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (key_args(&a, "HSETNX", OBJ(d), key, klen) < 0 ||
        !args_add(&a, val, vlen))
        return MPROC_EINVAL;
    long long v;
    int rc = run_int(OBJ(d), &a, &v, timeout_ms);
    return rc < 0 ? rc : (v == 1 ? 0 : MPROC_EEXIST);
}

int mproc_mdict_get(mproc_mdict *d, const void *key, size_t klen, void **out,
                    size_t *len, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (key_args(&a, "HGET", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    return run_bulk(OBJ(d), &a, out, len, timeout_ms);
}

int mproc_mdict_get_i64(mproc_mdict *d, const void *key, size_t klen,
                        int64_t *out, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (out == NULL || key_args(&a, "HGET", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    return run_num(OBJ(d), &a, out, NULL, timeout_ms);
}

int mproc_mdict_get_double(mproc_mdict *d, const void *key, size_t klen,
                           double *out, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (out == NULL || key_args(&a, "HGET", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    return run_num(OBJ(d), &a, NULL, out, timeout_ms);
}

int mproc_mdict_set_i64(mproc_mdict *d, const void *key, size_t klen, int64_t v,
                        int64_t timeout_ms)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRId64, v);
    return mproc_mdict_set(d, key, klen, buf, (size_t)n, timeout_ms);
}

int mproc_mdict_set_double(mproc_mdict *d, const void *key, size_t klen,
                           double v, int64_t timeout_ms)
{
    if (isnan(v) || isinf(v))
        return MPROC_ERANGE;
    char buf[40];
    size_t n = fmt_dbl(buf, v);
    return mproc_mdict_set(d, key, klen, buf, n, timeout_ms);
}

int mproc_mdict_del(mproc_mdict *d, const void *key, size_t klen,
                    int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (key_args(&a, "HDEL", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    long long n;
    int rc = run_int(OBJ(d), &a, &n, timeout_ms);
    return rc < 0 ? rc : (n == 0 ? MPROC_ENOENT : 0);
}

int mproc_mdict_contains(mproc_mdict *d, const void *key, size_t klen,
                         int64_t timeout_ms)
{
    CHECK(d);
    args a;
    if (key_args(&a, "HEXISTS", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    long long n;
    int rc = run_int(OBJ(d), &a, &n, timeout_ms);
    return rc < 0 ? rc : (n != 0);
}

int mproc_mdict_len(mproc_mdict *d, size_t *out, int64_t timeout_ms)
{
    return cmd_len(OBJP(d), "HLEN", out, timeout_ms);
}

int mproc_mdict_incr(mproc_mdict *d, const void *key, size_t klen, int64_t by,
                     int64_t *out, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    char buf[24];
    if (key_args(&a, "HINCRBY", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    args_num(&a, buf, by);
    long long v;
    int rc = run_int(OBJ(d), &a, &v, timeout_ms);
    if (rc == 0 && out != NULL)
        *out = v;
    return rc;
}

int mproc_mdict_incr_double(mproc_mdict *d, const void *key, size_t klen,
                            double by, double *out, int64_t timeout_ms)
{
    CHECK(d);
    if (isnan(by) || isinf(by))
        return MPROC_ERANGE;
    args a;
    char buf[40];
    if (key_args(&a, "HINCRBYFLOAT", OBJ(d), key, klen) < 0)
        return MPROC_EINVAL;
    args_add(&a, buf, fmt_dbl(buf, by));
    double x = 0;
    int rc = run_num(OBJ(d), &a, NULL, &x, timeout_ms);
    if (rc == 0 && out != NULL)
        *out = x;
    return rc;
}

int mproc_mdict_keys(mproc_mdict *d, mproc_mreply **out, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    args_init(&a, "HKEYS", OBJ(d));
    return run_array(OBJ(d), &a, out, timeout_ms);
}

int mproc_mdict_items(mproc_mdict *d, mproc_mreply **out, int64_t timeout_ms)
{
    CHECK(d);
    args a;
    args_init(&a, "HGETALL", OBJ(d));
    return run_array(OBJ(d), &a, out, timeout_ms);
}

/* ----- list ----- */

int mproc_mlist_open(mproc_mlist **out, mproc_mclient *c, const char *name)
{
    return obj_open((void **)out, c, name, sizeof(mproc_mlist));
}

void mproc_mlist_close(mproc_mlist *l)
{
    free(l);
}

static int list_push(mproc_mlist *l, const char *cmd, const void *data,
                     size_t len, size_t *len_out, int64_t timeout_ms)
{
    CHECK(l);
    args a;
    args_init(&a, cmd, OBJ(l));
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    long long n;
    int rc = run_int(OBJ(l), &a, &n, timeout_ms);
    if (rc == 0 && len_out != NULL)
        *len_out = (size_t)n;
    return rc;
}

int mproc_mlist_append(mproc_mlist *l, const void *data, size_t len,
                       size_t *len_out, int64_t timeout_ms)
{
    return list_push(l, "RPUSH", data, len, len_out, timeout_ms);
}

int mproc_mlist_prepend(mproc_mlist *l, const void *data, size_t len,
                        size_t *len_out, int64_t timeout_ms)
{
    return list_push(l, "LPUSH", data, len, len_out, timeout_ms);
}

int mproc_mlist_pop_front(mproc_mlist *l, void **out, size_t *len,
                          int64_t timeout_ms)
{
    CHECK(l);
    args a;
    args_init(&a, "LPOP", OBJ(l));
    return run_bulk(OBJ(l), &a, out, len, timeout_ms);
}

int mproc_mlist_pop_back(mproc_mlist *l, void **out, size_t *len,
                         int64_t timeout_ms)
{
    CHECK(l);
    args a;
    args_init(&a, "RPOP", OBJ(l));
    return run_bulk(OBJ(l), &a, out, len, timeout_ms);
}

int mproc_mlist_get(mproc_mlist *l, int64_t i, void **out, size_t *len,
                    int64_t timeout_ms)
{
    CHECK(l);
    args a;
    char buf[24];
    args_init(&a, "LINDEX", OBJ(l));
    args_num(&a, buf, i);
    return run_bulk(OBJ(l), &a, out, len, timeout_ms);
}

int mproc_mlist_set(mproc_mlist *l, int64_t i, const void *data, size_t len,
                    int64_t timeout_ms)
{
    CHECK(l);
    args a;
    char buf[24];
    args_init(&a, "LSET", OBJ(l));
    args_num(&a, buf, i);
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    return run_ok(OBJ(l), &a, timeout_ms);
}

int mproc_mlist_len(mproc_mlist *l, size_t *out, int64_t timeout_ms)
{
    return cmd_len(OBJP(l), "LLEN", out, timeout_ms);
}

int mproc_mlist_range(mproc_mlist *l, int64_t start, int64_t stop,
                      mproc_mreply **out, int64_t timeout_ms)
{
    CHECK(l);
    args a;
    char b1[24], b2[24];
    args_init(&a, "LRANGE", OBJ(l));
    args_num(&a, b1, start);
    args_num(&a, b2, stop);
    return run_array(OBJ(l), &a, out, timeout_ms);
}

int mproc_mlist_remove(mproc_mlist *l, int64_t count, const void *data,
                       size_t len, size_t *removed, int64_t timeout_ms)
{
    CHECK(l);
    args a;
    char buf[24];
    args_init(&a, "LREM", OBJ(l));
    args_num(&a, buf, count);
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    long long n;
    int rc = run_int(OBJ(l), &a, &n, timeout_ms);
    if (rc == 0 && removed != NULL)
        *removed = (size_t)n;
    return rc;
}

int mproc_mlist_insert(mproc_mlist *l, bool after, const void *pivot,
                       size_t plen, const void *data, size_t len,
                       size_t *len_out, int64_t timeout_ms)
{
    CHECK(l);
    args a;
    args_init(&a, "LINSERT", OBJ(l));
    args_add(&a, after ? "AFTER" : "BEFORE", MPROC_MSTR);
    if (!args_add(&a, pivot, plen) || !args_add(&a, data, len))
        return MPROC_EINVAL;
    long long n;
    int rc = run_int(OBJ(l), &a, &n, timeout_ms);
    if (rc == 0 && n <= 0)
        return MPROC_ENOENT;
    if (rc == 0 && len_out != NULL)
        *len_out = (size_t)n;
    return rc;
}

/* ----- value ----- */

int mproc_mvalue_open(mproc_mvalue **out, mproc_mclient *c, const char *name)
{
    return obj_open((void **)out, c, name, sizeof(mproc_mvalue));
}

void mproc_mvalue_close(mproc_mvalue *v)
{
    free(v);
}

int mproc_mvalue_set(mproc_mvalue *v, const void *data, size_t len,
                     int64_t timeout_ms)
{
    CHECK(v);
    args a;
    args_init(&a, "SET", OBJ(v));
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    return run_ok(OBJ(v), &a, timeout_ms);
}

int mproc_mvalue_setnx(mproc_mvalue *v, const void *data, size_t len,
                       int64_t timeout_ms)
{
    CHECK(v);
    args a;
    args_init(&a, "SETNX", OBJ(v));
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    long long n;
    int rc = run_int(OBJ(v), &a, &n, timeout_ms);
    return rc < 0 ? rc : (n == 1 ? 0 : MPROC_EEXIST);
}

int mproc_mvalue_get(mproc_mvalue *v, void **out, size_t *len,
                     int64_t timeout_ms)
{
    CHECK(v);
    args a;
    args_init(&a, "GET", OBJ(v));
    return run_bulk(OBJ(v), &a, out, len, timeout_ms);
}

int mproc_mvalue_getset(mproc_mvalue *v, const void *data, size_t len,
                        void **old, size_t *old_len, int64_t timeout_ms)
{
    CHECK(v);
    if (old == NULL || old_len == NULL)
        return MPROC_EINVAL;
    args a;
    args_init(&a, "GETSET", OBJ(v));
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    int rc = run_bulk(OBJ(v), &a, old, old_len, timeout_ms);
    if (rc == MPROC_ENOENT) {
        *old = NULL;
        *old_len = 0;
        rc = 0;
    }
    return rc;
}

int mproc_mvalue_get_i64(mproc_mvalue *v, int64_t *out, int64_t timeout_ms)
{
    CHECK(v);
    if (out == NULL)
        return MPROC_EINVAL;
    args a;
    args_init(&a, "GET", OBJ(v));
    return run_num(OBJ(v), &a, out, NULL, timeout_ms);
}

int mproc_mvalue_get_double(mproc_mvalue *v, double *out, int64_t timeout_ms)
{
    CHECK(v);
    if (out == NULL)
        return MPROC_EINVAL;
    args a;
    args_init(&a, "GET", OBJ(v));
    return run_num(OBJ(v), &a, NULL, out, timeout_ms);
}

int mproc_mvalue_set_i64(mproc_mvalue *v, int64_t x, int64_t timeout_ms)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRId64, x);
    return mproc_mvalue_set(v, buf, (size_t)n, timeout_ms);
}

int mproc_mvalue_set_double(mproc_mvalue *v, double x, int64_t timeout_ms)
{
    if (isnan(x) || isinf(x))
        return MPROC_ERANGE;
    char buf[40];
    return mproc_mvalue_set(v, buf, fmt_dbl(buf, x), timeout_ms);
}

int mproc_mvalue_incr(mproc_mvalue *v, int64_t by, int64_t *out,
                      int64_t timeout_ms)
{
    CHECK(v);
    args a;
    char buf[24];
    args_init(&a, "INCRBY", OBJ(v));
    args_num(&a, buf, by);
    long long n;
    int rc = run_int(OBJ(v), &a, &n, timeout_ms);
    if (rc == 0 && out != NULL)
        *out = n;
    return rc;
}

int mproc_mvalue_incr_double(mproc_mvalue *v, double by, double *out,
                             int64_t timeout_ms)
{
    CHECK(v);
    if (isnan(by) || isinf(by))
        return MPROC_ERANGE;
    args a;
    char buf[40];
    args_init(&a, "INCRBYFLOAT", OBJ(v));
    args_add(&a, buf, fmt_dbl(buf, by));
    double x = 0;
    int rc = run_num(OBJ(v), &a, NULL, &x, timeout_ms);
    if (rc == 0 && out != NULL)
        *out = x;
    return rc;
}

/* ----- queue ----- */

int mproc_mqueue_open(mproc_mqueue **out, mproc_mclient *c, const char *name,
                      const mproc_mqueue_opts *opts, int64_t timeout_ms)
{
    size_t max = opts != NULL ? opts->maxsize : 0;
    char buf[24];
    snprintf(buf, sizeof buf, "%zu", max);
    if (c == NULL || c->server == MPROC_MSERVER_MANAGER || max > 0)
        return open_made((void **)out, c, name, "QUEUE.CREATE", buf, NULL, NULL,
                         timeout_ms);
    /* Redis: a queue is a list; only check that the name holds none else. */
    mproc_mqueue *q = NULL;
    int rc = obj_open((void **)&q, c, name, sizeof *q);
    if (rc < 0)
        return rc;
    args a;
    args_init(&a, "TYPE", OBJ(q));
    redisReply *r;
    rc = run(OBJ(q), &a, &r, timeout_ms);
    if (rc == 0) {
        if (r->type != REDIS_REPLY_STATUS ||
            (strcmp(r->str, "list") != 0 && strcmp(r->str, "none") != 0))
            rc = MPROC_EBADOBJ;
        freeReplyObject(r);
    }
    if (rc < 0) {
        free(q);
        return rc;
    }
    *out = q;
    return 0;
}

void mproc_mqueue_close(mproc_mqueue *q)
{
    free(q);
}

int mproc_mqueue_put(mproc_mqueue *q, const void *data, size_t len,
                     int64_t timeout_ms)
{
    CHECK(q);
    if (timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    args a;
    char buf[24];
    if (manager_only(OBJ(q))) {
        args_init(&a, "QUEUE.PUT", OBJ(q));
        args_num(&a, buf, timeout_ms);
    } else {
        args_init(&a, "RPUSH", OBJ(q));
    }
    if (!args_add(&a, data, len))
        return MPROC_EINVAL;
    return run_int(OBJ(q), &a, NULL, timeout_ms);
}

int mproc_mqueue_get(mproc_mqueue *q, void **out, size_t *len,
                     int64_t timeout_ms)
{
    CHECK(q);
    if (out == NULL || len == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    args a;
    char buf[32];
    if (timeout_ms == 0) {
        args_init(&a, "LPOP", OBJ(q));
        int rc = run_bulk(OBJ(q), &a, out, len, timeout_ms);
        return rc == MPROC_ENOENT ? MPROC_ETIMEDOUT : rc;
    }
    args_init(&a, "BLPOP", OBJ(q));
    int n = timeout_ms < 0
                ? snprintf(buf, sizeof buf, "0")
                : snprintf(buf, sizeof buf, "%" PRId64 ".%03d",
                           timeout_ms / 1000, (int)(timeout_ms % 1000));
    args_add(&a, buf, (size_t)n);
    redisReply *r;
    int rc = run(OBJ(q), &a, &r, timeout_ms);
    if (rc < 0)
        return rc;
    if (r->type == REDIS_REPLY_NIL)
        rc = MPROC_ETIMEDOUT;
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        rc = MPROC_EPROTO;
    else
        rc = take_bulk(r->element[1], out, len);
    freeReplyObject(r);
    return rc;
}

int mproc_mqueue_qsize(mproc_mqueue *q, size_t *out, int64_t timeout_ms)
{
    return cmd_len(OBJP(q), "LLEN", out, timeout_ms);
}

int mproc_mqueue_task_done(mproc_mqueue *q, int64_t timeout_ms)
{
    if (q != NULL && !manager_only(OBJ(q)))
        return MPROC_ENOSYS;
    return cmd_int(OBJP(q), "QUEUE.DONE", false, timeout_ms, NULL);
}

int mproc_mqueue_join(mproc_mqueue *q, int64_t timeout_ms)
{
    if (q != NULL && !manager_only(OBJ(q)))
        return MPROC_ENOSYS;
    return cmd_ok(OBJP(q), "QUEUE.JOIN", true, timeout_ms);
}

/* ----- lock ----- */

int mproc_mlock_open(mproc_mlock **out, mproc_mclient *c, const char *name,
                     const mproc_mlock_opts *opts, int64_t timeout_ms)
{
    long long rec = 0;
    int rc = open_made((void **)out, c, name, "LOCK.CREATE",
                       opts != NULL && opts->recursive ? "RECURSIVE" : "PLAIN",
                       NULL, &rec, timeout_ms);
    if (rc == 0)
        (*out)->o.recursive = rec != 0;
    return rc;
}

void mproc_mlock_close(mproc_mlock *l)
{
    free(l);
}

bool mproc_mlock_is_recursive(const mproc_mlock *l)
{
    return l != NULL && l->o.recursive;
}

int mproc_mlock_acquire(mproc_mlock *l, int64_t timeout_ms)
{
    long long v = 0;
    int rc = cmd_int(OBJP(l), "LOCK.ACQUIRE", true, timeout_ms, &v);
    return rc == 0 && v == 2 ? MPROC_EOWNERDEAD : rc;
}

int mproc_mlock_release(mproc_mlock *l, int64_t timeout_ms)
{
    return cmd_int(OBJP(l), "LOCK.RELEASE", false, timeout_ms, NULL);
}

/* ----- event ----- */

int mproc_mevent_open(mproc_mevent **out, mproc_mclient *c, const char *name)
{
    int rc = obj_open((void **)out, c, name, sizeof(mproc_mevent));
    if (rc == 0 && !manager_only(OBJ(*out))) {
        free(*out);
        return MPROC_ENOSYS;
    }
    return rc;
}

void mproc_mevent_close(mproc_mevent *e)
{
    free(e);
}

int mproc_mevent_set(mproc_mevent *e, int64_t timeout_ms)
{
    return cmd_ok(OBJP(e), "EVENT.SET", false, timeout_ms);
}

int mproc_mevent_clear(mproc_mevent *e, int64_t timeout_ms)
{
    return cmd_ok(OBJP(e), "EVENT.CLEAR", false, timeout_ms);
}

int mproc_mevent_is_set(mproc_mevent *e, int64_t timeout_ms)
{
    long long v = 0;
    int rc = cmd_int(OBJP(e), "EVENT.ISSET", false, timeout_ms, &v);
    return rc < 0 ? rc : (v != 0);
}

int mproc_mevent_wait(mproc_mevent *e, int64_t timeout_ms)
{
    return cmd_int(OBJP(e), "EVENT.WAIT", true, timeout_ms, NULL);
}

/* ----- semaphore ----- */

int mproc_msemaphore_open(mproc_msemaphore **out, mproc_mclient *c,
                          const char *name, const mproc_msemaphore_opts *opts,
                          int64_t timeout_ms)
{
    mproc_msemaphore_opts def = MPROC_MSEMAPHORE_OPTS_INIT;
    if (opts == NULL)
        opts = &def;
    char buf[24];
    snprintf(buf, sizeof buf, "%u", opts->value);
    return open_made((void **)out, c, name, "SEM.CREATE", buf,
                     opts->bounded ? "BOUNDED" : NULL, NULL, timeout_ms);
}

void mproc_msemaphore_close(mproc_msemaphore *s)
{
    free(s);
}

int mproc_msemaphore_acquire(mproc_msemaphore *s, int64_t timeout_ms)
{
    return cmd_int(OBJP(s), "SEM.ACQUIRE", true, timeout_ms, NULL);
}

int mproc_msemaphore_release(mproc_msemaphore *s, int64_t timeout_ms)
{
    return cmd_int(OBJP(s), "SEM.RELEASE", false, timeout_ms, NULL);
}

int mproc_msemaphore_value(mproc_msemaphore *s, unsigned *out,
                           int64_t timeout_ms)
{
    size_t n = 0;
    int rc = cmd_len(OBJP(s), "SEM.VALUE", &n, timeout_ms);
    if (rc == 0)
        *out = (unsigned)n;
    return rc;
}

/* ----- barrier ----- */

int mproc_mbarrier_open(mproc_mbarrier **out, mproc_mclient *c,
                        const char *name, const mproc_mbarrier_opts *opts,
                        int64_t timeout_ms)
{
    unsigned parties = opts != NULL ? opts->parties : 2;
    if (parties < 1)
        return MPROC_EINVAL;
    char buf[24];
    snprintf(buf, sizeof buf, "%u", parties);
    return open_made((void **)out, c, name, "BARRIER.CREATE", buf, NULL, NULL,
                     timeout_ms);
}

void mproc_mbarrier_close(mproc_mbarrier *b)
{
    free(b);
}

int mproc_mbarrier_wait(mproc_mbarrier *b, unsigned *index, int64_t timeout_ms)
{
    long long v = 0;
    int rc = cmd_int(OBJP(b), "BARRIER.WAIT", true, timeout_ms, &v);
    if (rc == 0 && index != NULL)
        *index = (unsigned)v;
    return rc;
}

int mproc_mbarrier_reset(mproc_mbarrier *b, int64_t timeout_ms)
{
    return cmd_ok(OBJP(b), "BARRIER.RESET", false, timeout_ms);
}

int mproc_mbarrier_abort(mproc_mbarrier *b, int64_t timeout_ms)
{
    return cmd_ok(OBJP(b), "BARRIER.ABORT", false, timeout_ms);
}
