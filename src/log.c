/*
 * Process-safe logging. A format string is compiled once into pieces
 * (literal text and fields with their printf spec); each record is built in
 * one buffer (on the stack when it fits) and handed to each sink with one
 * write(2), which is what keeps records from many processes whole in an
 * O_APPEND file. The write path takes no lock and allocates only for long
 * records.
 */
#include "mproc/log.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal/frame.h"
#include "internal/registry.h"
#include "internal/self.h"
#include "os/os.h"
#include "os/task.h"

#define LEVEL_MAX 99    /* the highest level a record may have */
#define NAME_MAX_ 64    /* logger name, NUL included */
#define DATEFMT_MAX 128 /* datefmt, NUL included */
#define PIECES_MAX 512  /* more than a MPROC_LOG_FORMAT_MAX format can make */
#define STACK_RECORD 2048
#define STACK_MESSAGE 1024

enum field {
    F_LITERAL,
    F_NAME,
    F_LEVELNAME,
    F_LEVELNO,
    F_MESSAGE,
    F_ASCTIME,
    F_CREATED,
    F_MSECS,
    F_RELATIVE,
    F_PROCESS,
    F_PROCESSNAME,
    F_THREAD,
    F_PATHNAME,
    F_FILENAME,
    F_MODULE,
    F_LINENO,
    F_FUNCNAME,
};

enum vtype { V_STR, V_INT, V_NUM };

static const struct {
    const char *name;
    unsigned char field;
    unsigned char type;
} fields[] = {
    {"name", F_NAME, V_STR},         {"levelname", F_LEVELNAME, V_STR},
    {"levelno", F_LEVELNO, V_INT},   {"message", F_MESSAGE, V_STR},
    {"asctime", F_ASCTIME, V_STR},   {"created", F_CREATED, V_NUM},
    {"msecs", F_MSECS, V_NUM},       {"relativeCreated", F_RELATIVE, V_NUM},
    {"process", F_PROCESS, V_INT},   {"processName", F_PROCESSNAME, V_STR},
    {"thread", F_THREAD, V_INT},     {"pathname", F_PATHNAME, V_STR},
    {"filename", F_FILENAME, V_STR}, {"module", F_MODULE, V_STR},
    {"lineno", F_LINENO, V_INT},     {"funcName", F_FUNCNAME, V_STR},
};

/* How a field is printed: copied as is (no flags, width or precision), or
 * through snprintf with the stored spec taking a string, a long long or a
 * double. */
enum how { H_PLAIN, H_STR, H_LL, H_DBL };

struct piece {
    unsigned char field;
    unsigned char how;
    uint16_t off; /* literal text, or the spec's NUL-terminated string */
    uint16_t len; /* literal length */
};

/* A compiled format. Never changed once published; a replaced one is kept
 * on the logger's retired list until destroy, so writers that loaded it
 * stay safe without a lock. */
struct fmt {
    struct fmt *retired_next;
    uint64_t date_id; /* 0: the default asctime; else unique per datefmt */
    int npieces;
    bool has_datefmt;
    char datefmt[DATEFMT_MAX];
    struct piece p[PIECES_MAX];
    char text[3 * MPROC_LOG_FORMAT_MAX];
};

enum sink_kind { S_PLAIN, S_FIFO, S_SOCK, S_OTHER };

struct sink {
    int fd;
    int level;
    unsigned char kind;
    bool owned;
};

struct mproc_log {
    atomic_int level;
    atomic_int nsinks; /* slots below it are filled and never change */
    _Atomic(struct fmt *) fmt;
    struct sink sinks[MPROC_LOG_SINKS_MAX];
    pthread_mutex_t cfg; /* serializes add_* and set_format, never writes */
    struct fmt *retired;
    int64_t created_ns;
    bool is_default;
    char name[NAME_MAX_];
    mproc__reg_node reg; /* its sinks stay open in a child (registry.h) */
};

static size_t log_fds(const mproc__reg_node *n, int *out, size_t cap)
{
    const mproc_log *lg = n->obj;
    int k = atomic_load(&lg->nsinks);
    for (int i = 0; i < k && (size_t)i < cap; i++)
        out[i] = lg->sinks[i].fd;
    return (size_t)k;
}

static const mproc__reg_ops log_reg_ops = {log_fds, NULL};

static atomic_uint_fast64_t next_date_id = 1;

