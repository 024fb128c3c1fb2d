/*
 * The manager's server: one process, one epoll loop, many clients. Reads
 * RESP2 requests (hiredis's reader, plus inline commands for telnet-style
 * clients), runs them against the store (manager_store.c), parks a client
 * whose command blocks, and writes replies to its socket or, for clients
 * that asked, to a pair of shared-memory rings (an mproc_pipe).
 */
#include "internal/manager_conn.h"

#include "internal/conn.h"
#include "internal/ring.h"
#include "internal/spin.h"
#include "os/os.h"

#include "mproc/conn.h"
#include "mproc/process.h"

#include <hiredis/hiredis.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEF_MAX_CLIENTS 1024
#define DEF_MAX_REQUEST ((size_t)64 << 20)
#define DEF_MAX_PENDING 1024
#define DEF_REQUEST_TIMEOUT_MS 30000
#define DEF_SPIN_NS 50000
#define MAX_SPIN_US 1000000                       /* 1 s */
#define MAX_REQUEST_TIMEOUT_MS ((int64_t)1 << 40) /* 34 years */
#define MAX_ARGS (1024 * 1024)
#define INLINE_MAX (64 * 1024)
/* A client whose unsent replies pass this is not read from until they
 * drain (it sends faster than it reads); past MGR_OUT_LIMIT it is
 * closed. */
#define OUT_HIGH ((size_t)1 << 20)
/* Ring messages: the rings hold 64 KiB; pieces stay below that so a send
 * goes whole or not at all. */
#define RING_PIECE (32 * 1024)
#define RING_MSG_MAX (64 * 1024)
#define READ_CHUNK (64 * 1024)

enum { EV_UNIX = 1, EV_TCP, EV_CTRL, EV_OWNER, EV_SIG, EV_SOCK, EV_RING };

struct mgr_srv {
    int ep;
    mproc_listener *ul;
    int tcp_fd;
    int ctrl_fd, owner_fd, sig_fd;
    pid_t owner_pid;
    mgr_ev ev_unix, ev_tcp, ev_ctrl, ev_owner, ev_sig;
    mgr_store *st;
    mgr_conn *conns;
    size_t nconns;
    mgr_conn *run_head, *run_tail, *dirty, *dead, *hot;
    uint64_t next_id;
    bool stop;
    size_t max_clients, max_request, max_pending;
    int64_t request_timeout_ns;
    int64_t spin_ns;  /* a fixed poll; negative: the spin budget (spin.h) */
    int64_t slept_ns; /* when the loop last went to sleep; 0: it did not */
    int64_t next_timer;
    bool ring_busy; /* a ring message came since the loop last looked */
    char password[256];
    size_t password_len;
    bool has_password;
    sigset_t old_mask;
    bool sig_blocked;
};

static void conn_close(mgr_conn *c);

/* ----- addresses and passwords ----- */

int mproc__mgr_parse_addr(const char *s, mgr_addr *out)
{
    if (s == NULL || out == NULL || *s == '\0')
        return MPROC_EINVAL;
    memset(out, 0, sizeof *out);
    if (strncmp(s, "tcp:", 4) == 0) {
        const char *hp = s + 4;
        const char *colon = strrchr(hp, ':');
        if (colon == NULL || colon == hp)
            return MPROC_EINVAL;
        size_t hl = (size_t)(colon - hp);
        if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {
            hp++;
            hl -= 2;
        }
        if (hl == 0 || hl >= sizeof out->host)
            return MPROC_EINVAL;
        memcpy(out->host, hp, hl);
        char *end;
        errno = 0;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end != '\0' || port > 65535 || errno != 0)
            return MPROC_EINVAL;
        out->port = (unsigned)port;
        out->kind = MGR_ADDR_TCP;
        return 0;
    }
    if (strncmp(s, "unix:", 5) == 0)
        s += 5;
    if (*s == '\0' || strcmp(s, "@") == 0)
        return MPROC_EINVAL;
    if (strlen(s) >= sizeof out->path)
        return MPROC_ENAMETOOLONG;
    strcpy(out->path, s);
    out->kind = MGR_ADDR_UNIX;
    return 0;
}

int mproc__mgr_sockaddr(const mgr_addr *a, struct sockaddr_storage *ss,
                        unsigned *len)
{
    memset(ss, 0, sizeof *ss);
    const char *host =
        strcmp(a->host, "localhost") == 0 ? "127.0.0.1" : a->host;
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)a->port);
        *len = sizeof *in;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)a->port);
        *len = sizeof *in6;
    } else {
        return MPROC_EINVAL;
    }
    return 0;
}

int mproc__mgr_read_password(const char *path, char *buf, size_t cap,
                             bool strict)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = MPROC_EBADOBJ;
    else if (strict && (st.st_uid != geteuid() || (st.st_mode & 077) != 0))
        rc = MPROC_EDENIED;
    size_t n = 0;
    while (rc == 0 && n + 1 < cap) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = -errno;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (rc < 0)
        return rc;
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] == '\0' ? MPROC_EINVAL : 0;
}

/* ----- requests ----- */

void mproc__mgr_req_free(mgr_req *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->argc; i++)
        free(r->argv[i]);
    free(r->argv);
    free(r->argl);
    free(r);
}

static mgr_req *req_new(int argc)
{
    mgr_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    size_t n = argc > 0 ? (size_t)argc : 1;
    r->argv = calloc(n, sizeof *r->argv);
    r->argl = calloc(n, sizeof *r->argl);
    if (r->argv == NULL || r->argl == NULL) {
        free(r->argv);
        free(r->argl);
        free(r);
        return NULL;
    }
    r->argc = argc;
    return r;
}

/* hiredis builds requests through these: an array of bulk strings at the
 * top level, nothing else. A refusal (NULL) makes the reader report "out
 * of memory"; the reason kept in the connection says what it was. */
static void refuse(const redisReadTask *t, const char *why)
{
    mgr_conn *c = t->privdata;
    if (c != NULL && c->proto_err[0] == '\0')
        snprintf(c->proto_err, sizeof c->proto_err, "%s", why);
}

static void *rd_string(const redisReadTask *t, char *str, size_t len)
{
    if (t->parent == NULL || t->type != REDIS_REPLY_STRING) {
        refuse(t, "expected '$'");
        return NULL;
    }
    mgr_req *r = t->parent->obj;
    char *p = malloc(len + 1);
    if (p == NULL) {
        refuse(t, "out of memory");
        return NULL;
    }
    memcpy(p, str, len);
    p[len] = '\0';
    r->argv[t->idx] = p;
    r->argl[t->idx] = len;
    return r;
}

