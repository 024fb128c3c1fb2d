/*
 * The manager's objects and commands: a keyspace of named objects (strings,
 * hashes, lists and queues, locks, events, semaphores, barriers), Redis's
 * commands where Redis has the object and the manager's own for the rest,
 * and the waiters a blocking command leaves on an object until it can be
 * answered. docs/manager-protocol.md is the specification.
 */
#include "internal/manager.h"

#include "os/os.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ----- a hash table of byte strings ----- */

typedef struct hent {
    struct hent *next;
    uint64_t h;
    size_t klen, vlen;
    char *k;
    void *v;
} hent;

typedef struct htab {
    hent **b;
    size_t nb, n;
} htab;

static uint64_t hash_seed;

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ hash_seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static hent *ht_find(const htab *t, const char *k, size_t kl, uint64_t h)
{
    if (t->nb == 0)
        return NULL;
    for (hent *e = t->b[h & (t->nb - 1)]; e != NULL; e = e->next)
        if (e->h == h && e->klen == kl && memcmp(e->k, k, kl) == 0)
            return e;
    return NULL;
}

static int ht_grow(htab *t)
{
    size_t nb = t->nb ? t->nb * 2 : 8;
    hent **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return MPROC_ENOMEM;
    for (size_t i = 0; i < t->nb; i++) {
        for (hent *e = t->b[i], *n; e != NULL; e = n) {
            n = e->next;
            e->next = b[e->h & (nb - 1)];
            b[e->h & (nb - 1)] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

/* A new entry for k (not present); its value is the caller's to set. */
static hent *ht_add(htab *t, const char *k, size_t kl, uint64_t h)
{
    if (t->n >= t->nb && ht_grow(t) < 0)
        return NULL;
    hent *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->k = malloc(kl + 1);
    if (e->k == NULL) {
        free(e);
        return NULL;
    }
    memcpy(e->k, k, kl);
    e->k[kl] = '\0';
    e->klen = kl;
    e->h = h;
    e->next = t->b[h & (t->nb - 1)];
    t->b[h & (t->nb - 1)] = e;
    t->n++;
    return e;
}

/* Unlinks e (the caller frees its value), frees its key and itself. */
static void ht_del(htab *t, hent *e)
{
    hent **pp = &t->b[e->h & (t->nb - 1)];
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    t->n--;
    free(e->k);
    free(e);
}

/* ----- objects ----- */

enum {
    T_NONE = 0, /* only waiters hold the name */
    T_STRING,
    T_HASH,
    T_LIST,
    T_LOCK,
    T_EVENT,
    T_SEM,
    T_BARRIER
};

static const char *const type_names[] = {
    "none", "string", "hash", "list", "lock", "event", "semaphore", "barrier"};

enum {
    OP_NONE = 0,
    OP_BLPOP,
    OP_BRPOP,
    OP_QPUT,
    OP_QJOIN,
    OP_LOCK,
    OP_EVENT,
    OP_SEM,
    OP_BARRIER
};

typedef struct blob {
    size_t len;
    char d[];
} blob;

typedef struct wnode {
    mgr_conn *c;
    mgr_obj *o;
    struct wnode *prev, *next;
} wnode;

struct mgr_obj {
    int type;
    hent *e; /* its keyspace entry: the name */
    /* string */
    blob *s;
    /* hash */
    htab h;
    /* list */
    blob **items;
    size_t head, count, cap;
    bool queue; /* made by QUEUE.CREATE: stays when empty */
    size_t maxsize;
    long long unfinished;
    /* lock */
    uint64_t owner;
    pid_t owner_pid;
    unsigned depth;
    bool recursive, owner_died;
    /* event */
    bool flag;
    /* semaphore */
    long long value, initial;
    bool bounded;
    /* barrier */
    unsigned parties, arrived;
    uint64_t generation;
    bool broken;
    /* waiters, oldest first */
    wnode *whead, *wtail;
    size_t nwait;
};

/* What a connection holds in the store: its waits and its locks. */
typedef struct cstate {
    wnode w[MGR_MAX_WAITS];
    int nw;
    int op;
    blob *put; /* QUEUE.PUT's item while parked */
    uint64_t gen;
    unsigned index;
    char **locks;
    size_t *lockl;
    size_t nlocks, caplocks;
} cstate;

struct mgr_store {
    htab keys;
};

static blob *blob_new(const void *p, size_t n)
{
    blob *b = malloc(sizeof *b + n + 1);
    if (b == NULL)
        return NULL;
    b->len = n;
    if (n > 0)
        memcpy(b->d, p, n);
    b->d[n] = '\0';
    return b;
}

static void obj_clear(mgr_obj *o)
{
    free(o->s);
    o->s = NULL;
    for (size_t i = 0; i < o->h.nb; i++) {
        for (hent *e = o->h.b[i], *n; e != NULL; e = n) {
            n = e->next;
            free(e->v);
            free(e->k);
            free(e);
        }
    }
    free(o->h.b);
    memset(&o->h, 0, sizeof o->h);
    for (size_t i = 0; i < o->count; i++)
        free(o->items[(o->head + i) % o->cap]);
    free(o->items);
    o->items = NULL;
    o->head = o->count = o->cap = 0;
    o->queue = false;
    o->maxsize = 0;
    o->unfinished = 0;
    o->owner = 0;
    o->owner_pid = 0;
    o->depth = 0;
    o->recursive = o->owner_died = false;
    o->flag = false;
    o->value = o->initial = 0;
    o->bounded = false;
    o->parties = o->arrived = 0;
    o->broken = false;
    o->type = T_NONE;
}

static void obj_remove(mgr_store *st, mgr_obj *o)
{
    obj_clear(o);
    if (o->nwait > 0)
        return; /* its waiters keep the name */
    ht_del(&st->keys, o->e);
    free(o);
}

static mgr_obj *lookup_any(mgr_store *st, const char *k, size_t kl)
{
    hent *e = ht_find(&st->keys, k, kl, hash_bytes(k, kl));
    return e != NULL ? e->v : NULL;
}

/* The object called k, or NULL when there is none. */
static mgr_obj *lookup(mgr_store *st, const char *k, size_t kl)
{
    mgr_obj *o = lookup_any(st, k, kl);
    return o != NULL && o->type != T_NONE ? o : NULL;
}

/* The object called k, made with type when there is none (or only
 * waiters). NULL with *wrong set when it has another type; NULL without
 * it when out of memory. */
static mgr_obj *lookup_make(mgr_store *st, const char *k, size_t kl, int type,
                            bool *wrong)
{
    *wrong = false;
    uint64_t h = hash_bytes(k, kl);
    hent *e = ht_find(&st->keys, k, kl, h);
    mgr_obj *o;
    if (e != NULL) {
        o = e->v;
        if (o->type == type)
            return o;
        if (o->type != T_NONE) {
            *wrong = true;
            return NULL;
        }
    } else {
        o = calloc(1, sizeof *o);
        if (o == NULL)
            return NULL;
        e = ht_add(&st->keys, k, kl, h);
        if (e == NULL) {
            free(o);
            return NULL;
        }
        e->v = o;
        o->e = e;
    }
    o->type = type;
    return o;
}

int mproc__mgr_store_create(mgr_store **out)
{
    mgr_store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return MPROC_ENOMEM;
    if (hash_seed == 0)
        mproc__os_random(&hash_seed, sizeof hash_seed);
    *out = st;
    return 0;
}

void mproc__mgr_store_destroy(mgr_store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->keys.nb; i++) {
        for (hent *e = st->keys.b[i], *n; e != NULL; e = n) {
            n = e->next;
            mgr_obj *o = e->v;
            obj_clear(o);
            free(o);
            free(e->k);
            free(e);
        }
    }
    free(st->keys.b);
    free(st);
}

/* ----- lists ----- */

static int list_reserve(mgr_obj *o)
{
    if (o->count < o->cap)
        return 0;
    size_t cap = o->cap ? o->cap * 2 : 8;
    blob **items = malloc(cap * sizeof *items);
    if (items == NULL)
        return MPROC_ENOMEM;
    for (size_t i = 0; i < o->count; i++)
        items[i] = o->items[(o->head + i) % o->cap];
    free(o->items);
    o->items = items;
    o->head = 0;
    o->cap = cap;
    return 0;
}

static blob **list_at(mgr_obj *o, size_t i)
{
    return &o->items[(o->head + i) % o->cap];
}

static void list_push(mgr_obj *o, blob *b, bool front)
{
    if (front) {
        o->head = (o->head + o->cap - 1) % o->cap;
        o->items[o->head] = b;
    } else {
        *list_at(o, o->count) = b;
    }
    o->count++;
    if (o->queue)
        o->unfinished++;
}

static blob *list_pop(mgr_obj *o, bool back)
{
    blob *b;
    if (back) {
        b = *list_at(o, o->count - 1);
    } else {
        b = o->items[o->head];
        o->head = (o->head + 1) % o->cap;
    }
    o->count--;
    return b;
}

static void list_remove_at(mgr_obj *o, size_t i)
{
    free(*list_at(o, i));
    for (size_t j = i; j + 1 < o->count; j++)
        *list_at(o, j) = *list_at(o, j + 1);
    o->count--;
}

static int list_insert_at(mgr_obj *o, size_t i, blob *b)
{
    if (list_reserve(o) < 0)
        return MPROC_ENOMEM;
    for (size_t j = o->count; j > i; j--)
        *list_at(o, j) = *list_at(o, j - 1);
    *list_at(o, i) = b;
    o->count++;
    if (o->queue)
        o->unfinished++;
    return 0;
}

/* A plain list that became empty goes, as in Redis. */
static void list_maybe_remove(mgr_store *st, mgr_obj *o)
{
    if (o->type == T_LIST && o->count == 0 && !o->queue)
        obj_remove(st, o);
}

/* ----- numbers ----- */

/* Redis's strict integer syntax: an optional '-', digits, no leading
 * zeros, no blanks, in range. */
static bool parse_ll(const char *p, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    size_t i = 0;
    bool neg = false;
    if (p[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (p[i] == '0' && n > i + 1)
        return false;
    if (p[i] == '0' && neg)
        return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return false;
        *out =
            v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > LLONG_MAX)
            return false;
        *out = (long long)v;
    }
    return true;
}

#define parse_double mproc__mgr_parse_double

#define fmt_double mproc__mgr_fmt_double

/* ----- replies that commands share ----- */

#define R_WRONGTYPE                                                            \
    "WRONGTYPE Operation against a key holding the wrong kind of value"
#define R_NOTINT "ERR value is not an integer or out of range"
#define R_NOTFLOAT "ERR value is not a valid float"
#define R_SYNTAX "ERR syntax error"
#define R_TIMEOUT "ERR timeout is not an integer or out of range"

static void wrongtype(mgr_conn *c)
{
    mproc__mgr_reply_error(c, "%s", R_WRONGTYPE);
}

static void oom(mgr_conn *c)
{
    mproc__mgr_reply_error(c, "ERR out of memory");
}

static void reply_blob(mgr_conn *c, const blob *b)
{
    mproc__mgr_reply_bulk(c, b->d, b->len);
}

/* ----- waiting ----- */

static cstate *cs_of(mgr_conn *c, bool make)
{
    void **slot = mproc__mgr_conn_store_slot(c);
    if (*slot == NULL && make)
        *slot = calloc(1, sizeof(cstate));
    return *slot;
}

static void wait_unlink(mgr_store *st, wnode *w, bool drop_placeholder)
{
    mgr_obj *o = w->o;
    if (o == NULL)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        o->whead = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        o->wtail = w->prev;
    o->nwait--;
    w->o = NULL;
    if (drop_placeholder && o->type == T_NONE && o->nwait == 0)
        obj_remove(st, o);
}

/* Ends c's wait: unlinks every node, frees a pending item, unparks. */
static void wait_end(mgr_store *st, mgr_conn *c, cstate *cs)
{
    for (int i = 0; i < cs->nw; i++)
        wait_unlink(st, &cs->w[i], true);
    cs->nw = 0;
    free(cs->put);
    cs->put = NULL;
    cs->op = OP_NONE;
    mproc__mgr_unpark(c);
}

static bool wait_add(cstate *cs, mgr_conn *c, mgr_obj *o)
{
    for (int i = 0; i < cs->nw; i++)
        if (cs->w[i].o == o)
            return true; /* the same key twice */
    if (cs->nw >= MGR_MAX_WAITS)
        return false;
    wnode *w = &cs->w[cs->nw++];
    w->c = c;
    w->o = o;
    w->next = NULL;
    w->prev = o->wtail;
    if (o->wtail != NULL)
        o->wtail->next = w;
    else
        o->whead = w;
    o->wtail = w;
    o->nwait++;
    return true;
}

/* timeout_ms as a deadline; false when the argument is no timeout. */
static bool parse_timeout_ms(const char *p, size_t n, int64_t *deadline,
                             bool *try_once)
{
    long long ms;
    if (!parse_ll(p, n, &ms) || ms < -1 || ms > INT64_MAX / 2000000)
        return false;
    *try_once = ms == 0;
    *deadline = ms < 0 ? INT64_MAX : mproc__os_monotonic_ns() + ms * 1000000;
    return true;
}

static void serve(mgr_store *st, mgr_obj *o);

static void do_pop_reply(mgr_store *st, mgr_conn *c, mgr_obj *o, bool back,
                         bool with_key)
{
    (void)st;
    blob *b = list_pop(o, back);
    if (with_key) {
        mproc__mgr_reply_array(c, 2);
        mproc__mgr_reply_bulk(c, o->e->k, o->e->klen);
    }
    reply_blob(c, b);
    free(b);
}

/* Whether c's wait on o would end now, without changing anything. */
static bool would_go(const mgr_obj *o, const cstate *cs)
{
    switch (cs->op) {
    case OP_BLPOP:
    case OP_BRPOP:
        return o->type == T_LIST && o->count > 0;
    case OP_QPUT:
        return o->type == T_LIST && (o->maxsize == 0 || o->count < o->maxsize);
    case OP_LOCK:
        return o->type == T_LOCK && o->owner == 0;
    case OP_SEM:
        return o->type == T_SEM && o->value > 0;
    default:
        return true;
    }
}

/* Tries to answer waiter w (of c) on o; true when it was answered. */
static bool try_waiter(mgr_store *st, mgr_obj *o, mgr_conn *c, cstate *cs)
{
    switch (cs->op) {
    case OP_BLPOP:
    case OP_BRPOP:
        if (o->type != T_LIST || o->count == 0)
            return false;
        do_pop_reply(st, c, o, cs->op == OP_BRPOP, true);
        return true;
    case OP_QPUT:
        if (o->type != T_LIST || (o->maxsize > 0 && o->count >= o->maxsize))
            return false;
        if (list_reserve(o) < 0)
            return false;
        list_push(o, cs->put, false);
        cs->put = NULL;
        mproc__mgr_reply_int(c, (long long)o->count);
        return true;
    case OP_QJOIN:
        if (o->type == T_LIST && o->unfinished > 0)
            return false;
        mproc__mgr_reply_status(c, "OK");
        return true;
    case OP_LOCK:
        if (o->type != T_LOCK || o->owner != 0)
            return false;
        o->owner = mproc__mgr_conn_id(c);
        o->owner_pid = mproc__mgr_conn_pid(c);
        o->depth = 1;
        mproc__mgr_reply_int(c, o->owner_died ? 2 : 1);
        o->owner_died = false;
        return true;
    case OP_EVENT:
        if (o->type != T_EVENT || !o->flag)
            return false;
        mproc__mgr_reply_int(c, 1);
        return true;
    case OP_SEM:
        if (o->type != T_SEM || o->value <= 0)
            return false;
        o->value--;
        mproc__mgr_reply_int(c, 1);
        return true;
    case OP_BARRIER:
        if (o->type != T_BARRIER) {
            mproc__mgr_reply_error(c, "EBROKEN barrier was removed");
            return true;
        }
        if (o->broken || o->generation != cs->gen) {
            if (o->generation != cs->gen && !o->broken) {
                mproc__mgr_reply_int(c, cs->index);
                return true;
            }
            mproc__mgr_reply_error(c, "EBROKEN barrier is broken");
            return true;
        }
        return false;
    }
    return false;
}

/* Answers o's waiters, oldest first, while the object lets them go on. */
static void serve(mgr_store *st, mgr_obj *o)
{
    bool again = true;
    while (again) {
        again = false;
        for (wnode *w = o->whead; w != NULL; w = w->next) {
            mgr_conn *c = w->c;
            cstate *cs = cs_of(c, false);
            if (cs == NULL)
                continue;
            /* Something is about to be given to c: first make sure its
             * process is still there (it may have died with its EOF not
             * yet read), so that nothing goes to the dead. */
            if (cs->op != OP_QJOIN && cs->op != OP_EVENT &&
                cs->op != OP_BARRIER && would_go(o, cs) &&
                !mproc__mgr_conn_alive(c)) {
                o->nwait++;
                mproc__mgr_conn_drop(c);
                o->nwait--;
                again = true;
                break;
            }
            if (!try_waiter(st, o, c, cs))
                continue;
            /* o may go (a list that emptied) only after its waiters
             * are unlinked; keep it while serving. */
            o->nwait++;
            wait_end(st, c, cs);
            o->nwait--;
            again = true;
            break;
        }
    }
    if (o->type == T_LIST)
        list_maybe_remove(st, o);
    else if (o->type == T_NONE && o->nwait == 0)
        obj_remove(st, o);
}

/* Parks c on the objects of its cs->w, or answers a timeout now. */
static void park(mgr_conn *c, cstate *cs, int op, int64_t deadline)
{
    cs->op = op;
    mproc__mgr_park(c, op, deadline);
}

static void timeout_reply(mgr_conn *c)
{
    mproc__mgr_reply_nil(c);
}

void mproc__mgr_store_timeout(mgr_store *st, mgr_conn *c)
{
    cstate *cs = cs_of(c, false);
    if (cs == NULL) {
        mproc__mgr_unpark(c);
        return;
    }
    if (cs->op == OP_BLPOP || cs->op == OP_BRPOP)
        mproc__mgr_reply_array(c, -1); /* Redis: a nil array */
    else
        timeout_reply(c);
    mgr_obj *bar = NULL;
    if (cs->op == OP_BARRIER && cs->nw > 0) {
        bar = cs->w[0].o;
    }
    wait_end(st, c, cs);
    if (bar != NULL && bar->type == T_BARRIER && bar->generation == cs->gen) {
        /* A waiter that gives up breaks the barrier for the others. */
        bar->broken = true;
        bar->arrived = 0;
        serve(st, bar);
    }
}

static void forget_lock(cstate *cs, const char *k, size_t kl)
{
    for (size_t i = 0; i < cs->nlocks; i++) {
        if (cs->lockl[i] == kl && memcmp(cs->locks[i], k, kl) == 0) {
            free(cs->locks[i]);
            cs->locks[i] = cs->locks[cs->nlocks - 1];
            cs->lockl[i] = cs->lockl[cs->nlocks - 1];
            cs->nlocks--;
            return;
        }
    }
}

static int remember_lock(cstate *cs, const char *k, size_t kl)
{
    for (size_t i = 0; i < cs->nlocks; i++)
        if (cs->lockl[i] == kl && memcmp(cs->locks[i], k, kl) == 0)
            return 0;
    if (cs->nlocks == cs->caplocks) {
        size_t cap = cs->caplocks ? cs->caplocks * 2 : 4;
        char **l = realloc(cs->locks, cap * sizeof *l);
        if (l == NULL)
            return MPROC_ENOMEM;
        cs->locks = l;
        size_t *ll = realloc(cs->lockl, cap * sizeof *ll);
        if (ll == NULL)
            return MPROC_ENOMEM;
        cs->lockl = ll;
        cs->caplocks = cap;
    }
    char *p = malloc(kl + 1);
    if (p == NULL)
        return MPROC_ENOMEM;
    memcpy(p, k, kl);
    p[kl] = '\0';
    cs->locks[cs->nlocks] = p;
    cs->lockl[cs->nlocks++] = kl;
    return 0;
}

void mproc__mgr_store_disconnect(mgr_store *st, mgr_conn *c)
{
    cstate *cs = cs_of(c, false);
    if (cs == NULL)
        return;
    if (st != NULL) {
        mgr_obj *bar = NULL;
        if (cs->op == OP_BARRIER && cs->nw > 0)
            bar = cs->w[0].o;
        for (int i = 0; i < cs->nw; i++)
            wait_unlink(st, &cs->w[i], true);
        cs->nw = 0;
        if (bar != NULL && bar->type == T_BARRIER &&
            bar->generation == cs->gen) {
            bar->broken = true;
            bar->arrived = 0;
            serve(st, bar);
        }
        /* Its locks: released, and the next owner is told. */
        for (size_t i = 0; i < cs->nlocks; i++) {
            mgr_obj *o = lookup(st, cs->locks[i], cs->lockl[i]);
            if (o != NULL && o->type == T_LOCK &&
                o->owner == mproc__mgr_conn_id(c)) {
                o->owner = 0;
                o->owner_pid = 0;
                o->depth = 0;
                o->owner_died = true;
                serve(st, o);
            }
        }
    }
    for (size_t i = 0; i < cs->nlocks; i++)
        free(cs->locks[i]);
    free(cs->locks);
    free(cs->lockl);
    free(cs->put);
    free(cs);
    *mproc__mgr_conn_store_slot(c) = NULL;
}

/* The object called k when it has type, NULL when there is none; NULL
 * with *bad set (and WRONGTYPE said) when it has another type. */
static mgr_obj *get_typed(mgr_store *st, mgr_conn *c, const char *k, size_t kl,
                          int type, bool *bad)
{
    *bad = false;
    mgr_obj *o = lookup(st, k, kl);
    if (o != NULL && o->type != type) {
        wrongtype(c);
        *bad = true;
        return NULL;
    }
    return o;
}

/* The object called k, made with type when there is none; NULL (and the
 * error said) when k holds another type or memory ran out. *made (may be
 * NULL) tells whether it was made now. */
static mgr_obj *make_typed(mgr_store *st, mgr_conn *c, const char *k, size_t kl,
                           int type, bool *made)
{
    bool existed = lookup(st, k, kl) != NULL;
    bool wrong;
    mgr_obj *o = lookup_make(st, k, kl, type, &wrong);
    if (o == NULL) {
        if (wrong)
            wrongtype(c);
        else
            oom(c);
    }
    if (made != NULL)
        *made = o != NULL && !existed;
    return o;
}

/* The object named by argument 1, of type, which must exist (else "no
 * such key"); NULL when an error was said. */
static mgr_obj *get_existing(mgr_store *st, mgr_conn *c, const mgr_req *r,
                             int type)
{
    bool bad;
    mgr_obj *o = get_typed(st, c, r->argv[1], r->argl[1], type, &bad);
    if (o == NULL && !bad)
        mproc__mgr_reply_error(c, "ERR no such key");
    return o;
}

/* Argument i as a timeout in ms; false (and the error said) when it is
 * not one. */
static bool arg_timeout(mgr_conn *c, const mgr_req *r, int i, int64_t *deadline,
                        bool *try_once)
{
    if (parse_timeout_ms(r->argv[i], r->argl[i], deadline, try_once))
        return true;
    mproc__mgr_reply_error(c, R_TIMEOUT);
    return false;
}

/* The state for a wait that cannot end now: NULL when it will not wait
 * (a try once, or no memory: its reply is said). */
static cstate *wait_state(mgr_conn *c, bool try_once)
{
    cstate *cs = cs_of(c, true);
    if (cs == NULL)
        oom(c);
    else if (try_once)
        timeout_reply(c);
    return try_once ? NULL : cs;
}

/* Parks c on o until op can go on or the deadline. */
static void wait_on(cstate *cs, mgr_conn *c, mgr_obj *o, int op,
                    int64_t deadline)
{
    wait_add(cs, c, o);
    park(c, cs, op, deadline);
}

/* ----- commands ----- */

typedef struct cmd {
    const char *name;
    int arity; /* n: exactly n arguments (with the name); -n: at least n */
    void (*fn)(mgr_store *st, mgr_conn *c, const mgr_req *r);
} cmd;

#define A(i) (r->argv[i])
#define L(i) (r->argl[i])

/* generic */

static void c_ping(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)st;
    if (r->argc > 2)
        mproc__mgr_reply_error(
            c, "ERR wrong number of arguments for 'ping' command");
    else if (r->argc == 2)
        mproc__mgr_reply_bulk(c, A(1), L(1));
    else
        mproc__mgr_reply_status(c, "PONG");
}

static void c_echo(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)st;
    mproc__mgr_reply_bulk(c, A(1), L(1));
}