static bool threshold_ok(int level)
{
    return level >= MPROC_LOG_NOTSET && level <= MPROC_LOG_OFF;
}

static bool record_level_ok(int level)
{
    return level >= 1 && level <= LEVEL_MAX;
}

/* ---- format compilation ---- */

static int lookup_field(const char *name, size_t n, unsigned *field,
                        unsigned *type)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strlen(fields[i].name) == n &&
            memcmp(fields[i].name, name, n) == 0) {
            *field = fields[i].field;
            *type = fields[i].type;
            return 0;
        }
    }
    return MPROC_EINVAL;
}

/* Appends to f->text; the sizes are bounded by MPROC_LOG_FORMAT_MAX, so the
 * check only guards the invariant. */
static int text_put(struct fmt *f, size_t *used, const char *s, size_t n)
{
    if (*used + n > sizeof f->text)
        return MPROC_EINVAL;
    memcpy(f->text + *used, s, n);
    *used += n;
    return 0;
}

static int add_piece(struct fmt *f, unsigned field, unsigned how, size_t off,
                     size_t len)
{
    if (f->npieces >= PIECES_MAX)
        return MPROC_EINVAL;
    struct piece *p = &f->p[f->npieces++];
    p->field = (unsigned char)field;
    p->how = (unsigned char)how;
    p->off = (uint16_t)off;
    p->len = (uint16_t)len;
    return 0;
}

/* Compiles format (and datefmt, NULL for the default) into f. */
static int compile(struct fmt *f, const char *format, const char *datefmt)
{
    if (format == NULL)
        return MPROC_EINVAL;
    size_t flen = strlen(format);
    if (flen > MPROC_LOG_FORMAT_MAX)
        return MPROC_EINVAL;
    memset(f, 0, offsetof(struct fmt, p));
    if (datefmt != NULL) {
        size_t dlen = strlen(datefmt);
        if (dlen >= sizeof f->datefmt)
            return MPROC_EINVAL;
        memcpy(f->datefmt, datefmt, dlen + 1);
        f->has_datefmt = true;
        f->date_id = atomic_fetch_add(&next_date_id, 1);
    }
    size_t used = 0;
    const char *s = format;
    while (*s != '\0') {
        /* A literal run, with "%%" folded into '%'. */
        size_t start = used;
        while (*s != '\0' && !(s[0] == '%' && s[1] != '%')) {
            if (text_put(f, &used, s, 1) != 0)
                return MPROC_EINVAL;
            s += s[0] == '%' ? 2 : 1;
        }
        if (used > start &&
            add_piece(f, F_LITERAL, H_PLAIN, start, used - start) != 0)
            return MPROC_EINVAL;
        if (*s == '\0')
            break;
        /* s[0] == '%' and s[1] != '%': it must be "%(name)spec". */
        if (s[1] != '(')
            return MPROC_EINVAL;
        const char *name = s + 2;
        const char *close = strchr(name, ')');
        if (close == NULL)
            return MPROC_EINVAL;
        unsigned field, type;
        if (lookup_field(name, (size_t)(close - name), &field, &type) != 0)
            return MPROC_EINVAL;
        const char *spec = close + 1;
        const char *q = spec;
        while (*q != '\0' && strchr("-#0+ ", *q) != NULL)
            q++;
        for (int i = 0; *q >= '0' && *q <= '9'; q++)
            if (++i > 4)
                return MPROC_EINVAL;
        if (*q == '.') {
            q++;
            for (int i = 0; *q >= '0' && *q <= '9'; q++)
                if (++i > 4)
                    return MPROC_EINVAL;
        }
        char conv = *q;
        char cbuf[2] = {conv, '\0'};
        if (conv == '\0')
            return MPROC_EINVAL;
        size_t speclen = (size_t)(q - spec); /* flags, width, precision */
        unsigned how;
        const char *cconv; /* the C conversion with its length modifier */
        switch (type) {
        case V_STR:
            if (conv != 's')
                return MPROC_EINVAL;
            how = H_STR, cconv = "s";
            break;
        case V_INT:
            if (conv == 's')
                how = H_STR, cconv = "s"; /* printed as decimal text */
            else if (conv == 'd' || conv == 'i')
                how = H_LL, cconv = "lld";
            else if (conv == 'o')
                how = H_LL, cconv = "llo";
            else if (conv == 'x')
                how = H_LL, cconv = "llx";
            else if (conv == 'X')
                how = H_LL, cconv = "llX";
            else
                return MPROC_EINVAL;
            break;
        default: /* V_NUM */
            if (conv == 'd' || conv == 'i')
                how = H_LL, cconv = "lld";
            else if (strchr("fFeEgG", conv) != NULL)
                how = H_DBL, cconv = cbuf;
            else
                return MPROC_EINVAL;
            break;
        }
        /* A bare %(x)s or %(x)d is copied without snprintf. */
        bool plain =
            speclen == 0 && (conv == 's' || (how == H_LL && conv != 'o' &&
                                             conv != 'x' && conv != 'X'));
        size_t off = used;
        if (plain) {
            how = H_PLAIN;
        } else {
            char c = '%';
            if (text_put(f, &used, &c, 1) != 0 ||
                text_put(f, &used, spec, speclen) != 0 ||
                text_put(f, &used, cconv, strlen(cconv) + 1) != 0)
                return MPROC_EINVAL;
        }
        if (add_piece(f, field, how, off, 0) != 0)
            return MPROC_EINVAL;
        s = q + 1;
    }
    return 0;
}