static void *rd_array(const redisReadTask *t, int elements)
{
    if (t->parent != NULL) {
        refuse(t, "expected '$', got '*'");
        return NULL;
    }
    if (elements > MAX_ARGS) {
        refuse(t, "invalid multibulk length");
        return NULL;
    }
    mgr_req *r = req_new(elements);
    if (r == NULL)
        refuse(t, "out of memory");
    return r;
}

static void *rd_integer(const redisReadTask *t, long long v)
{
    (void)v;
    refuse(t, "expected '$', got ':'");
    return NULL;
}

static void *rd_nil(const redisReadTask *t)
{
    if (t->parent == NULL)
        return req_new(0); /* "*-1": nothing to do, as Redis */
    refuse(t, "invalid bulk length");
    return NULL;
}

static void rd_free(void *obj)
{
    mproc__mgr_req_free(obj);
}

static redisReplyObjectFunctions rd_fns = {rd_string, rd_array, rd_integer,
                                           rd_nil, rd_free};

static int reader_new(mgr_conn *c)
{
    if (c->rd != NULL)
        redisReaderFree(c->rd);
    c->rd = redisReaderCreateWithFunctions(&rd_fns);
    if (c->rd == NULL)
        return MPROC_ENOMEM;
    c->rd->privdata = c;
    c->rd->maxbuf = 64 * 1024;
    return 0;
}

/* Splits an inline request line as Redis does (sdssplitargs): words
 * separated by blanks, "double quotes" with \n \r \t \b \a \\ \" \xHH,
 * 'single quotes' with \'. NULL with *bad set when the quotes do not
 * close. */
static mgr_req *split_inline(const char *p, size_t n, bool *bad)
{
    *bad = false;
    mgr_buf words = {0};
    mgr_buf w = {0};
    int argc = 0;
    size_t i = 0;
    int ok = 1;
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
                         p[i] == '\n' || p[i] == '\v' || p[i] == '\f'))
            i++;
        if (i >= n)
            break;
        w.len = 0;
        int inq = 0, insq = 0;
        for (;;) {
            if (inq) {
                if (i >= n) {
                    ok = 0;
                    break;
                }
                if (p[i] == '\\' && i + 3 < n && p[i + 1] == 'x' &&
                    isxdigit((unsigned char)p[i + 2]) &&
                    isxdigit((unsigned char)p[i + 3])) {
                    char hex[3] = {p[i + 2], p[i + 3], 0};
                    char b = (char)strtol(hex, NULL, 16);
                    mproc__mgr_buf_add(&w, &b, 1);
                    i += 4;
                } else if (p[i] == '\\' && i + 1 < n) {
                    char b;
                    switch (p[i + 1]) {
                    case 'n':
                        b = '\n';
                        break;
                    case 'r':
                        b = '\r';
                        break;
                    case 't':
                        b = '\t';
                        break;
                    case 'b':
                        b = '\b';
                        break;
                    case 'a':
                        b = '\a';
                        break;
                    default:
                        b = p[i + 1];
                        break;
                    }
                    mproc__mgr_buf_add(&w, &b, 1);
                    i += 2;
                } else if (p[i] == '"') {
                    if (i + 1 < n && !isspace((unsigned char)p[i + 1])) {
                        ok = 0;
                        break;
                    }
                    i++;
                    break;
                } else {
                    mproc__mgr_buf_add(&w, &p[i], 1);
                    i++;
                }
            } else if (insq) {
                if (i >= n) {
                    ok = 0;
                    break;
                }
                if (p[i] == '\\' && i + 1 < n && p[i + 1] == '\'') {
                    mproc__mgr_buf_add(&w, "'", 1);
                    i += 2;
                } else if (p[i] == '\'') {
                    if (i + 1 < n && !isspace((unsigned char)p[i + 1])) {
                        ok = 0;
                        break;
                    }
                    i++;
                    break;
                } else {
                    mproc__mgr_buf_add(&w, &p[i], 1);
                    i++;
                }
            } else {
                if (i >= n || isspace((unsigned char)p[i]))
                    break;
                if (p[i] == '"' && w.len == 0)
                    inq = 1;
                else if (p[i] == '\'' && w.len == 0)
                    insq = 1;
                else
                    mproc__mgr_buf_add(&w, &p[i], 1);
                i++;
                if (inq || insq)
                    continue;
            }
            if (inq == 0 && insq == 0 && (i >= n))
                break;
        }
        if (!ok)
            break;
        size_t l = w.len;
        if (mproc__mgr_buf_add(&words, &l, sizeof l) < 0 ||
            mproc__mgr_buf_add(&words, w.p ? w.p : "", l) < 0) {
            ok = 0;
            break;
        }
        argc++;
    }
    mgr_req *r = NULL;
    if (ok)
        r = req_new(argc);
    if (r != NULL) {
        size_t off = 0;
        for (int k = 0; k < argc; k++) {
            size_t l;
            memcpy(&l, words.p + off, sizeof l);
            off += sizeof l;
            r->argv[k] = malloc(l + 1);
            if (r->argv[k] == NULL) {
                mproc__mgr_req_free(r);
                r = NULL;
                break;
            }
            memcpy(r->argv[k], words.p + off, l);
            r->argv[k][l] = '\0';
            r->argl[k] = l;
            off += l;
        }
    }
    if (!ok)
        *bad = true;
    mproc__mgr_buf_free(&w);
    mproc__mgr_buf_free(&words);
    return r;
}

/* ----- the connection set ----- */

static void mark_dirty(mgr_conn *c)
{
    if (!c->in_dirty && c->s != NULL) {
        c->in_dirty = true;
        c->dirty_next = c->s->dirty;
        c->s->dirty = c;
    }
}

static void run_push(mgr_conn *c)
{
    mgr_srv *s = c->s;
    if (c->in_run || s == NULL)
        return;
    c->in_run = true;
    c->run_next = NULL;
    if (s->run_tail != NULL)
        s->run_tail->run_next = c;
    else
        s->run_head = c;
    s->run_tail = c;
}

static void park_deadline(mgr_conn *c, int64_t ns)
{
    if (c->s != NULL && ns < c->s->next_timer)
        c->s->next_timer = ns;
}

/* What a reply or a park asks of the loop (manager_conn.c). */
static const mgr_conn_ops server_ops = {
    .wrote = mark_dirty,
    .close = conn_close,
    .runnable = run_push,
    .deadline = park_deadline,
};

static void hot_add(mgr_conn *c)
{
    if (c->on_hot || c->s == NULL)
        return;
    c->on_hot = true;
    c->hot_prev = NULL;
    c->hot_next = c->s->hot;
    if (c->s->hot != NULL)
        c->s->hot->hot_prev = c;
    c->s->hot = c;
}

static void hot_del(mgr_conn *c);