static void c_del(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long n = 0;
    for (int i = 1; i < r->argc; i++) {
        mgr_obj *o = lookup(st, A(i), L(i));
        if (o == NULL)
            continue;
        obj_remove(st, o);
        n++;
        /* Kept for its waiters: those the removal ends (a barrier's,
         * a join's) are answered; the others wait for a new object. */
        if (lookup_any(st, A(i), L(i)) == o)
            serve(st, o);
    }
    mproc__mgr_reply_int(c, n);
}

static void c_exists(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long n = 0;
    for (int i = 1; i < r->argc; i++)
        n += lookup(st, A(i), L(i)) != NULL;
    mproc__mgr_reply_int(c, n);
}

static void c_type(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = lookup(st, A(1), L(1));
    mproc__mgr_reply_status(c, type_names[o != NULL ? o->type : T_NONE]);
}

static void c_keys(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long n = 0;
    for (size_t i = 0; i < st->keys.nb; i++)
        for (hent *e = st->keys.b[i]; e != NULL; e = e->next)
            n += ((mgr_obj *)e->v)->type != T_NONE &&
                 fnmatch(A(1), e->k, 0) == 0;
    mproc__mgr_reply_array(c, n);
    for (size_t i = 0; i < st->keys.nb; i++)
        for (hent *e = st->keys.b[i]; e != NULL; e = e->next)
            if (((mgr_obj *)e->v)->type != T_NONE &&
                fnmatch(A(1), e->k, 0) == 0)
                mproc__mgr_reply_bulk(c, e->k, e->klen);
}