/* ---- record building ---- */

/* The record under construction. cap always leaves room for snprintf's NUL
 * and never exceeds MPROC_LOG_RECORD_MAX + 1. */
struct out {
    char *buf;
    size_t len, cap;
    char *heap;
    bool cut;
};

/* Makes room for n more bytes (plus a NUL); false when it cannot. */
static bool out_room(struct out *o, size_t n)
{
    if (o->cap - o->len > n)
        return true;
    if (o->cap >= MPROC_LOG_RECORD_MAX + 1)
        return false;
    size_t want = o->len + n + 1;
    if (want < 2 * o->cap)
        want = 2 * o->cap;
    if (want > MPROC_LOG_RECORD_MAX + 1)
        want = MPROC_LOG_RECORD_MAX + 1;
    char *nb = realloc(o->heap, want);
    if (nb == NULL)
        return false;
    if (o->heap == NULL)
        memcpy(nb, o->buf, o->len);
    o->heap = o->buf = nb;
    o->cap = want;
    return o->cap - o->len > n;
}

static void out_put(struct out *o, const char *s, size_t n)
{
    if (!out_room(o, n)) {
        n = o->cap - o->len - 1;
        o->cut = true;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void out_printf(struct out *o, const char *spec, ...) MPROC_PRINTF(2, 3);

static void out_printf(struct out *o, const char *spec, ...)
{
    va_list ap;
    va_start(ap, spec);
    size_t room = o->cap - o->len;
    int n = vsnprintf(o->buf + o->len, room, spec, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < room) {
        o->len += (size_t)n;
        return;
    }
    if (out_room(o, (size_t)n)) {
        va_start(ap, spec);
        (void)vsnprintf(o->buf + o->len, o->cap - o->len, spec, ap);
        va_end(ap);
        o->len += (size_t)n;
        return;
    }
    /* At the size limit: write what fits into the current buffer (it may
     * have moved while growing) and mark the record cut. */
    va_start(ap, spec);
    (void)vsnprintf(o->buf + o->len, o->cap - o->len, spec, ap);
    va_end(ap);
    o->len = o->cap - 1;
    o->cut = true;
}

/* Decimal text of v into buf (at least 24 bytes); returns its length. */
static size_t fmt_ll(char *buf, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u =
        v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n > 0)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

/* The asctime text of one second, cached per thread: localtime_r and
 * strftime run once a second per thread, not per record. */
static _Thread_local struct {
    int64_t sec;
    uint64_t date_id;
    bool valid;
    size_t len;
    char text[128];
} asc_cache;

/* buf has room for asc_cache.text plus ",mmm". */
static const char *asctime_of(const struct fmt *f, int64_t now_ns, char *buf)
{
    int64_t sec = now_ns / 1000000000;
    int msecs = (int)(now_ns / 1000000 % 1000);
    if (!asc_cache.valid || asc_cache.sec != sec ||
        asc_cache.date_id != f->date_id) {
        time_t t = (time_t)sec;
        struct tm tm;
        size_t n = 0;
        if (localtime_r(&t, &tm) != NULL)
            n = strftime(asc_cache.text, sizeof asc_cache.text,
                         f->has_datefmt ? f->datefmt : "%Y-%m-%d %H:%M:%S",
                         &tm);
        asc_cache.text[n] = '\0';
        asc_cache.len = n;
        asc_cache.sec = sec;
        asc_cache.date_id = f->date_id;
        asc_cache.valid = true;
    }
    if (f->has_datefmt)
        return asc_cache.text;
    /* Python's default_msec_format "%s,%03d". */
    memcpy(buf, asc_cache.text, asc_cache.len);
    buf[asc_cache.len] = ',';
    buf[asc_cache.len + 1] = (char)('0' + msecs / 100);
    buf[asc_cache.len + 2] = (char)('0' + msecs / 10 % 10);
    buf[asc_cache.len + 3] = (char)('0' + msecs % 10);
    buf[asc_cache.len + 4] = '\0';
    return buf;
}

static const char *level_name(int level, char *buf)
{
    switch (level) {
    case MPROC_LOG_DEBUG:
        return "DEBUG";
    case MPROC_LOG_INFO:
        return "INFO";
    case MPROC_LOG_WARNING:
        return "WARNING";
    case MPROC_LOG_ERROR:
        return "ERROR";
    case MPROC_LOG_CRITICAL:
        return "CRITICAL";
    default:
        memcpy(buf, "Level ", 6);
        fmt_ll(buf + 6, level);
        return buf;
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

/* The base name without its extension (Python's %(module)s), cut to fit. */
static const char *module_name(const char *path, char *buf, size_t n)
{
    const char *base = base_name(path);
    const char *dot = strrchr(base, '.');
    size_t len = dot != NULL ? (size_t)(dot - base) : strlen(base);
    if (len >= n)
        len = n - 1;
    memcpy(buf, base, len);
    buf[len] = '\0';
    return buf;
}

struct record {
    const mproc_log *lg;
    int level;
    const char *file;
    int line;
    const char *func;
    const char *message;
    int64_t now_ns;
};

static void put_field(struct out *o, const struct fmt *f, const struct piece *p,
                      const struct record *r)
{
    char num[32];
    char asc[160];
    char lvl[32];
    char mod[NAME_MAX_];
    const char *str = NULL;
    long long ival = 0;
    double dval = 0;
    bool is_num = false; /* V_NUM: dval holds the value */

    switch (p->field) {
    case F_NAME:
        str = r->lg->name;
        break;
    case F_LEVELNAME:
        str = level_name(r->level, lvl);
        break;
    case F_LEVELNO:
        ival = r->level;
        break;
    case F_MESSAGE:
        str = r->message;
        break;
    case F_ASCTIME:
        str = asctime_of(f, r->now_ns, asc);
        break;
    case F_CREATED:
        dval = (double)r->now_ns / 1e9;
        is_num = true;
        break;
    case F_MSECS:
        dval = (double)(r->now_ns / 1000000 % 1000);
        is_num = true;
        break;
    case F_RELATIVE:
        dval = (double)(r->now_ns - r->lg->created_ns) / 1e6;
        is_num = true;
        break;
    case F_PROCESS:
        ival = mproc__os_self_pid();
        break;
    case F_PROCESSNAME:
        str = mproc__self_name();
        break;
    case F_THREAD:
        ival = mproc__os_self_tid();
        break;
    case F_PATHNAME:
        str = r->file != NULL ? r->file : "(unknown file)";
        break;
    case F_FILENAME:
        str = r->file != NULL ? base_name(r->file) : "(unknown file)";
        break;
    case F_MODULE:
        str = r->file != NULL ? module_name(r->file, mod, sizeof mod)
                              : "(unknown module)";
        break;
    case F_LINENO:
        ival = r->line;
        break;
    default: /* F_FUNCNAME */
        str = r->func != NULL ? r->func : "(unknown function)";
        break;
    }
    if (is_num)
        ival = (long long)dval;
    const char *spec = f->text + p->off;
    switch (p->how) {
    case H_PLAIN:
        if (str != NULL) {
            out_str(o, str);
        } else {
            size_t n = fmt_ll(num, ival);
            out_put(o, num, n);
        }
        break;
    case H_STR:
        if (str == NULL) {
            fmt_ll(num, ival);
            str = num;
        }
        out_printf(o, spec, str);
        break;
    case H_LL:
        out_printf(o, spec, ival);
        break;
    default: /* H_DBL */
        out_printf(o, spec, dval);
        break;
    }
}

/* Ends the record with '\n', or with the truncation mark when it was cut
 * or does not fit the limit (MPROC_LOG_RECORD_MAX, or the stack buffer when
 * the heap was not available). */
static void out_finish(struct out *o)
{
    static const char mark[] = MPROC_LOG_TRUNCATED_MARK;
    size_t marklen = sizeof mark - 1;
    size_t limit =
        o->cap < MPROC_LOG_RECORD_MAX ? o->cap : MPROC_LOG_RECORD_MAX;
    if (!o->cut && o->len + 1 <= limit) {
        o->buf[o->len++] = '\n';
        return;
    }
    if (o->len > limit - marklen)
        o->len = limit - marklen;
    memcpy(o->buf + o->len, mark, marklen);
    o->len += marklen;
}

/* ---- sinks ---- */

/* One write of the whole record; a short write (a pipe record above
 * PIPE_BUF, a full disk) continues with the rest. Only a regular file
 * cannot raise SIGPIPE; every other kind goes through the I/O layer's
 * SIGPIPE-free writes, so a gone reader is MPROC_EPIPE, not a dead process. */
static int sink_write(struct sink *s, const char *p, size_t n)
{
    while (n > 0) {
        struct iovec v = {(void *)p, n};
        ssize_t w;
        if (s->kind == S_SOCK)
            w = send(s->fd, p, n, MSG_NOSIGNAL);
        else if (s->kind == S_FIFO)
            w = mproc__io_pipe_write(s->fd, &v, 1, false);
        else if (s->kind == S_OTHER)
            w = mproc__io_writev_nosigpipe(s->fd, &v, 1);
        else
            w = write(s->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- the logger ---- */

static void log_init(mproc_log *lg, int level, const char *name)
{
    atomic_init(&lg->level, level);
    atomic_init(&lg->nsinks, 0);
    lg->retired = NULL;
    lg->created_ns = mproc__os_realtime_ns();
    size_t n = strlen(name);
    if (n >= sizeof lg->name)
        n = sizeof lg->name - 1;
    memcpy(lg->name, name, n);
    lg->name[n] = '\0';
}

static mproc_log default_log = {.cfg = PTHREAD_MUTEX_INITIALIZER};
static struct fmt default_fmt;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    log_init(&default_log, MPROC_LOG_WARNING, "mproc");
    default_log.is_default = true;
    mproc__reg_add(&default_log.reg, &log_reg_ops, &default_log);
    /* The constant default format always compiles. */
    (void)compile(&default_fmt, MPROC_LOG_DEFAULT_FORMAT, NULL);
    atomic_init(&default_log.fmt, &default_fmt);
}

mproc_log *mproc_log_default(void)
{
    pthread_once(&default_once, default_init);
    return &default_log;
}

int mproc_log_create(mproc_log **out, const mproc_log_opts *opts)
{
    static const mproc_log_opts defaults = MPROC_LOG_OPTS_INIT;
    if (opts == NULL)
        opts = &defaults;
    if (out == NULL || !threshold_ok(opts->level))
        return MPROC_EINVAL;
    struct fmt *f = malloc(sizeof *f);
    if (f == NULL)
        return MPROC_ENOMEM;
    int rc = compile(
        f, opts->format != NULL ? opts->format : MPROC_LOG_DEFAULT_FORMAT,
        opts->datefmt);
    if (rc != 0) {
        free(f);
        return rc;
    }
    mproc_log *lg = calloc(1, sizeof *lg);
    if (lg == NULL) {
        free(f);
        return MPROC_ENOMEM;
    }
    if (pthread_mutex_init(&lg->cfg, NULL) != 0) {
        free(lg);
        free(f);
        return MPROC_ENOMEM;
    }
    log_init(lg, opts->level, opts->name != NULL ? opts->name : "mproc");
    atomic_init(&lg->fmt, f);
    mproc__reg_add(&lg->reg, &log_reg_ops, lg);
    *out = lg;
    return 0;
}

void mproc_log_destroy(mproc_log *lg)
{
    if (lg == NULL || lg->is_default)
        return;
    mproc__reg_remove(&lg->reg);
    int n = atomic_load(&lg->nsinks);
    for (int i = 0; i < n; i++)
        if (lg->sinks[i].owned)
            mproc__os_close(lg->sinks[i].fd);
    struct fmt *f = atomic_load(&lg->fmt);
    free(f);
    while (lg->retired != NULL) {
        f = lg->retired;
        lg->retired = f->retired_next;
        free(f);
    }
    pthread_mutex_destroy(&lg->cfg);
    free(lg);
}

static int sink_opts_check(const mproc_log_sink_opts *o)
{
    if (!threshold_ok(o->level) || o->mode > 07777)
        return MPROC_EINVAL;
    return 0;
}

/* Publishes a sink; the caller holds lg->cfg. */
static int sink_add_locked(mproc_log *lg, int fd, int level, bool owned)
{
    int n = atomic_load_explicit(&lg->nsinks, memory_order_relaxed);
    if (n >= MPROC_LOG_SINKS_MAX)
        return MPROC_ENOSPC;
    struct stat st;
    /* Only a regular file can never raise SIGPIPE; every other kind (a
     * pipe, a terminal that may be a pty, a character device) gets SIGPIPE
     * blocked around its writes. Sockets use MSG_NOSIGNAL instead. */
    unsigned char kind = S_OTHER;
    if (fstat(fd, &st) == 0) {
        if (S_ISREG(st.st_mode))
            kind = S_PLAIN;
        else if (S_ISFIFO(st.st_mode))
            kind = S_FIFO;
        else if (S_ISSOCK(st.st_mode))
            kind = S_SOCK;
    }
    struct sink *s = &lg->sinks[n];
    s->fd = fd;
    s->level = level;
    s->kind = kind;
    s->owned = owned;
    atomic_store_explicit(&lg->nsinks, n + 1, memory_order_release);
    return 0;
}

/* The default logger is reachable only through mproc_log_default(), which
 * initializes it, so no other call needs the once-guard. */
static void lock_cfg(mproc_log *lg)
{
    pthread_mutex_lock(&lg->cfg);
}

int mproc_log_add_file(mproc_log *lg, const char *path,
                       const mproc_log_sink_opts *opts)
{
    static const mproc_log_sink_opts defaults = MPROC_LOG_SINK_OPTS_INIT;
    if (opts == NULL)
        opts = &defaults;
    if (lg == NULL || path == NULL || sink_opts_check(opts) != 0)
        return MPROC_EINVAL;
    lock_cfg(lg);
    int rc = MPROC_ENOSPC;
    if (atomic_load(&lg->nsinks) < MPROC_LOG_SINKS_MAX) {
        int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC;
        if (opts->truncate)
            flags |= O_TRUNC;
        int fd;
        do
            fd = open(path, flags, opts->mode != 0 ? (mode_t)opts->mode : 0600);
        while (fd < 0 && errno == EINTR);
        if (fd < 0) {
            rc = -errno;
        } else {
            rc = sink_add_locked(lg, fd, opts->level, true);
            if (rc != 0)
                mproc__os_close(fd);
        }
    }
    pthread_mutex_unlock(&lg->cfg);
    return rc;
}

static int check_fd(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return MPROC_EBADF;
    if ((fl & O_ACCMODE) == O_RDONLY)
        return MPROC_EBADF; /* open, but not for writing */
    return 0;
}

int mproc_log_add_fd(mproc_log *lg, int fd, const mproc_log_sink_opts *opts)
{
    static const mproc_log_sink_opts defaults = MPROC_LOG_SINK_OPTS_INIT;
    if (opts == NULL)
        opts = &defaults;
    if (lg == NULL || fd < 0 || sink_opts_check(opts) != 0)
        return MPROC_EINVAL;
    int rc = check_fd(fd);
    if (rc != 0)
        return rc;
    lock_cfg(lg);
    rc = sink_add_locked(lg, fd, opts->level, opts->close_fd);
    pthread_mutex_unlock(&lg->cfg);
    return rc;
}

int mproc_log_add_stderr(mproc_log *lg, const mproc_log_sink_opts *opts)
{
    mproc_log_sink_opts o = MPROC_LOG_SINK_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    o.close_fd = false;
    return mproc_log_add_fd(lg, STDERR_FILENO, &o);
}

int mproc_log_set_level(mproc_log *lg, int level)
{
    if (lg == NULL || !threshold_ok(level))
        return MPROC_EINVAL;
    atomic_store_explicit(&lg->level, level, memory_order_relaxed);
    return 0;
}

int mproc_log_level(const mproc_log *lg)
{
    if (lg == NULL)
        return MPROC_EINVAL;
    return atomic_load_explicit(&lg->level, memory_order_relaxed);
}

bool mproc_log_is_enabled(const mproc_log *lg, int level)
{
    return lg != NULL && record_level_ok(level) &&
           level >= atomic_load_explicit(&lg->level, memory_order_relaxed);
}

int mproc_log_set_format(mproc_log *lg, const char *format, const char *datefmt)
{
    if (lg == NULL || format == NULL)
        return MPROC_EINVAL;
    struct fmt *f = malloc(sizeof *f);
    if (f == NULL)
        return MPROC_ENOMEM;
    int rc = compile(f, format, datefmt);
    if (rc != 0) {
        free(f);
        return rc;
    }
    lock_cfg(lg);
    struct fmt *old = atomic_exchange(&lg->fmt, f);
    if (old != &default_fmt) {
        old->retired_next = lg->retired;
        lg->retired = old;
    }
    pthread_mutex_unlock(&lg->cfg);
    return 0;
}

int mproc_log_to_stderr(int level)
{
    if (!threshold_ok(level))
        return MPROC_EINVAL;
    mproc_log *lg = mproc_log_default();
    lock_cfg(lg);
    /* Once: a stderr sink added before (by this call or by
     * mproc_log_add_stderr) is the one. */
    bool have = false;
    int n = atomic_load_explicit(&lg->nsinks, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        have = have || lg->sinks[i].fd == STDERR_FILENO;
    int rc = have ? 0 : check_fd(STDERR_FILENO);
    if (!have && rc == 0)
        rc = sink_add_locked(lg, STDERR_FILENO, MPROC_LOG_NOTSET, false);
    pthread_mutex_unlock(&lg->cfg);
    if (rc == 0)
        atomic_store(&lg->level, level);
    return rc;
}

int mproc_log_vwrite_at(mproc_log *lg, int level, const char *file, int line,
                        const char *func, const char *fmt, va_list ap)
{
    if (lg == NULL || fmt == NULL || !record_level_ok(level))
        return MPROC_EINVAL;
    if (level < atomic_load_explicit(&lg->level, memory_order_relaxed))
        return 0;
    int nsinks = atomic_load_explicit(&lg->nsinks, memory_order_acquire);
    bool any = false;
    for (int i = 0; i < nsinks; i++)
        any = any || level >= lg->sinks[i].level;
    if (!any)
        return 0;
    int saved_errno = errno;
    const struct fmt *f = atomic_load_explicit(&lg->fmt, memory_order_acquire);

    /* The message first: on the stack, or on the heap when longer. */
    char mstack[STACK_MESSAGE];
    char *mheap = NULL;
    const char *message = mstack;
    bool msg_cut = false;
    va_list ap2;
    va_copy(ap2, ap);
    int mlen = vsnprintf(mstack, sizeof mstack, fmt, ap);
    if (mlen < 0) {
        mstack[0] = '\0';
    } else if ((size_t)mlen >= sizeof mstack) {
        size_t want = (size_t)mlen + 1;
        if (want > MPROC_LOG_RECORD_MAX + 1) {
            want = MPROC_LOG_RECORD_MAX + 1;
            msg_cut = true;
        }
        mheap = malloc(want);
        if (mheap != NULL) {
            (void)vsnprintf(mheap, want, fmt, ap2);
            message = mheap;
        } else {
            msg_cut = true;
        }
    }
    va_end(ap2);

    char rstack[STACK_RECORD];
    struct out o = {rstack, 0, sizeof rstack, NULL, false};
    struct record r = {
        lg, level, file, line, func, message, mproc__os_realtime_ns()};
    for (int i = 0; i < f->npieces; i++) {
        const struct piece *p = &f->p[i];
        if (p->field == F_LITERAL)
            out_put(&o, f->text + p->off, p->len);
        else
            put_field(&o, f, p, &r);
    }
    if (msg_cut)
        o.cut = true;
    out_finish(&o);
    free(mheap);

    int rc = 0;
    for (int i = 0; i < nsinks; i++) {
        if (level < lg->sinks[i].level)
            continue;
        int wrc = sink_write(&lg->sinks[i], o.buf, o.len);
        if (rc == 0)
            rc = wrc;
    }
    free(o.heap);
    errno = saved_errno;
    return rc;
}

int mproc_log_write_at(mproc_log *lg, int level, const char *file, int line,
                       const char *func, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mproc_log_vwrite_at(lg, level, file, line, func, fmt, ap);
    va_end(ap);
    return rc;
}

int mproc_log_write(mproc_log *lg, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mproc_log_vwrite_at(lg, level, NULL, 0, NULL, fmt, ap);
    va_end(ap);
    return rc;
}