/* The hot list holds the ring connections the loop polls while it spins:
 * those that took a message since their ring was last armed, and those
 * whose replies wait for room. An armed ring is found by its bell. */
static void set_hot(mgr_conn *c, bool hot)
{
    c->ring_hot = hot;
    if (hot || c->ring_out)
        hot_add(c);
    else
        hot_del(c);
}

static void hot_del(mgr_conn *c)
{
    if (!c->on_hot)
        return;
    if (c->hot_prev != NULL)
        c->hot_prev->hot_next = c->hot_next;
    else
        c->s->hot = c->hot_next;
    if (c->hot_next != NULL)
        c->hot_next->hot_prev = c->hot_prev;
    c->on_hot = false;
}

static void proto_error(mgr_conn *c, const char *what)
{
    mproc__mgr_reply_error(c, "ERR Protocol error: %s", what);
    /* What was said goes out before the close. */
    c->qlen = 0;
    conn_close(c);
}

static void epoll_set(mgr_conn *c)
{
    if (c->s == NULL || c->fd < 0 || c->closing)
        return;
    uint32_t want = EPOLLRDHUP;
    if (c->ring == NULL && c->out.len - c->out_off >= OUT_HIGH)
        want |= 0; /* stop reading until the replies drain */
    else
        want |= EPOLLIN;
    if (c->ring == NULL && c->out.len > c->out_off)
        want |= EPOLLOUT;
    if (want != c->ev_mask) {
        struct epoll_event ev = {.events = want, .data.ptr = &c->sock_ev};
        epoll_ctl(c->s->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->ev_mask = want;
    }
}

/* Writes what it can without blocking. */
static void conn_flush(mgr_conn *c)
{
    if (c->closing)
        return;
    if (c->ring != NULL) {
        c->ring_out = false;
        while (c->out_off < c->out.len) {
            size_t n = c->out.len - c->out_off;
            if (n > RING_PIECE)
                n = RING_PIECE;
            int rc = mproc_conn_send(c->ring, c->out.p + c->out_off, n, 0);
            if (rc == MPROC_ETIMEDOUT) {
                c->ring_out = true; /* full: the loop tries again soon */
                hot_add(c);
                break;
            }
            if (rc < 0) {
                conn_close(c);
                return;
            }
            c->out_off += n;
        }
    } else if (c->fd >= 0) {
        while (c->out_off < c->out.len) {
            ssize_t k =
                send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                     MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (k <= 0) {
                conn_close(c);
                return;
            }
            c->out_off += (size_t)k;
        }
    } else {
        c->out_off = c->out.len; /* no socket (fuzzing): dropped */
    }
    if (c->out_off == c->out.len) {
        c->out.len = c->out_off = 0;
        if (c->out.cap > 4 * READ_CHUNK) {
            mproc__mgr_buf_free(&c->out);
        }
        if (c->qhead != NULL)
            run_push(c); /* it stopped for the replies to drain */
    } else if (c->out_off > c->out.len / 2) {
        memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    epoll_set(c);
}

/* ----- parsing ----- */

static void queue_req(mgr_conn *c, mgr_req *r)
{
    if (r->argc == 0) {
        mproc__mgr_req_free(r);
        return;
    }
    r->next = NULL;
    if (c->qtail != NULL)
        c->qtail->next = r;
    else
        c->qhead = r;
    c->qtail = r;
    c->qlen++;
    run_push(c);
}

static int64_t now_ns(void)
{
    return mproc__os_monotonic_ns();
}

/* Parses what c->in holds (and what the reader keeps) into requests. */
static void parse_input(mgr_conn *c)
{
    mgr_srv *s = c->s;
    size_t max_request = s != NULL ? s->max_request : DEF_MAX_REQUEST;
    size_t max_pending = s != NULL ? s->max_pending : DEF_MAX_PENDING;
    while (!c->closing) {
        if (c->qlen > max_pending) {
            proto_error(c, "too many pending requests");
            return;
        }
        if (!c->rd_active) {
            if (c->in.len == 0)
                break;
            if (c->in.p[0] == '*') {
                c->rd_active = true;
                continue;
            }
            char *nl = memchr(c->in.p, '\n', c->in.len);
            if (nl == NULL) {
                if (c->in.len > INLINE_MAX || c->in.len > max_request)
                    proto_error(c, "too big inline request");
                break;
            }
            size_t line = (size_t)(nl - c->in.p) + 1;
            bool bad;
            mgr_req *r = split_inline(c->in.p, line, &bad);
            memmove(c->in.p, c->in.p + line, c->in.len - line);
            c->in.len -= line;
            if (r == NULL) {
                proto_error(c, bad ? "unbalanced quotes in request"
                                   : "out of memory");
                return;
            }
            queue_req(c, r);
            continue;
        }
        if (c->in.len > 0) {
            if (redisReaderFeed(c->rd, c->in.p, c->in.len) != REDIS_OK) {
                proto_error(c, "out of memory");
                return;
            }
            c->req_bytes += c->in.len;
            c->in.len = 0;
        }
        void *obj = NULL;
        if (redisReaderGetReply(c->rd, &obj) != REDIS_OK) {
            char why[128];
            snprintf(why, sizeof why, "%s",
                     c->proto_err[0] ? c->proto_err : c->rd->errstr);
            proto_error(c, why);
            return;
        }
        if (obj == NULL) {
            /* Half a request. A bulk string whose header is read and
             * whose data is awaited: check its length now. */
            redisReader *r = c->rd;
            if (r->ridx >= 0 && r->rstack[r->ridx].type == REDIS_REPLY_STRING) {
                const char *p = r->buf + r->pos;
                size_t avail = r->len - r->pos;
                const char *cr = memchr(p, '\r', avail);
                if (cr != NULL) {
                    long long len = 0;
                    bool digits = cr > p;
                    for (const char *q = p; q < cr && digits; q++) {
                        if (*q < '0' || *q > '9' || len > (long long)1 << 50)
                            digits = false;
                        else
                            len = len * 10 + (*q - '0');
                    }
                    if (digits && (unsigned long long)len > max_request) {
                        proto_error(c, "invalid bulk length");
                        return;
                    }
                }
            }
            if (c->req_bytes > max_request) {
                proto_error(c, "request too large");
                return;
            }
            break;
        }
        redisReader *r = c->rd;
        c->req_bytes = r->len - r->pos;
        queue_req(c, obj);
        if (r->pos == r->len) {
            c->rd_active = false;
        } else if (r->buf[r->pos] != '*') {
            /* An inline request follows: take the rest back. */
            size_t rest = r->len - r->pos;
            if (mproc__mgr_buf_add(&c->in, r->buf + r->pos, rest) < 0 ||
                reader_new(c) < 0) {
                proto_error(c, "out of memory");
                return;
            }
            c->req_bytes = 0;
            c->rd_active = false;
        }
    }
    if (c->closing)
        return;
    bool partial = c->in.len > 0 || (c->rd_active && c->req_bytes > 0);
    if (!partial) {
        c->partial_since = 0;
    } else if (c->partial_since == 0 && s != NULL) {
        c->partial_since = now_ns();
        if (s->request_timeout_ns > 0 &&
            c->partial_since + s->request_timeout_ns < s->next_timer)
            s->next_timer = c->partial_since + s->request_timeout_ns;
    }
}

static void conn_input(mgr_conn *c, const char *p, size_t n)
{
    if (mproc__mgr_buf_add(&c->in, p, n) < 0) {
        proto_error(c, "out of memory");
        return;
    }
    parse_input(c);
}

/* ----- commands the server answers itself ----- */

static bool eq(const mgr_req *r, int i, const char *s)
{
    return i < r->argc && strcasecmp(r->argv[i], s) == 0 &&
           strlen(s) == r->argl[i];
}

/* Constant time in the length of the stored password: every byte of it is
 * looked at whatever the guess, and a wrong length changes nothing but
 * the result. */
static bool password_ok(const mgr_srv *s, const char *p, size_t n)
{
    if (!s->has_password)
        return false;
    volatile unsigned char diff = (unsigned char)(n != s->password_len);
    for (size_t i = 0; i < s->password_len; i++) {
        unsigned char g = n > 0 ? (unsigned char)p[i % n] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)s->password[i]);
    }
    return diff == 0;
}