static void c_dbsize(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)r;
    long long n = 0;
    for (size_t i = 0; i < st->keys.nb; i++)
        for (hent *e = st->keys.b[i]; e != NULL; e = e->next)
            n += ((mgr_obj *)e->v)->type != T_NONE;
    mproc__mgr_reply_int(c, n);
}

static void c_flushall(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)r;
    for (size_t i = 0; i < st->keys.nb; i++) {
        for (hent *e = st->keys.b[i], *n; e != NULL; e = n) {
            n = e->next;
            mgr_obj *o = e->v;
            if (o->type != T_NONE)
                obj_remove(st, o);
        }
    }
    mproc__mgr_reply_status(c, "OK");
}

static void c_command(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)st;
    (void)r;
    mproc__mgr_reply_array(c, 0);
}

static void c_select(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)st;
    if (L(1) == 1 && A(1)[0] == '0')
        mproc__mgr_reply_status(c, "OK");
    else
        mproc__mgr_reply_error(c, "ERR DB index is out of range");
}

static void c_hello(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)st;
    (void)r;
    mproc__mgr_reply_status(c, "MPROC 1");
}

static void c_shutdown(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    (void)st;
    (void)r;
    mproc__mgr_reply_status(c, "OK");
}

/* strings */

#define str_get(st, c, k, kl, bad) get_typed(st, c, k, kl, T_STRING, bad)

