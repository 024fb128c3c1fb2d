/*
 * A manager connection as the store's commands see it: the replies they
 * append (RESP2), who the client is, and parking a client whose command
 * blocks. What needs the server's loop (sending, closing, running the
 * next request, a deadline) goes through the server's mgr_conn_ops. Also
 * the growable buffers and the text of numbers that the server, the store
 * and the client share.
 */
#include "internal/manager_conn.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/error.h"

/* ----- buffers ----- */

int mproc__mgr_buf_add(mgr_buf *b, const void *data, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2)
                return MPROC_ENOMEM;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return MPROC_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void mproc__mgr_buf_free(mgr_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ----- numbers ----- */

bool mproc__mgr_parse_double(const char *p, size_t n, double *out)
{
    if (n == 0 || n > 300 || isspace((unsigned char)p[0]))
        return false;
    char buf[320];
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end != '\0' || isnan(v) || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

size_t mproc__mgr_fmt_double(char *buf, size_t cap, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        int n = snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || prec == 17)
            return (size_t)n;
    }
    return 0;
}

static void out_add(mgr_conn *c, const void *p, size_t n)
{
    if (c->closing)
        return;
    if (c->out.len - c->out_off + n > MGR_OUT_LIMIT ||
        mproc__mgr_buf_add(&c->out, p, n) < 0) {
        c->ops->close(c);
        return;
    }
    c->ops->wrote(c);
}

/* ----- replies ----- */

void mproc__mgr_reply_status(mgr_conn *c, const char *s)
{
    out_add(c, "+", 1);
    out_add(c, s, strlen(s));
    out_add(c, "\r\n", 2);
}

void mproc__mgr_reply_error(mgr_conn *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + 1, sizeof buf - 3, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t len = (size_t)n < sizeof buf - 4 ? (size_t)n : sizeof buf - 4;
    /* An error reply is one line. */
    for (size_t i = 1; i <= len; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    buf[0] = '-';
    memcpy(buf + 1 + len, "\r\n", 2);
    out_add(c, buf, len + 3);
}

void mproc__mgr_reply_int(mgr_conn *c, long long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, ":%lld\r\n", v);
    out_add(c, buf, (size_t)n);
}

void mproc__mgr_reply_bulk(mgr_conn *c, const void *p, size_t n)
{
    char buf[32];
    int k = snprintf(buf, sizeof buf, "$%zu\r\n", n);
    out_add(c, buf, (size_t)k);
    out_add(c, p, n);
    out_add(c, "\r\n", 2);
}

void mproc__mgr_reply_nil(mgr_conn *c)
{
    out_add(c, "$-1\r\n", 5);
}

void mproc__mgr_reply_array(mgr_conn *c, long long n)
{
    char buf[32];
    int k = snprintf(buf, sizeof buf, "*%lld\r\n", n);
    out_add(c, buf, (size_t)k);
}

void mproc__mgr_reply_double(mgr_conn *c, double v)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%.17g", v);
    mproc__mgr_reply_bulk(c, buf, (size_t)n);
}

uint64_t mproc__mgr_conn_id(const mgr_conn *c)
{
    return c->id;
}

bool mproc__mgr_conn_is_tcp(const mgr_conn *c)
{
    return c->tcp;
}

bool mproc__mgr_conn_alive(mgr_conn *c)
{
    if (c->closing)
        return false;
    if (c->fd < 0)
        return true;
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    return !(poll(&p, 1, 0) > 0 &&
             (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0);
}

void mproc__mgr_conn_drop(mgr_conn *c)
{
    c->qlen = 0;
    c->ops->close(c);
}

pid_t mproc__mgr_conn_pid(const mgr_conn *c)
{
    return c->pid;
}

void **mproc__mgr_conn_store_slot(mgr_conn *c)
{
    return &c->store_slot;
}

/* ----- parking ----- */

void mproc__mgr_park(mgr_conn *c, int op, int64_t deadline_ns)
{
    c->parked = true;
    c->park_op = op;
    c->park_deadline = deadline_ns;
    c->ops->deadline(c, deadline_ns);
}

void mproc__mgr_unpark(mgr_conn *c)
{
    if (!c->parked)
        return;
    c->parked = false;
    c->ops->runnable(c);
}

bool mproc__mgr_is_parked(const mgr_conn *c)
{
    return c->parked;
}

int mproc__mgr_park_op(const mgr_conn *c)
{
    return c->park_op;
}