static void do_ring(mgr_conn *c)
{
    if (c->tcp || c->sock == NULL || c->ring != NULL) {
        mproc__mgr_reply_error(c, "ERR rings need a Unix socket connection");
        return;
    }
    if (c->out.len > c->out_off || c->qhead != NULL) {
        mproc__mgr_reply_error(c, "ERR MPROC.RING must be sent alone");
        return;
    }
    mproc_conn *a = NULL, *b = NULL;
    /* Requests and replies are small: a small ring per client keeps many
     * clients cheap (larger messages stream through it). */
    mproc_pipe_opts po = MPROC_PIPE_OPTS_INIT;
    po.ring_size = 64 * 1024;
    int rc = mproc_pipe(&a, &b, true, &po);
    if (rc == 0)
        rc = mproc_conn_send_conn(c->sock, b, 0); /* never blocks the loop */
    mproc_conn_close(b);
    if (rc < 0) {
        mproc_conn_close(a);
        conn_close(c);
        return;
    }
    c->ring = a;
    c->ring_ev.kind = EV_RING;
    c->ring_ev.c = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->ring_ev};
    if (epoll_ctl(c->s->ep, EPOLL_CTL_ADD, mproc_conn_fd(a), &ev) != 0) {
        conn_close(c);
        return;
    }
    set_hot(c, true); /* armed before the server next sleeps */
    epoll_set(c);
}

/* Runs c's queued requests until it parks, closes or has too much unsent. */
static void conn_run(mgr_conn *c)
{
    mgr_srv *s = c->s;
    while (!c->closing && !c->parked && c->qhead != NULL &&
           c->out.len - c->out_off < OUT_HIGH) {
        mgr_req *r = c->qhead;
        c->qhead = r->next;
        if (c->qhead == NULL)
            c->qtail = NULL;
        c->qlen--;
        if (eq(r, 0, "AUTH")) {
            const char *p = r->argv[r->argc - 1];
            size_t n = r->argl[r->argc - 1];
            if (r->argc < 2 || r->argc > 3)
                mproc__mgr_reply_error(
                    c, "ERR wrong number of arguments for 'auth' command");
            else if (s == NULL || !s->has_password)
                mproc__mgr_reply_error(
                    c, "ERR AUTH <password> called without any password "
                       "configured for the default user. Are you sure your "
                       "configuration is correct?");
            else if ((r->argc == 3 && !eq(r, 1, "default")) ||
                     !password_ok(s, p, n))
                mproc__mgr_reply_error(c, "WRONGPASS invalid username-password "
                                          "pair or user is disabled.");
            else {
                c->authed = true;
                mproc__mgr_reply_status(c, "OK");
            }
        } else if (eq(r, 0, "QUIT")) {
            mproc__mgr_reply_status(c, "OK");
            c->qlen = 0;
            mproc__mgr_req_free(r);
            conn_close(c);
            return;
        } else if (c->tcp && !c->authed) {
            mproc__mgr_reply_error(c, "NOAUTH Authentication required.");
        } else if (eq(r, 0, "MPROC.RING") && s != NULL) {
            do_ring(c);
        } else if (mproc__mgr_exec(s != NULL ? s->st : NULL, c, r) == 1 &&
                   s != NULL) {
            s->stop = true;
        }
        mproc__mgr_req_free(r);
    }
}

/* ----- closing ----- */

static void conn_free(mgr_conn *c)
{
    mgr_req *r = c->qhead;
    while (r != NULL) {
        mgr_req *n = r->next;
        mproc__mgr_req_free(r);
        r = n;
    }
    if (c->rd != NULL)
        redisReaderFree(c->rd);
    mproc__mgr_buf_free(&c->in);
    mproc__mgr_buf_free(&c->out);
    free(c);
}

static void conn_close(mgr_conn *c)
{
    if (c->closing)
        return;
    mgr_srv *s = c->s;
    /* Send what is said (an error that explains the close), best effort. */
    if (c->out.len > c->out_off && c->fd >= 0 && c->ring == NULL)
        (void)!send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                    MSG_DONTWAIT | MSG_NOSIGNAL);
    if (c->out.len > c->out_off && c->ring != NULL)
        (void)mproc_conn_send(c->ring, c->out.p + c->out_off,
                              c->out.len - c->out_off > RING_PIECE
                                  ? RING_PIECE
                                  : c->out.len - c->out_off,
                              0);
    c->closing = true;
    c->parked = false;
    if (s != NULL) {
        mproc__mgr_store_disconnect(s->st, c);
        hot_del(c);
        if (c->ring != NULL) {
            epoll_ctl(s->ep, EPOLL_CTL_DEL, mproc_conn_fd(c->ring), NULL);
            mproc_conn_close(c->ring);
            c->ring = NULL;
        }
        if (c->fd >= 0) {
            epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
            if (c->sock != NULL)
                mproc_conn_close(c->sock);
            else
                close(c->fd);
            c->fd = -1;
        }
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            s->conns = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        s->nconns--;
        c->next = s->dead;
        s->dead = c;
    }
}

/* ----- accepting ----- */