static bool str_set(mgr_store *st, mgr_conn *c, const char *k, size_t kl,
                    const char *v, size_t vl)
{
    mgr_obj *o = lookup(st, k, kl);
    if (o != NULL && o->type != T_STRING) {
        /* SET replaces whatever the key held, as Redis. */
        if (o->nwait > 0 && o->type != T_NONE) {
            obj_clear(o);
        } else {
            obj_remove(st, o);
        }
    }
    blob *b = blob_new(v, vl);
    bool wrong;
    if (b != NULL)
        o = lookup_make(st, k, kl, T_STRING, &wrong);
    if (b == NULL || o == NULL) {
        free(b);
        oom(c);
        return false;
    }
    free(o->s);
    o->s = b;
    return true;
}

static void c_get(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = str_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (o == NULL)
        mproc__mgr_reply_nil(c);
    else
        reply_blob(c, o->s);
}

static void c_set(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool nx = false, xx = false, get = false;
    for (int i = 3; i < r->argc; i++) {
        if (strcasecmp(A(i), "NX") == 0)
            nx = true;
        else if (strcasecmp(A(i), "XX") == 0)
            xx = true;
        else if (strcasecmp(A(i), "GET") == 0)
            get = true;
        else {
            mproc__mgr_reply_error(c, R_SYNTAX);
            return;
        }
    }
    if (nx && xx) {
        mproc__mgr_reply_error(c, R_SYNTAX);
        return;
    }
    mgr_obj *o = lookup(st, A(1), L(1));
    if (get && o != NULL && o->type != T_STRING) {
        wrongtype(c);
        return;
    }
    blob *old = NULL;
    if (get && o != NULL)
        old = blob_new(o->s->d, o->s->len);
    if ((nx && o != NULL) || (xx && o == NULL)) {
        if (get && old != NULL)
            reply_blob(c, old);
        else
            mproc__mgr_reply_nil(c);
        free(old);
        return;
    }
    if (str_set(st, c, A(1), L(1), A(2), L(2))) {
        if (!get)
            mproc__mgr_reply_status(c, "OK");
        else if (old != NULL)
            reply_blob(c, old);
        else
            mproc__mgr_reply_nil(c);
    }
    free(old);
}

static void c_setnx(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    if (lookup(st, A(1), L(1)) != NULL) {
        mproc__mgr_reply_int(c, 0);
        return;
    }
    if (str_set(st, c, A(1), L(1), A(2), L(2)))
        mproc__mgr_reply_int(c, 1);
}

static void c_getset(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = str_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    blob *old = o != NULL ? o->s : NULL;
    if (o != NULL)
        o->s = NULL;
    blob *b = blob_new(A(2), L(2));
    bool wrong;
    if (b != NULL && o == NULL)
        o = lookup_make(st, A(1), L(1), T_STRING, &wrong);
    if (b == NULL || o == NULL) {
        if (o != NULL)
            o->s = old;
        free(b);
        oom(c);
        return;
    }
    o->s = b;
    if (old != NULL)
        reply_blob(c, old);
    else
        mproc__mgr_reply_nil(c);
    free(old);
}