static mgr_conn *conn_new(mgr_srv *s, int fd, mproc_conn *sock, bool tcp)
{
    mgr_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ops = &server_ops;
    c->s = s;
    c->fd = fd;
    c->sock = sock;
    c->tcp = tcp;
    c->id = s != NULL ? ++s->next_id : 1;
    if (reader_new(c) < 0) {
        free(c);
        return NULL;
    }
    if (s != NULL) {
        c->sock_ev.kind = EV_SOCK;
        c->sock_ev.c = c;
        c->ev_mask = EPOLLIN | EPOLLRDHUP;
        struct epoll_event ev = {.events = c->ev_mask, .data.ptr = &c->sock_ev};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            redisReaderFree(c->rd);
            free(c);
            return NULL;
        }
        c->next = s->conns;
        if (s->conns != NULL)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
    }
    return c;
}

static void refuse_full(int fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";
    (void)!send(fd, msg, sizeof msg - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void accept_unix(mgr_srv *s)
{
    for (int k = 0; k < 64; k++) {
        mproc_conn *sock = NULL;
        mproc_peer peer;
        int rc = mproc_listener_accept(s->ul, &sock, &peer, 0);
        if (rc == MPROC_EDENIED)
            continue; /* closed by the listener: not allowed */
        if (rc < 0)
            return;
        int fd = mproc_conn_fd(sock);
        if (s->nconns >= s->max_clients) {
            refuse_full(fd);
            mproc_conn_close(sock);
            continue;
        }
        mgr_conn *c = conn_new(s, fd, sock, false);
        if (c == NULL)
            mproc_conn_close(sock);
        else
            c->pid = peer.pid;
    }
}

static void accept_tcp(mgr_srv *s)
{
    for (int k = 0; k < 64; k++) {
        int fd = accept4(s->tcp_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0)
            return;
        if (s->nconns >= s->max_clients) {
            refuse_full(fd);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (conn_new(s, fd, NULL, true) == NULL)
            close(fd);
    }
}

/* ----- reading ----- */

static void read_sock(mgr_conn *c, char *buf)
{
    for (int k = 0; k < 4 && !c->closing; k++) {
        ssize_t n = recv(c->fd, buf, READ_CHUNK, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            c->qlen = 0;
            conn_close(c);
            return;
        }
        if (c->ring != NULL) {
            /* Requests go through the rings once they are set up. */
            proto_error(c, "request on the socket of a ring connection");
            return;
        }
        conn_input(c, buf, (size_t)n);
        if ((size_t)n < READ_CHUNK)
            return;
    }
}

/* Takes ring messages. With arm, goes on until the ring is empty, which
 * arms its doorbell; without, takes only what is there (no system
 * call). True when something came. */
static bool read_ring(mgr_conn *c, bool arm)
{
    bool got = false;
    for (int k = 0; k < 64 && !c->closing && c->ring != NULL; k++) {
        if (!arm) {
            mproc__ringio *ri = mproc__conn_ringio(c->ring, false);
            if (ri == NULL || mproc__ring_readable(ri) == 0)
                return got;
        }
        void *p = NULL;
        size_t n = 0;
        int rc = mproc_conn_recv_alloc(c->ring, &p, &n, RING_MSG_MAX, 0);
        if (rc == MPROC_ETIMEDOUT) {
            set_hot(c, false); /* armed: its bell wakes the loop */
            return got;
        }
        if (rc < 0) {
            c->qlen = 0;
            conn_close(c);
            return got;
        }
        got = true;
        if (!c->ring_hot)
            set_hot(c, true);
        c->s->ring_busy = true;
        conn_input(c, p, n);
        free(p);
    }
    return got;
}

/* ----- timers ----- */

static void run_timers(mgr_srv *s, int64_t now)
{
    if (now < s->next_timer)
        return;
    int64_t next = INT64_MAX;
    for (mgr_conn *c = s->conns, *n; c != NULL; c = n) {
        n = c->next;
        if (c->parked) {
            if (c->park_deadline <= now)
                mproc__mgr_store_timeout(s->st, c);
            else if (c->park_deadline < next)
                next = c->park_deadline;
        }
        if (c->partial_since != 0 && s->request_timeout_ns > 0) {
            int64_t at = c->partial_since + s->request_timeout_ns;
            if (at <= now) {
                mproc__mgr_reply_error(c, "ERR request timed out");
                c->qlen = 0;
                conn_close(c);
            } else if (at < next) {
                next = at;
            }
        }
    }
    /* The owner may be gone where there is no pidfd to tell. */
    if (s->owner_pid > 0 && s->owner_fd < 0) {
        if (getppid() != s->owner_pid)
            s->stop = true;
        if (now + 1000000000 < next)
            next = now + 1000000000;
    }
    s->next_timer = next;
}

/* ----- setup ----- */

static int listen_unix(mgr_srv *s, const char *path,
                       const mproc_manager_opts *o)
{
    if (path[0] != '@') {
        struct stat st;
        if (lstat(path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode))
                return MPROC_EEXIST;
            /* A socket: stale when nothing listens there. */
            int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0)
                return -errno;
            struct sockaddr_un sa = {.sun_family = AF_UNIX};
            size_t pl = strlen(path);
            if (pl >= sizeof sa.sun_path) {
                close(fd);
                return MPROC_ENAMETOOLONG;
            }
            memcpy(sa.sun_path, path, pl + 1);
            int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
            int e = errno;
            close(fd);
            if (r == 0 || e != ECONNREFUSED || st.st_uid != geteuid())
                return MPROC_EEXIST;
            if (unlink(path) != 0 && errno != ENOENT)
                return -errno;
        }
    }
    mproc_listener_opts lo = MPROC_LISTENER_OPTS_INIT;
    lo.mode = o->mode != 0 ? o->mode : 0600u;
    lo.access = o->access;
    lo.backlog = 511;
    return mproc_listener_open(&s->ul, path, &lo);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
}

static int listen_tcp(mgr_srv *s, const char *spec, bool any_host,
                      unsigned *port_out)
{
    char buf[128];
    snprintf(buf, sizeof buf, "tcp:%s", spec);
    mgr_addr a;
    int rc = mproc__mgr_parse_addr(buf, &a);
    if (rc < 0)
        return MPROC_EINVAL;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (mproc__mgr_sockaddr(&a, &ss, &sl) < 0)
        return MPROC_EINVAL;
    if (!any_host && !is_loopback(&ss))
        return MPROC_EINVAL;
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 511) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &gl);
    *port_out = ntohs(got.ss_family == AF_INET
                          ? ((struct sockaddr_in *)&got)->sin_port
                          : ((struct sockaddr_in6 *)&got)->sin6_port);
    s->tcp_fd = fd;
    return 0;
}