static void incr_by(mgr_store *st, mgr_conn *c, const char *k, size_t kl,
                    long long by)
{
    bool bad;
    mgr_obj *o = str_get(st, c, k, kl, &bad);
    if (bad)
        return;
    long long v = 0;
    if (o != NULL && !parse_ll(o->s->d, o->s->len, &v)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        mproc__mgr_reply_error(c, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    if (str_set(st, c, k, kl, buf, (size_t)n))
        mproc__mgr_reply_int(c, v);
}

static void c_incr(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    incr_by(st, c, A(1), L(1), 1);
}

static void c_decr(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    incr_by(st, c, A(1), L(1), -1);
}

static void c_incrby(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long by;
    if (!parse_ll(A(2), L(2), &by)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    incr_by(st, c, A(1), L(1), by);
}

static void c_decrby(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long by;
    if (!parse_ll(A(2), L(2), &by) || by == LLONG_MIN) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    incr_by(st, c, A(1), L(1), -by);
}

static void c_incrbyfloat(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = str_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    double v = 0, by;
    if (!parse_double(A(2), L(2), &by) ||
        (o != NULL && !parse_double(o->s->d, o->s->len, &v))) {
        mproc__mgr_reply_error(c, R_NOTFLOAT);
        return;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        mproc__mgr_reply_error(c,
                               "ERR increment would produce NaN or Infinity");
        return;
    }
    char buf[64];
    size_t n = fmt_double(buf, sizeof buf, v);
    if (str_set(st, c, A(1), L(1), buf, n))
        mproc__mgr_reply_bulk(c, buf, n);
}

static void c_strlen(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = str_get(st, c, A(1), L(1), &bad);
    if (!bad)
        mproc__mgr_reply_int(c, o != NULL ? (long long)o->s->len : 0);
}

static void c_append(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = str_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (o == NULL) {
        if (str_set(st, c, A(1), L(1), A(2), L(2)))
            mproc__mgr_reply_int(c, (long long)L(2));
        return;
    }
    blob *b = malloc(sizeof *b + o->s->len + L(2) + 1);
    if (b == NULL) {
        oom(c);
        return;
    }
    b->len = o->s->len + L(2);
    memcpy(b->d, o->s->d, o->s->len);
    memcpy(b->d + o->s->len, A(2), L(2));
    b->d[b->len] = '\0';
    free(o->s);
    o->s = b;
    mproc__mgr_reply_int(c, (long long)b->len);
}

/* hashes */

#define hash_get(st, c, k, kl, bad) get_typed(st, c, k, kl, T_HASH, bad)
#define hash_make(st, c, k, kl) make_typed(st, c, k, kl, T_HASH, NULL)

static hent *hfield(mgr_obj *o, const char *f, size_t fl)
{
    return ht_find(&o->h, f, fl, hash_bytes(f, fl));
}

/* Sets field f; 1 when it is new, 0 when replaced, <0 out of memory. */
static int hput(mgr_obj *o, const char *f, size_t fl, const char *v, size_t vl)
{
    uint64_t h = hash_bytes(f, fl);
    char *val = malloc(vl + 1);
    if (val == NULL)
        return MPROC_ENOMEM;
    memcpy(val, v, vl);
    val[vl] = '\0';
    hent *e = ht_find(&o->h, f, fl, h);
    int isnew = 0;
    if (e == NULL) {
        e = ht_add(&o->h, f, fl, h);
        if (e == NULL) {
            free(val);
            return MPROC_ENOMEM;
        }
        isnew = 1;
    }
    free(e->v);
    e->v = val;
    e->vlen = vl;
    return isnew;
}

static void hash_maybe_remove(mgr_store *st, mgr_obj *o)
{
    if (o->h.n == 0)
        obj_remove(st, o);
}

static void c_hset(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    if (r->argc % 2 != 0) {
        mproc__mgr_reply_error(
            c, "ERR wrong number of arguments for 'hset' command");
        return;
    }
    mgr_obj *o = hash_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    long long added = 0;
    for (int i = 2; i < r->argc; i += 2) {
        int rc = hput(o, A(i), L(i), A(i + 1), L(i + 1));
        if (rc < 0) {
            hash_maybe_remove(st, o);
            oom(c);
            return;
        }
        added += rc;
    }
    mproc__mgr_reply_int(c, added);
}

static void c_hsetnx(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (o != NULL && hfield(o, A(2), L(2)) != NULL) {
        mproc__mgr_reply_int(c, 0);
        return;
    }
    o = hash_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    if (hput(o, A(2), L(2), A(3), L(3)) < 0) {
        hash_maybe_remove(st, o);
        oom(c);
        return;
    }
    mproc__mgr_reply_int(c, 1);
}

static void c_hget(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    hent *e = o != NULL ? hfield(o, A(2), L(2)) : NULL;
    if (e == NULL)
        mproc__mgr_reply_nil(c);
    else
        mproc__mgr_reply_bulk(c, e->v, e->vlen);
}

static void c_hmget(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    mproc__mgr_reply_array(c, r->argc - 2);
    for (int i = 2; i < r->argc; i++) {
        hent *e = o != NULL ? hfield(o, A(i), L(i)) : NULL;
        if (e == NULL)
            mproc__mgr_reply_nil(c);
        else
            mproc__mgr_reply_bulk(c, e->v, e->vlen);
    }
}

static void c_hdel(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    long long n = 0;
    for (int i = 2; o != NULL && i < r->argc; i++) {
        hent *e = hfield(o, A(i), L(i));
        if (e != NULL) {
            free(e->v);
            ht_del(&o->h, e);
            n++;
        }
    }
    if (o != NULL)
        hash_maybe_remove(st, o);
    mproc__mgr_reply_int(c, n);
}

static void c_hexists(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (!bad)
        mproc__mgr_reply_int(c, o != NULL && hfield(o, A(2), L(2)) != NULL);
}

static void c_hlen(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (!bad)
        mproc__mgr_reply_int(c, o != NULL ? (long long)o->h.n : 0);
}

static void hash_walk(mgr_store *st, mgr_conn *c, const mgr_req *r, int what)
{
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    size_t n = o != NULL ? o->h.n : 0;
    mproc__mgr_reply_array(c, (long long)(what == 3 ? 2 * n : n));
    for (size_t i = 0; o != NULL && i < o->h.nb; i++) {
        for (hent *e = o->h.b[i]; e != NULL; e = e->next) {
            if (what & 1)
                mproc__mgr_reply_bulk(c, e->k, e->klen);
            if (what & 2)
                mproc__mgr_reply_bulk(c, e->v, e->vlen);
        }
    }
}

static void c_hkeys(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    hash_walk(st, c, r, 1);
}

static void c_hvals(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    hash_walk(st, c, r, 2);
}

static void c_hgetall(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    hash_walk(st, c, r, 3);
}

static void c_hincrby(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long by, v = 0;
    if (!parse_ll(A(3), L(3), &by)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    hent *e = o != NULL ? hfield(o, A(2), L(2)) : NULL;
    if (e != NULL && !parse_ll(e->v, e->vlen, &v)) {
        mproc__mgr_reply_error(c, "ERR hash value is not an integer");
        return;
    }
    if ((by > 0 && v > LLONG_MAX - by) || (by < 0 && v < LLONG_MIN - by)) {
        mproc__mgr_reply_error(c, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    o = hash_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", v);
    if (hput(o, A(2), L(2), buf, (size_t)n) < 0) {
        hash_maybe_remove(st, o);
        oom(c);
        return;
    }
    mproc__mgr_reply_int(c, v);
}

static void c_hincrbyfloat(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    double by, v = 0;
    if (!parse_double(A(3), L(3), &by)) {
        mproc__mgr_reply_error(c, R_NOTFLOAT);
        return;
    }
    bool bad;
    mgr_obj *o = hash_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    hent *e = o != NULL ? hfield(o, A(2), L(2)) : NULL;
    if (e != NULL && !parse_double(e->v, e->vlen, &v)) {
        mproc__mgr_reply_error(c, "ERR hash value is not a float");
        return;
    }
    v += by;
    if (isnan(v) || isinf(v)) {
        mproc__mgr_reply_error(c,
                               "ERR increment would produce NaN or Infinity");
        return;
    }
    o = hash_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    char buf[64];
    size_t n = fmt_double(buf, sizeof buf, v);
    if (hput(o, A(2), L(2), buf, n) < 0) {
        hash_maybe_remove(st, o);
        oom(c);
        return;
    }
    mproc__mgr_reply_bulk(c, buf, n);
}

/* lists */

#define list_get(st, c, k, kl, bad) get_typed(st, c, k, kl, T_LIST, bad)
#define list_make(st, c, k, kl) make_typed(st, c, k, kl, T_LIST, NULL)

static void push(mgr_store *st, mgr_conn *c, const mgr_req *r, bool front)
{
    mgr_obj *o = list_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    for (int i = 2; i < r->argc; i++) {
        blob *b = blob_new(A(i), L(i));
        if (b == NULL || list_reserve(o) < 0) {
            free(b);
            oom(c);
            break;
        }
        list_push(o, b, front);
    }
    mproc__mgr_reply_int(c, (long long)o->count);
    serve(st, o);
}

static void c_rpush(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    push(st, c, r, false);
}

static void c_lpush(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    push(st, c, r, true);
}

static void pop(mgr_store *st, mgr_conn *c, const mgr_req *r, bool back)
{
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (r->argc > 3) {
        mproc__mgr_reply_error(c, R_SYNTAX);
        return;
    }
    if (r->argc == 3) {
        long long n;
        if (!parse_ll(A(2), L(2), &n) || n < 0) {
            mproc__mgr_reply_error(
                c, "ERR value is out of range, must be positive");
            return;
        }
        if (o == NULL || o->count == 0) {
            mproc__mgr_reply_array(c, -1);
            return;
        }
        size_t k = (size_t)n < o->count ? (size_t)n : o->count;
        mproc__mgr_reply_array(c, (long long)k);
        for (size_t i = 0; i < k; i++)
            do_pop_reply(st, c, o, back, false);
        serve(st, o);
        return;
    }
    if (o == NULL || o->count == 0) {
        mproc__mgr_reply_nil(c);
        return;
    }
    do_pop_reply(st, c, o, back, false);
    serve(st, o);
}

static void c_lpop(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    pop(st, c, r, false);
}

static void c_rpop(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    pop(st, c, r, true);
}

static bool list_index(const mgr_obj *o, long long i, size_t *out)
{
    long long n = (long long)o->count;
    if (i < 0)
        i += n;
    if (i < 0 || i >= n)
        return false;
    *out = (size_t)i;
    return true;
}

static void c_lindex(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long i;
    if (!parse_ll(A(2), L(2), &i)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    size_t k;
    if (o == NULL || !list_index(o, i, &k))
        mproc__mgr_reply_nil(c);
    else
        reply_blob(c, *list_at(o, k));
}

static void c_lset(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long i;
    if (!parse_ll(A(2), L(2), &i)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    size_t k;
    if (o == NULL) {
        mproc__mgr_reply_error(c, "ERR no such key");
        return;
    }
    if (!list_index(o, i, &k)) {
        mproc__mgr_reply_error(c, "ERR index out of range");
        return;
    }
    blob *b = blob_new(A(3), L(3));
    if (b == NULL) {
        oom(c);
        return;
    }
    free(*list_at(o, k));
    *list_at(o, k) = b;
    mproc__mgr_reply_status(c, "OK");
}

static void c_llen(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (!bad)
        mproc__mgr_reply_int(c, o != NULL ? (long long)o->count : 0);
}

static void c_lrange(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long a, b;
    if (!parse_ll(A(2), L(2), &a) || !parse_ll(A(3), L(3), &b)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    long long n = o != NULL ? (long long)o->count : 0;
    if (a < 0)
        a += n;
    if (b < 0)
        b += n;
    if (a < 0)
        a = 0;
    if (b >= n)
        b = n - 1;
    if (a > b || n == 0) {
        mproc__mgr_reply_array(c, 0);
        return;
    }
    mproc__mgr_reply_array(c, b - a + 1);
    for (long long i = a; i <= b; i++)
        reply_blob(c, *list_at(o, (size_t)i));
}

static bool blob_eq(const blob *b, const char *p, size_t n)
{
    return b->len == n && memcmp(b->d, p, n) == 0;
}

static void c_lrem(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long count;
    if (!parse_ll(A(2), L(2), &count)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    long long removed = 0;
    if (o != NULL && count >= 0) {
        for (size_t i = 0; i < o->count;) {
            if (blob_eq(*list_at(o, i), A(3), L(3)) &&
                (count == 0 || removed < count)) {
                list_remove_at(o, i);
                removed++;
            } else {
                i++;
            }
        }
    } else if (o != NULL) {
        for (size_t i = o->count; i > 0 && removed < -count; i--) {
            if (blob_eq(*list_at(o, i - 1), A(3), L(3))) {
                list_remove_at(o, i - 1);
                removed++;
            }
        }
    }
    if (o != NULL)
        serve(st, o);
    mproc__mgr_reply_int(c, removed);
}

static void c_linsert(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool after;
    if (strcasecmp(A(2), "AFTER") == 0)
        after = true;
    else if (strcasecmp(A(2), "BEFORE") == 0)
        after = false;
    else {
        mproc__mgr_reply_error(c, R_SYNTAX);
        return;
    }
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (o == NULL) {
        mproc__mgr_reply_int(c, 0);
        return;
    }
    for (size_t i = 0; i < o->count; i++) {
        if (blob_eq(*list_at(o, i), A(3), L(3))) {
            blob *b = blob_new(A(4), L(4));
            if (b == NULL || list_insert_at(o, after ? i + 1 : i, b) < 0) {
                free(b);
                oom(c);
                return;
            }
            mproc__mgr_reply_int(c, (long long)o->count);
            serve(st, o);
            return;
        }
    }
    mproc__mgr_reply_int(c, -1);
}

/* BLPOP key [key ...] timeout, timeout in seconds (a double; 0 forever). */
static void bpop(mgr_store *st, mgr_conn *c, const mgr_req *r, bool back)
{
    double secs;
    if (!parse_double(A(r->argc - 1), L(r->argc - 1), &secs) || secs < 0 ||
        secs > 1e9) {
        mproc__mgr_reply_error(c, "ERR timeout is not a float or out of range");
        return;
    }
    int nkeys = r->argc - 2;
    if (nkeys > MGR_MAX_WAITS) {
        mproc__mgr_reply_error(c, "ERR too many keys for a blocking pop");
        return;
    }
    for (int i = 1; i <= nkeys; i++) {
        bool bad;
        mgr_obj *o = list_get(st, c, A(i), L(i), &bad);
        if (bad)
            return;
        if (o != NULL && o->count > 0) {
            do_pop_reply(st, c, o, back, true);
            serve(st, o);
            return;
        }
    }
    cstate *cs = cs_of(c, true);
    if (cs == NULL) {
        oom(c);
        return;
    }
    for (int i = 1; i <= nkeys; i++) {
        bool wrong;
        mgr_obj *o = lookup_any(st, A(i), L(i));
        if (o == NULL)
            o = lookup_make(st, A(i), L(i), T_NONE, &wrong);
        if (o == NULL) {
            for (int k = 0; k < cs->nw; k++)
                wait_unlink(st, &cs->w[k], true);
            cs->nw = 0;
            oom(c);
            return;
        }
        wait_add(cs, c, o);
    }
    int64_t deadline = secs == 0
                           ? INT64_MAX
                           : mproc__os_monotonic_ns() + (int64_t)(secs * 1e9);
    park(c, cs, back ? OP_BRPOP : OP_BLPOP, deadline);
}

static void c_blpop(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bpop(st, c, r, false);
}

static void c_brpop(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bpop(st, c, r, true);
}

/* queues */

static bool parse_count(const char *p, size_t n, long long *out)
{
    return parse_ll(p, n, out) && *out >= 0;
}

static void c_qcreate(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long max;
    if (!parse_count(A(2), L(2), &max)) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool existed = lookup(st, A(1), L(1)) != NULL;
    mgr_obj *o = list_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    if (!existed || (!o->queue && o->maxsize == 0)) {
        if (!existed)
            o->maxsize = (size_t)max;
        o->queue = true;
    }
    mproc__mgr_reply_int(c, (long long)o->maxsize);
}

static void c_qput(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    int64_t deadline;
    bool once;
    if (!arg_timeout(c, r, 2, &deadline, &once))
        return;
    mgr_obj *o = list_make(st, c, A(1), L(1));
    if (o == NULL)
        return;
    o->queue = true;
    blob *b = blob_new(A(3), L(3));
    if (b == NULL) {
        list_maybe_remove(st, o);
        oom(c);
        return;
    }
    if ((o->maxsize == 0 || o->count < o->maxsize) && o->nwait == 0) {
        if (list_reserve(o) < 0) {
            free(b);
            list_maybe_remove(st, o);
            oom(c);
            return;
        }
        list_push(o, b, false);
        mproc__mgr_reply_int(c, (long long)o->count);
        serve(st, o);
        return;
    }
    /* Full (or others wait before this one). */
    cstate *cs = cs_of(c, true);
    if (once || cs == NULL) {
        free(b);
        if (cs == NULL)
            oom(c);
        else
            timeout_reply(c);
        list_maybe_remove(st, o);
        return;
    }
    cs->put = b;
    wait_add(cs, c, o);
    park(c, cs, OP_QPUT, deadline);
    serve(st, o);
}

static void c_qdone(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (o == NULL || o->unfinished <= 0) {
        mproc__mgr_reply_error(c, "EOVERRELEASE task_done() called more "
                                  "times than there were items");
        return;
    }
    o->unfinished--;
    mproc__mgr_reply_int(c, o->unfinished);
    serve(st, o);
}

static void c_qjoin(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    int64_t deadline;
    bool once;
    if (!arg_timeout(c, r, 2, &deadline, &once))
        return;
    bool bad;
    mgr_obj *o = list_get(st, c, A(1), L(1), &bad);
    if (bad)
        return;
    if (o == NULL || o->unfinished == 0) {
        mproc__mgr_reply_status(c, "OK");
        return;
    }
    cstate *cs = wait_state(c, once);
    if (cs != NULL)
        wait_on(cs, c, o, OP_QJOIN, deadline);
}

/* locks */

#define sync_make(st, c, k, kl, type, made) make_typed(st, c, k, kl, type, made)

static void c_lcreate(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool rec = false;
    if (r->argc == 3) {
        if (strcasecmp(A(2), "RECURSIVE") == 0)
            rec = true;
        else if (strcasecmp(A(2), "PLAIN") != 0) {
            mproc__mgr_reply_error(c, R_SYNTAX);
            return;
        }
    } else if (r->argc > 3) {
        mproc__mgr_reply_error(c, R_SYNTAX);
        return;
    }
    bool made;
    mgr_obj *o = sync_make(st, c, A(1), L(1), T_LOCK, &made);
    if (o == NULL)
        return;
    if (made)
        o->recursive = rec;
    mproc__mgr_reply_int(c, o->recursive);
}

static void c_lacquire(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    int64_t deadline;
    bool once;
    if (!arg_timeout(c, r, 2, &deadline, &once))
        return;
    bool made;
    mgr_obj *o = sync_make(st, c, A(1), L(1), T_LOCK, &made);
    if (o == NULL)
        return;
    cstate *cs = cs_of(c, true);
    if (cs == NULL) {
        oom(c);
        return;
    }
    uint64_t me = mproc__mgr_conn_id(c);
    if (o->owner == me) {
        if (!o->recursive) {
            mproc__mgr_reply_error(c, "EDEADLK this connection holds the "
                                      "lock already");
            return;
        }
        o->depth++;
        mproc__mgr_reply_int(c, 1);
        return;
    }
    if (remember_lock(cs, A(1), L(1)) < 0) {
        oom(c);
        return;
    }
    if (o->owner == 0 && o->nwait == 0) {
        o->owner = me;
        o->owner_pid = mproc__mgr_conn_pid(c);
        o->depth = 1;
        mproc__mgr_reply_int(c, o->owner_died ? 2 : 1);
        o->owner_died = false;
        return;
    }
    if (once) {
        forget_lock(cs, A(1), L(1));
        timeout_reply(c);
        return;
    }
    wait_add(cs, c, o);
    park(c, cs, OP_LOCK, deadline);
}

static void c_lrelease(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = lookup(st, A(1), L(1));
    if (o != NULL && o->type != T_LOCK) {
        wrongtype(c);
        return;
    }
    if (o == NULL || o->owner != mproc__mgr_conn_id(c)) {
        mproc__mgr_reply_error(c, "ENOTOWNER the lock is not held by this "
                                  "connection");
        return;
    }
    o->depth--;
    if (o->depth == 0) {
        o->owner = 0;
        o->owner_pid = 0;
        cstate *cs = cs_of(c, false);
        if (cs != NULL)
            forget_lock(cs, A(1), L(1));
        serve(st, o);
    }
    mproc__mgr_reply_int(c, o->type == T_LOCK ? o->depth : 0);
}

/* Locks acquired but whose name the waiter forgot: an acquire that was
 * parked and timed out keeps the name remembered; harmless, as release
 * checks the owner. */

/* events */

static mgr_obj *event_make(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    bool made;
    return sync_make(st, c, A(1), L(1), T_EVENT, &made);
}

static void c_eset(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = event_make(st, c, r);
    if (o == NULL)
        return;
    o->flag = true;
    mproc__mgr_reply_status(c, "OK");
    serve(st, o);
}

static void c_eclear(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = event_make(st, c, r);
    if (o == NULL)
        return;
    o->flag = false;
    mproc__mgr_reply_status(c, "OK");
}

static void c_eisset(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = lookup(st, A(1), L(1));
    if (o != NULL && o->type != T_EVENT)
        wrongtype(c);
    else
        mproc__mgr_reply_int(c, o != NULL && o->flag);
}

static void c_ewait(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    int64_t deadline;
    bool once;
    if (!arg_timeout(c, r, 2, &deadline, &once))
        return;
    mgr_obj *o = event_make(st, c, r);
    if (o == NULL)
        return;
    if (o->flag) {
        mproc__mgr_reply_int(c, 1);
        return;
    }
    cstate *cs = wait_state(c, once);
    if (cs != NULL)
        wait_on(cs, c, o, OP_EVENT, deadline);
}

/* semaphores */

static void c_screate(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long v;
    if (!parse_count(A(2), L(2), &v) || v > INT_MAX) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool bounded = false;
    if (r->argc == 4) {
        if (strcasecmp(A(3), "BOUNDED") != 0) {
            mproc__mgr_reply_error(c, R_SYNTAX);
            return;
        }
        bounded = true;
    } else if (r->argc > 4) {
        mproc__mgr_reply_error(c, R_SYNTAX);
        return;
    }
    bool made;
    mgr_obj *o = sync_make(st, c, A(1), L(1), T_SEM, &made);
    if (o == NULL)
        return;
    if (made) {
        o->value = o->initial = v;
        o->bounded = bounded;
    }
    mproc__mgr_reply_int(c, o->value);
}

#define sem_get(st, c, r) get_existing(st, c, r, T_SEM)

static void c_sacquire(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    int64_t deadline;
    bool once;
    if (!arg_timeout(c, r, 2, &deadline, &once))
        return;
    mgr_obj *o = sem_get(st, c, r);
    if (o == NULL)
        return;
    if (o->value > 0 && o->nwait == 0) {
        o->value--;
        mproc__mgr_reply_int(c, 1);
        return;
    }
    cstate *cs = wait_state(c, once);
    if (cs != NULL)
        wait_on(cs, c, o, OP_SEM, deadline);
}

static void c_srelease(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = sem_get(st, c, r);
    if (o == NULL)
        return;
    if ((o->bounded && o->value >= o->initial) || o->value >= INT_MAX) {
        mproc__mgr_reply_error(c, "EOVERRELEASE semaphore released too many "
                                  "times");
        return;
    }
    o->value++;
    mproc__mgr_reply_int(c, o->value);
    serve(st, o);
}

static void c_svalue(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = sem_get(st, c, r);
    if (o != NULL)
        mproc__mgr_reply_int(c, o->value);
}

/* barriers */

static void c_bcreate(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    long long p;
    if (!parse_count(A(2), L(2), &p) || p < 1 || p > INT_MAX) {
        mproc__mgr_reply_error(c, R_NOTINT);
        return;
    }
    bool made;
    mgr_obj *o = sync_make(st, c, A(1), L(1), T_BARRIER, &made);
    if (o == NULL)
        return;
    if (made)
        o->parties = (unsigned)p;
    mproc__mgr_reply_int(c, o->parties);
}

#define bar_get(st, c, r) get_existing(st, c, r, T_BARRIER)

static void c_bwait(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    int64_t deadline;
    bool once;
    if (!arg_timeout(c, r, 2, &deadline, &once))
        return;
    mgr_obj *o = bar_get(st, c, r);
    if (o == NULL)
        return;
    if (o->broken) {
        mproc__mgr_reply_error(c, "EBROKEN barrier is broken");
        return;
    }
    unsigned index = o->arrived++;
    if (o->arrived == o->parties) {
        /* The last: everyone goes on. */
        o->arrived = 0;
        o->generation++;
        mproc__mgr_reply_int(c, index);
        serve(st, o);
        return;
    }
    cstate *cs = cs_of(c, true);
    if (once || cs == NULL) {
        o->arrived--;
        if (cs == NULL) {
            oom(c);
            return;
        }
        /* A try that cannot pass breaks it, as a timeout does. */
        timeout_reply(c);
        o->broken = true;
        o->arrived = 0;
        serve(st, o);
        return;
    }
    cs->gen = o->generation;
    cs->index = index;
    wait_add(cs, c, o);
    park(c, cs, OP_BARRIER, deadline);
}

static void c_breset(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = bar_get(st, c, r);
    if (o == NULL)
        return;
    o->broken = true;
    serve(st, o); /* those waiting now: broken */
    o->broken = false;
    o->arrived = 0;
    o->generation++;
    mproc__mgr_reply_status(c, "OK");
}

static void c_babort(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = bar_get(st, c, r);
    if (o == NULL)
        return;
    o->broken = true;
    o->arrived = 0;
    serve(st, o);
    mproc__mgr_reply_status(c, "OK");
}

/* MPROC.STAT key: field/value pairs that tell the object's state. */
static void stat_head(mgr_conn *c, long long n, const char *type)
{
    mproc__mgr_reply_array(c, n);
    mproc__mgr_reply_bulk(c, "type", 4);
    mproc__mgr_reply_bulk(c, type, strlen(type));
}

static void stat_pair(mgr_conn *c, const char *k, long long v)
{
    mproc__mgr_reply_bulk(c, k, strlen(k));
    mproc__mgr_reply_int(c, v);
}

static void c_stat(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    mgr_obj *o = lookup_any(st, A(1), L(1));
    if (o == NULL) {
        mproc__mgr_reply_nil(c);
        return;
    }
    const char *t = type_names[o->type];
    switch (o->type) {
    case T_NONE: /* only clients waiting for it */
        stat_head(c, 4, t);
        stat_pair(c, "waiters", (long long)o->nwait);
        break;
    case T_STRING:
        stat_head(c, 4, t);
        stat_pair(c, "size", (long long)o->s->len);
        break;
    case T_HASH:
        stat_head(c, 4, t);
        stat_pair(c, "len", (long long)o->h.n);
        break;
    case T_LIST:
        stat_head(c, 10, t);
        stat_pair(c, "len", (long long)o->count);
        stat_pair(c, "maxsize", (long long)o->maxsize);
        stat_pair(c, "unfinished", o->unfinished);
        stat_pair(c, "waiters", (long long)o->nwait);
        break;
    case T_LOCK:
        stat_head(c, 12, t);
        stat_pair(c, "recursive", o->recursive);
        stat_pair(c, "owner_pid", o->owner != 0 ? (long long)o->owner_pid : 0);
        stat_pair(c, "depth", o->depth);
        stat_pair(c, "owner_died", o->owner_died);
        stat_pair(c, "waiters", (long long)o->nwait);
        break;
    case T_EVENT:
        stat_head(c, 6, t);
        stat_pair(c, "set", o->flag);
        stat_pair(c, "waiters", (long long)o->nwait);
        break;
    case T_SEM:
        stat_head(c, 10, t);
        stat_pair(c, "value", o->value);
        stat_pair(c, "initial", o->initial);
        stat_pair(c, "bounded", o->bounded);
        stat_pair(c, "waiters", (long long)o->nwait);
        break;
    default:
        stat_head(c, 10, t);
        stat_pair(c, "parties", o->parties);
        stat_pair(c, "waiting", o->arrived);
        stat_pair(c, "broken", o->broken);
        stat_pair(c, "waiters", (long long)o->nwait);
        break;
    }
}

/* Sorted by name (case-insensitively) for bsearch. */
static const cmd cmds[] = {
    {"APPEND", 3, c_append},
    {"BARRIER.ABORT", 2, c_babort},
    {"BARRIER.CREATE", 3, c_bcreate},
    {"BARRIER.RESET", 2, c_breset},
    {"BARRIER.WAIT", 3, c_bwait},
    {"BLPOP", -3, c_blpop},
    {"BRPOP", -3, c_brpop},
    {"COMMAND", -1, c_command},
    {"DBSIZE", 1, c_dbsize},
    {"DECR", 2, c_decr},
    {"DECRBY", 3, c_decrby},
    {"DEL", -2, c_del},
    {"ECHO", 2, c_echo},
    {"EVENT.CLEAR", 2, c_eclear},
    {"EVENT.ISSET", 2, c_eisset},
    {"EVENT.SET", 2, c_eset},
    {"EVENT.WAIT", 3, c_ewait},
    {"EXISTS", -2, c_exists},
    {"FLUSHALL", -1, c_flushall},
    {"FLUSHDB", -1, c_flushall},
    {"GET", 2, c_get},
    {"GETSET", 3, c_getset},
    {"HDEL", -3, c_hdel},
    {"HEXISTS", 3, c_hexists},
    {"HGET", 3, c_hget},
    {"HGETALL", 2, c_hgetall},
    {"HINCRBY", 4, c_hincrby},
    {"HINCRBYFLOAT", 4, c_hincrbyfloat},
    {"HKEYS", 2, c_hkeys},
    {"HLEN", 2, c_hlen},
    {"HMGET", -3, c_hmget},
    {"HSET", -4, c_hset},
    {"HSETNX", 4, c_hsetnx},
    {"HVALS", 2, c_hvals},
    {"INCR", 2, c_incr},
    {"INCRBY", 3, c_incrby},
    {"INCRBYFLOAT", 3, c_incrbyfloat},
    {"KEYS", 2, c_keys},
    {"LINDEX", 3, c_lindex},
    {"LINSERT", 5, c_linsert},
    {"LLEN", 2, c_llen},
    {"LOCK.ACQUIRE", 3, c_lacquire},
    {"LOCK.CREATE", -2, c_lcreate},
    {"LOCK.RELEASE", 2, c_lrelease},
    {"LPOP", -2, c_lpop},
    {"LPUSH", -3, c_lpush},
    {"LRANGE", 4, c_lrange},
    {"LREM", 4, c_lrem},
    {"LSET", 4, c_lset},
    {"MPROC.HELLO", -1, c_hello},
    {"MPROC.SHUTDOWN", 1, c_shutdown},
    {"MPROC.STAT", 2, c_stat},
    {"PING", -1, c_ping},
    {"QUEUE.CREATE", 3, c_qcreate},
    {"QUEUE.DONE", 2, c_qdone},
    {"QUEUE.JOIN", 3, c_qjoin},
    {"QUEUE.PUT", 4, c_qput},
    {"RPOP", -2, c_rpop},
    {"RPUSH", -3, c_rpush},
    {"SELECT", 2, c_select},
    {"SEM.ACQUIRE", 3, c_sacquire},
    {"SEM.CREATE", -3, c_screate},
    {"SEM.RELEASE", 2, c_srelease},
    {"SEM.VALUE", 2, c_svalue},
    {"SET", -3, c_set},
    {"SETNX", 3, c_setnx},
    {"STRLEN", 2, c_strlen},
    {"TYPE", 2, c_type},
};

static int cmd_cmp(const void *key, const void *elem)
{
    return strcasecmp(key, ((const cmd *)elem)->name);
}

int mproc__mgr_exec(mgr_store *st, mgr_conn *c, const mgr_req *r)
{
    if (r->argc < 1)
        return 0;
    const cmd *k = NULL;
    if (memchr(r->argv[0], '\0', r->argl[0]) == NULL && r->argl[0] < 32)
        k = bsearch(r->argv[0], cmds, sizeof cmds / sizeof cmds[0],
                    sizeof cmds[0], cmd_cmp);
    if (k == NULL) {
        char name[48];
        size_t n = r->argl[0] < 40 ? r->argl[0] : 40;
        for (size_t i = 0; i < n; i++)
            name[i] =
                isprint((unsigned char)r->argv[0][i]) ? r->argv[0][i] : '?';
        name[n] = '\0';
        mproc__mgr_reply_error(c, "ERR unknown command '%s'", name);
        return 0;
    }
    if ((k->arity > 0 && r->argc != k->arity) ||
        (k->arity < 0 && r->argc < -k->arity)) {
        char lower[32];
        size_t i = 0;
        for (; k->name[i] != '\0' && i < sizeof lower - 1; i++)
            lower[i] = (char)tolower((unsigned char)k->name[i]);
        lower[i] = '\0';
        mproc__mgr_reply_error(
            c, "ERR wrong number of arguments for '%s' command", lower);
        return 0;
    }
    if (st == NULL) {
        mproc__mgr_reply_error(c, "ERR no store");
        return 0;
    }
    k->fn(st, c, r);
    return k->fn == c_shutdown ? 1 : 0;
}