static int ep_add(mgr_srv *s, int fd, mgr_ev *ev, int kind)
{
    ev->kind = kind;
    ev->c = NULL;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = ev};
    return epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e) == 0 ? 0 : -errno;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void srv_free(mgr_srv *s)
{
    while (s->conns != NULL)
        conn_close(s->conns);
    while (s->dead != NULL) {
        mgr_conn *c = s->dead;
        s->dead = c->next;
        conn_free(c);
    }
    mproc_listener_close(s->ul);
    if (s->tcp_fd >= 0)
        close(s->tcp_fd);
    if (s->owner_fd >= 0)
        close(s->owner_fd);
    if (s->sig_fd >= 0)
        close(s->sig_fd);
    if (s->sig_blocked)
        pthread_sigmask(SIG_SETMASK, &s->old_mask, NULL);
    if (s->ep >= 0)
        close(s->ep);
    mproc__mgr_store_destroy(s->st);
    memset(s->password, 0, sizeof s->password);
    free(s);
}

/* Sets up a server: listeners, epoll, the store. *port_out gets the TCP
 * port. */
static int srv_new(mgr_srv **out, const char *address,
                   const mproc_manager_opts *o, int ctrl_fd, pid_t owner,
                   unsigned *port_out)
{
    mgr_addr a;
    int rc = mproc__mgr_parse_addr(address, &a);
    if (rc < 0)
        return rc;
    if (a.kind != MGR_ADDR_UNIX)
        return MPROC_EINVAL;
    if (o->tcp != NULL && o->password_file == NULL)
        return MPROC_EINVAL;
    /* Bounds that keep the times below in range of an int64_t of ns. */
    if (o->spin_us > MAX_SPIN_US ||
        o->request_timeout_ms > MAX_REQUEST_TIMEOUT_MS)
        return MPROC_EINVAL;
    mgr_srv *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MPROC_ENOMEM;
    s->ep = s->tcp_fd = s->owner_fd = s->sig_fd = -1;
    s->ctrl_fd = ctrl_fd;
    s->owner_pid = owner;
    s->max_clients = o->max_clients ? o->max_clients : DEF_MAX_CLIENTS;
    s->max_request = o->max_request ? o->max_request : DEF_MAX_REQUEST;
    s->max_pending = o->max_pending ? o->max_pending : DEF_MAX_PENDING;
    int64_t rt =
        o->request_timeout_ms ? o->request_timeout_ms : DEF_REQUEST_TIMEOUT_MS;
    s->request_timeout_ns = rt < 0 ? 0 : rt * 1000000;
    s->spin_ns =
        o->spin_us == 0 ? -1 : (o->spin_us < 0 ? 0 : o->spin_us * 1000);
    s->next_timer = INT64_MAX;
    if (o->password_file != NULL) {
        rc = mproc__mgr_read_password(o->password_file, s->password,
                                      sizeof s->password, true);
        if (rc < 0)
            goto fail;
        s->password_len = strlen(s->password);
        s->has_password = true;
    }
    rc = mproc__mgr_store_create(&s->st);
    if (rc < 0)
        goto fail;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0) {
        rc = -errno;
        goto fail;
    }
    raise_nofile();
    rc = listen_unix(s, a.path, o);
    if (rc < 0)
        goto fail;
    rc = ep_add(s, mproc_listener_fd(s->ul), &s->ev_unix, EV_UNIX);
    if (rc == 0 && o->tcp != NULL) {
        rc = listen_tcp(s, o->tcp, o->tcp_any_host, port_out);
        if (rc == 0)
            rc = ep_add(s, s->tcp_fd, &s->ev_tcp, EV_TCP);
    }
    if (rc == 0 && ctrl_fd >= 0)
        rc = ep_add(s, ctrl_fd, &s->ev_ctrl, EV_CTRL);
    if (rc == 0 && owner > 0) {
        s->owner_fd = mproc__os_pidfd_open(owner);
        if (s->owner_fd >= 0)
            rc = ep_add(s, s->owner_fd, &s->ev_owner, EV_OWNER);
        else
            s->next_timer = 0;
        if (getppid() != owner)
            s->stop = true;
    }
    if (rc == 0 && o->handle_signals) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, &s->old_mask);
        s->sig_blocked = true;
        s->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        rc = s->sig_fd < 0 ? -errno : ep_add(s, s->sig_fd, &s->ev_sig, EV_SIG);
    }
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    srv_free(s);
    return rc;
}

/* ----- the loop ----- */

/* The first bell after the loop slept: what a wake-up costs here. */
static void note_wake(mgr_srv *s, mgr_conn *c)
{
    mproc__ringio *ri =
        c->ring != NULL ? mproc__conn_ringio(c->ring, false) : NULL;
    if (s->slept_ns != 0 && ri != NULL) {
        mproc__ring_note_bell(ri, s->slept_ns);
        s->slept_ns = 0;
    }
}

static void handle(mgr_srv *s, mgr_ev *ev, uint32_t events, char *buf)
{
    mgr_conn *c = ev->c;
    switch (ev->kind) {
    case EV_UNIX:
        accept_unix(s);
        break;
    case EV_TCP:
        accept_tcp(s);
        break;
    case EV_SIG: {
        /* Taken, so that it is not delivered when the mask comes back. */
        struct signalfd_siginfo si;
        (void)!read(s->sig_fd, &si, sizeof si);
        s->stop = true;
        break;
    }
    case EV_CTRL:
    case EV_OWNER:
        s->stop = true;
        break;
    case EV_SOCK:
        if (c->closing)
            break;
        if (events & EPOLLOUT)
            conn_flush(c);
        if (!c->closing && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            read_sock(c, buf);
        else if (!c->closing && (events & EPOLLRDHUP) && c->ring != NULL) {
            c->qlen = 0;
            conn_close(c);
        }
        break;
    case EV_RING:
        note_wake(s, c);
        /* A bell: take what is there without arming again (the loop arms
         * the ring when it goes to sleep). A bell left from a message the
         * spin took already is drained without arming, so the client's
         * next request goes unrung while the loop polls its ring; a
         * doorbell still readable after that is an EOF, which a receive
         * reports. */
        if (c->closing || read_ring(c, false) || c->closing)
            break; /* (a receive that failed closed it: no ring left) */
        mproc__conn_drain_doorbell(c->ring);
        struct pollfd pf = {.fd = mproc_conn_fd(c->ring), .events = POLLIN};
        if (poll(&pf, 1, 0) > 0)
            read_ring(c, true);
        else
            set_hot(c, true);
        break;
    }
}

/* Runs the requests of unparked clients, then sends what was said. */
static void settle(mgr_srv *s)
{
    while (s->run_head != NULL) {
        mgr_conn *c = s->run_head;
        s->run_head = c->run_next;
        if (s->run_head == NULL)
            s->run_tail = NULL;
        c->in_run = false;
        conn_run(c);
    }
    while (s->dirty != NULL) {
        mgr_conn *c = s->dirty;
        s->dirty = c->dirty_next;
        c->in_dirty = false;
        conn_flush(c);
    }
    while (s->dead != NULL) {
        mgr_conn *c = s->dead;
        s->dead = c->next;
        conn_free(c);
    }
}

/* Polls the hot rings without system calls: true when one had a message. */
static bool poll_hot(mgr_srv *s)
{
    bool got = false;
    for (mgr_conn *c = s->hot, *n; c != NULL; c = n) {
        n = c->hot_next;
        if (!c->closing && read_ring(c, false))
            got = true;
    }
    return got;
}

/* How long the loop polls busy rings before it sleeps: by default 50 us,
 * or as long as a wake-up costs on this machine when that is longer; none
 * with one CPU. (The wake-up cost alone, some 12 us here, let a client
 * that pipelines find the loop asleep between its batches: 11% fewer
 * calls a second.) */
static int64_t spin_ns(const mgr_srv *s)
{
    if (s->spin_ns >= 0)
        return s->spin_ns;
    int64_t b = mproc__spin_budget_ns();
    return b == 0 ? 0 : b > DEF_SPIN_NS ? b : DEF_SPIN_NS;
}

static int srv_loop(mgr_srv *s)
{
    char *buf = malloc(READ_CHUNK);
    if (buf == NULL)
        return MPROC_ENOMEM;
    struct epoll_event evs[64];
    int64_t spin_until = 0;
    while (!s->stop) {
        int64_t now = now_ns();
        bool retry_out = false;
        for (mgr_conn *c = s->hot; c != NULL; c = c->hot_next)
            retry_out |= c->ring_out;
        int timeout;
        if (now < spin_until || s->run_head != NULL) {
            timeout = 0;
        } else {
            /* Going to sleep: arm every ring that ran hot, which takes
             * what came meanwhile. */
            bool got = false;
            for (mgr_conn *c = s->hot, *n; c != NULL; c = n) {
                n = c->hot_next;
                if (!c->closing && c->ring_hot)
                    got |= read_ring(c, true);
                else if (!c->ring_out)
                    hot_del(c);
            }
            if (got) {
                settle(s);
                s->ring_busy = false;
                spin_until = now_ns() + spin_ns(s);
                continue;
            }
            if (s->next_timer == INT64_MAX)
                timeout = -1;
            else if (s->next_timer <= now)
                timeout = 0;
            else
                timeout = (int)((s->next_timer - now + 999999) / 1000000);
            if (retry_out && (timeout < 0 || timeout > 1))
                timeout = 1;
        }
        s->slept_ns = timeout != 0 ? now_ns() : 0;
        int n = epoll_wait(s->ep, evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            free(buf);
            return -errno;
        }
        for (int i = 0; i < n; i++)
            handle(s, evs[i].data.ptr, evs[i].events, buf);
        bool got = poll_hot(s);
        run_timers(s, now_ns());
        settle(s);
        if (retry_out)
            for (mgr_conn *c = s->hot; c != NULL; c = c->hot_next)
                if (c->ring_out)
                    mark_dirty(c);
        got |= s->ring_busy;
        s->ring_busy = false;
        if (got) {
            /* A ring client is busy: it will likely ask again within a
             * few us, so stay awake and look at the rings. */
            spin_until = now_ns() + spin_ns(s);
        } else if (n == 0 && now < spin_until) {
            /* Spin on the rings alone for a while before the next
             * epoll_wait: a client in a loop answers within a few us. */
            int64_t until = now_ns() + 20000;
            if (until > spin_until)
                until = spin_until;
            while (now_ns() < until) {
                if (poll_hot(s)) {
                    settle(s);
                    s->ring_busy = false;
                    spin_until = now_ns() + spin_ns(s);
                    break;
                }
                mproc__os_cpu_relax();
            }
        }
        settle(s);
    }
    free(buf);
    return 0;
}

/* ----- public: serve and start ----- */

static int serve_with(const char *address, const mproc_manager_opts *opts,
                      int ready_fd, int ctrl_fd, pid_t owner)
{
    mproc_manager_opts defaults = MPROC_MANAGER_OPTS_INIT;
    if (opts == NULL)
        opts = &defaults;
    mgr_srv *s = NULL;
    unsigned port = 0;
    int rc = srv_new(&s, address, opts, ctrl_fd, owner, &port);
    if (ready_fd >= 0) {
        int32_t msg[2] = {rc, (int32_t)port};
        (void)!write(ready_fd, msg, sizeof msg);
        close(ready_fd);
    }
    if (rc < 0)
        return rc;
    rc = srv_loop(s);
    srv_free(s);
    return rc;
}

int mproc_manager_serve(const char *address, const mproc_manager_opts *opts,
                        int ready_fd)
{
    if (address == NULL)
        return MPROC_EINVAL;
    return serve_with(address, opts, ready_fd, -1, 0);
}

struct mproc_manager {
    mproc_process *p;
    pid_t owner;
    int ctrl_w;
    char address[128];
    char tcp[96];
};

typedef struct start_args {
    const char *address;
    const mproc_manager_opts *opts;
    int ready_w, ctrl_r;
    pid_t owner;
} start_args;

static int server_main(void *arg)
{
    start_args *a = arg;
    signal(SIGPIPE, SIG_IGN);
    int rc = serve_with(a->address, a->opts, a->ready_w, a->ctrl_r, a->owner);
    return rc < 0 ? rc : 0;
}

static int read_ready(int fd, int32_t msg[2], int64_t timeout_ms)
{
    size_t got = 0;
    int64_t end = now_ns() + timeout_ms * 1000000;
    while (got < 2 * sizeof(int32_t)) {
        int64_t left = (end - now_ns()) / 1000000;
        if (left <= 0)
            return MPROC_ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? MPROC_ETIMEDOUT : -errno;
        ssize_t k = read(fd, (char *)msg + got, 2 * sizeof(int32_t) - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return MPROC_ECHILD;
        got += (size_t)k;
    }
    return 0;
}

int mproc_manager_start(mproc_manager **out, const char *address,
                        const mproc_manager_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_manager *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MPROC_ENOMEM;
    m->ctrl_w = -1;
    if (address == NULL) {
        unsigned char rnd[6];
        mproc__os_random(rnd, sizeof rnd);
        snprintf(m->address, sizeof m->address,
                 "unix:@mproc-mgr-%d-%02x%02x%02x%02x%02x%02x", (int)getpid(),
                 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    } else {
        mgr_addr a;
        int rc = mproc__mgr_parse_addr(address, &a);
        if (rc == 0 && a.kind != MGR_ADDR_UNIX)
            rc = MPROC_EINVAL;
        if (rc < 0) {
            free(m);
            return rc;
        }
        snprintf(m->address, sizeof m->address, "unix:%s", a.path);
    }
    int ready[2] = {-1, -1}, ctrl[2] = {-1, -1};
    int rc = 0;
    /* The control channel is a socket pair, so a terminate after the
     * server is gone gets EPIPE from send(MSG_NOSIGNAL), not SIGPIPE. */
    if (pipe2(ready, O_CLOEXEC) != 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctrl) != 0)
        rc = -errno;
    start_args a = {m->address, opts, ready[1], ctrl[0], getpid()};
    if (rc == 0) {
        int keep[2] = {ready[1], ctrl[0]};
        mproc_process_opts po = MPROC_PROCESS_OPTS_INIT;
        po.name = "mproc-manager";
        po.inherit_only = true;
        po.keep_fds = keep;
        po.n_keep_fds = 2;
        rc = mproc_process_start(&m->p, server_main, &a, &po);
    }
    if (ready[1] >= 0)
        close(ready[1]);
    if (ctrl[0] >= 0)
        close(ctrl[0]);
    int32_t msg[2] = {0, 0};
    if (rc == 0) {
        rc = read_ready(ready[0], msg, 10000);
        if (rc == 0)
            rc = msg[0];
        else if (rc == MPROC_ECHILD) {
            /* It ended before it said: its failure record says why. */
            mproc_process_join(m->p, 2000);
            const mproc_failure *f = mproc_process_error(m->p);
            rc = f != NULL && f->error < 0 ? f->error : MPROC_ECHILD;
        }
    }
    if (ready[0] >= 0)
        close(ready[0]);
    m->ctrl_w = ctrl[1];
    m->owner = getpid();
    if (rc < 0) {
        if (m->p != NULL) {
            mproc_process_kill(m->p);
            mproc_process_join(m->p, 2000);
            mproc_process_destroy(m->p);
        }
        if (m->ctrl_w >= 0)
            close(m->ctrl_w);
        free(m);
        return rc;
    }
    if (opts != NULL && opts->tcp != NULL) {
        mgr_addr t;
        char buf[128];
        snprintf(buf, sizeof buf, "tcp:%s", opts->tcp);
        if (mproc__mgr_parse_addr(buf, &t) == 0) {
            if (strchr(t.host, ':') != NULL)
                snprintf(m->tcp, sizeof m->tcp, "tcp:[%s]:%u", t.host,
                         (unsigned)msg[1]);
            else
                snprintf(m->tcp, sizeof m->tcp, "tcp:%s:%u",
                         strcmp(t.host, "localhost") == 0 ? "127.0.0.1"
                                                          : t.host,
                         (unsigned)msg[1]);
        }
    }
    *out = m;
    return 0;
}

const char *mproc_manager_address(const mproc_manager *m)
{
    return m != NULL ? m->address : NULL;
}

const char *mproc_manager_tcp_address(const mproc_manager *m)
{
    return m != NULL && m->tcp[0] != '\0' ? m->tcp : NULL;
}

pid_t mproc_manager_pid(const mproc_manager *m)
{
    return m != NULL ? mproc_process_pid(m->p) : 0;
}

int mproc_manager_terminate(mproc_manager *m)
{
    if (m == NULL)
        return MPROC_EINVAL;
    if (m->owner != getpid())
        return MPROC_ENOTOWNER;
    if (m->ctrl_w >= 0) {
        (void)!send(m->ctrl_w, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(m->ctrl_w);
        m->ctrl_w = -1;
    }
    return 0;
}

int mproc_manager_join(mproc_manager *m, int64_t timeout_ms)
{
    if (m == NULL)
        return MPROC_EINVAL;
    if (m->owner != getpid())
        return MPROC_ENOTOWNER;
    int rc = mproc_process_join(m->p, timeout_ms);
    if (rc == MPROC_ESTATE)
        rc = 0; /* joined before */
    if (rc < 0)
        return rc;
    int code = 0;
    mproc_process_exitcode(m->p, &code);
    return code == 0 ? 0 : MPROC_ECHILD;
}

void mproc_manager_destroy(mproc_manager *m)
{
    if (m == NULL)
        return;
    if (m->owner == getpid()) {
        mproc_manager_terminate(m);
        if (mproc_process_join(m->p, 2000) == MPROC_ETIMEDOUT) {
            mproc_process_kill(m->p);
            mproc_process_join(m->p, 2000);
        }
    } else if (m->ctrl_w >= 0) {
        close(m->ctrl_w);
    }
    mproc_process_destroy(m->p);
    free(m);
}

/* ----- fuzzing ----- */

int mproc__mgr_fuzz_one(const uint8_t *data, size_t n)
{
    mgr_store *st = NULL;
    if (mproc__mgr_store_create(&st) < 0)
        return 0;
    mgr_conn *c = conn_new(NULL, -1, NULL, false);
    mgr_conn *d = conn_new(NULL, -1, NULL, false);
    if (c == NULL || d == NULL) {
        if (c)
            conn_free(c);
        if (d)
            conn_free(d);
        mproc__mgr_store_destroy(st);
        return 0;
    }
    d->id = 2;
    /* The first byte chooses the piece size, so requests are cut at
     * every place; the rest is the stream, run after each piece as the
     * loop would. */
    size_t piece = n > 0 ? (size_t)(data[0] % 61) + 1 : 1;
    size_t i = n > 0 ? 1 : 0;
    while (i < n && !c->closing) {
        size_t k = piece < n - i ? piece : n - i;
        conn_input(c, (const char *)data + i, k);
        i += k;
        while (!c->closing && !c->parked && c->qhead != NULL) {
            mgr_req *r = c->qhead;
            c->qhead = r->next;
            if (c->qhead == NULL)
                c->qtail = NULL;
            c->qlen--;
            /* Commands with names of odd length run as a second client,
             * so that locks and waits meet another owner. */
            mgr_conn *who = (r->argl[0] & 1) && !d->parked ? d : c;
            mproc__mgr_exec(st, who, r);
            mproc__mgr_req_free(r);
            c->out.len = c->out_off = 0;
            d->out.len = d->out_off = 0;
        }
        if (c->parked)
            mproc__mgr_store_timeout(st, c);
        if (d->parked)
            mproc__mgr_store_timeout(st, d);
        c->out.len = c->out_off = 0;
        d->out.len = d->out_off = 0;
    }
    mproc__mgr_store_disconnect(st, c);
    mproc__mgr_store_disconnect(st, d);
    conn_free(c);
    conn_free(d);
    mproc__mgr_store_destroy(st);
    return 0;
}
