/*
 * Shared memory blocks and typed Value/Array objects on regions. A block's
 * payload is the user's bytes; an array's payload is a small descriptor, an
 * optional robust RLock and the elements (docs/shared-memory.md).
 */
#include <stdlib.h>
#include <string.h>

#include "internal/deadline.h"
#include "internal/lockcore.h"
#include "internal/region.h"
#include "internal/synclock.h"
#include "mproc/shm.h"

/* ------------------------------------------------------------ shm blocks */

struct mproc_shm {
    mproc__region region;
};

int mproc_shm_create(mproc_shm **out, const char *name, size_t size,
                     const mproc_shm_opts *opts)
{
    mproc_shm_opts o = MPROC_SHM_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL || size == 0)
        return MPROC_EINVAL;
    mproc_shm *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MPROC_ENOMEM;
    int rc =
        mproc__region_create(&m->region, name, MPROC__KIND_SHM, size, o.mode);
    if (rc < 0) {
        free(m);
        return rc;
    }
    rc = mproc__region_publish(&m->region);
    if (rc < 0) {
        mproc__region_abandon(&m->region);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int mproc_shm_open(mproc_shm **out, const char *name,
                   const mproc_shm_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_shm *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open(&m->region, name, MPROC__KIND_SHM,
                                opts != NULL ? &opts->access : NULL);
    if (rc < 0) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void mproc_shm_close(mproc_shm *shm)
{
    if (shm == NULL)
        return;
    mproc__region_close(&shm->region);
    free(shm);
}

int mproc_shm_unlink(const char *name)
{
    return mproc__region_unlink(name, MPROC__KIND_SHM);
}

void *mproc_shm_addr(mproc_shm *shm)
{
    return shm != NULL ? shm->region.payload : NULL;
}

size_t mproc_shm_size(mproc_shm *shm)
{
    return shm != NULL ? shm->region.payload_size : 0;
}

const char *mproc_shm_name(mproc_shm *shm)
{
    return shm != NULL ? shm->region.name : NULL;
}

/* ------------------------------------------------------- Value and Array */

#define DATA_OFFSET 128u
#define BYTES_MAX 65536u

typedef struct array_shared {
    uint32_t type;
    uint32_t has_lock;
    uint64_t count;
    uint64_t elem_size;
    uint64_t data_offset; /* from the start of this struct */
    mproc__lockword lock;
    /* 1 from the moment a get or set found the lock's holder dead until
     * mproc_array_consistent: the elements may be torn (see shm.h). */
    _Atomic uint32_t damaged;
    uint32_t reserved[15];
} array_shared;

_Static_assert(sizeof(array_shared) == DATA_OFFSET, "array descriptor size");

/* type, count, elem_size and has_lock are copied into the handle at
 * create/open (after validation) and never re-read from shared memory,
 * which another process may change: nothing read from there may index. */
struct mproc_array {
    mproc__region region;
    array_shared *s;
    unsigned char *data;
    mproc_type type;
    size_t count;
    size_t elem_size;
    bool has_lock;
    struct mproc_lock lock; /* embedded view of s->lock */
};

static size_t type_size(mproc_type t)
{
    switch (t) {
    case MPROC_TYPE_INT8:
    case MPROC_TYPE_UINT8:
        return 1;
    case MPROC_TYPE_INT16:
    case MPROC_TYPE_UINT16:
        return 2;
    case MPROC_TYPE_INT32:
    case MPROC_TYPE_UINT32:
    case MPROC_TYPE_FLOAT:
        return 4;
    case MPROC_TYPE_INT64:
    case MPROC_TYPE_UINT64:
    case MPROC_TYPE_DOUBLE:
        return 8;
    default:
        return 0;
    }
}

static int make(mproc_array **out, const char *name, uint32_t kind,
                mproc_type type, size_t count, const mproc_array_opts *opts)
{
    mproc_array_opts o = MPROC_ARRAY_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL || count == 0)
        return MPROC_EINVAL;
    size_t esize = type == MPROC_TYPE_BYTES ? o.bytes_size : type_size(type);
    if (esize == 0 || esize > BYTES_MAX)
        return MPROC_EINVAL;
    if (count > (SIZE_MAX - DATA_OFFSET) / esize)
        return MPROC_ENOMEM;
    mproc_array *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_create(&a->region, name, kind,
                                  DATA_OFFSET + count * esize, o.mode);
    if (rc < 0) {
        free(a);
        return rc;
    }
    a->s = a->region.payload;
    a->s->type = (uint32_t)type;
    a->s->has_lock = o.lock ? 1 : 0;
    a->s->count = count;
    a->s->elem_size = esize;
    a->s->data_offset = DATA_OFFSET;
    mproc__lockword_init(&a->s->lock, true);
    atomic_init(&a->s->damaged, 0);
    rc = mproc__region_publish(&a->region);
    if (rc < 0) {
        mproc__region_abandon(&a->region);
        free(a);
        return rc;
    }
    a->data = (unsigned char *)a->s + DATA_OFFSET;
    a->type = type;
    a->count = count;
    a->elem_size = esize;
    a->has_lock = o.lock;
    mproc__lock_embed(&a->lock, &a->s->lock);
    *out = a;
    return 0;
}

static int open_any(mproc_array **out, const char *name,
                    const mproc_access *access)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_array *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open(&a->region, name, MPROC__KIND_ANY, access);
    if (rc == 0) {
        /* Each field read once, into the handle, then validated. */
        uint32_t kind = a->region.hdr->kind;
        array_shared *s = a->region.payload;
        volatile array_shared *vs = s;
        uint32_t type = 0, has_lock = 0;
        uint64_t count = 0, elem_size = 0, data_offset = 0;
        if (a->region.payload_size >= sizeof *s) {
            type = vs->type;
            has_lock = vs->has_lock;
            count = vs->count;
            elem_size = vs->elem_size;
            data_offset = vs->data_offset;
        }
        size_t esize = type == MPROC_TYPE_BYTES ? (size_t)elem_size
                                                : type_size((mproc_type)type);
        if ((kind != MPROC__KIND_ARRAY && kind != MPROC__KIND_VALUE) ||
            esize == 0 || esize != elem_size || esize > BYTES_MAX ||
            count == 0 || data_offset != DATA_OFFSET ||
            count > (a->region.payload_size - DATA_OFFSET) / esize) {
            mproc__region_close(&a->region);
            rc = MPROC_EBADOBJ;
        } else {
            a->type = (mproc_type)type;
            a->count = (size_t)count;
            a->elem_size = esize;
            a->has_lock = has_lock != 0;
        }
    }
    if (rc < 0) {
        free(a);
        return rc;
    }
    a->s = a->region.payload;
    a->data = (unsigned char *)a->s + DATA_OFFSET;
    mproc__lock_embed(&a->lock, &a->s->lock);
    *out = a;
    return 0;
}

int mproc_array_create(mproc_array **out, const char *name, mproc_type type,
                       size_t count, const mproc_array_opts *opts)
{
    return make(out, name, MPROC__KIND_ARRAY, type, count, opts);
}

int mproc_array_open(mproc_array **out, const char *name,
                     const mproc_array_opts *opts)
{
    return open_any(out, name, opts != NULL ? &opts->access : NULL);
}

void mproc_array_close(mproc_array *a)
{
    if (a == NULL)
        return;
    mproc__region_close(&a->region);
    free(a);
}

int mproc_array_unlink(const char *name)
{
    int rc = mproc__region_unlink(name, MPROC__KIND_ARRAY);
    if (rc == MPROC_EBADOBJ)
        rc = mproc__region_unlink(name, MPROC__KIND_VALUE);
    return rc;
}

mproc_type mproc_array_type(mproc_array *a)
{
    return a != NULL ? a->type : (mproc_type)0;
}

size_t mproc_array_count(mproc_array *a)
{
    return a != NULL ? a->count : 0;
}

size_t mproc_array_elem_size(mproc_array *a)
{
    return a != NULL ? a->elem_size : 0;
}

mproc_lock *mproc_array_get_lock(mproc_array *a)
{
    return a != NULL && a->has_lock ? &a->lock : NULL;
}

void *mproc_array_data(mproc_array *a)
{
    return a != NULL ? a->data : NULL;
}

/* Takes the lock for a copy: 0, MPROC_EOWNERDEAD (held, and the elements
 * are marked damaged), or an error with the lock not held. A dead holder's
 * warning moves from the lock, which one caller alone would see, to the
 * array's `damaged` flag, which every caller sees until
 * mproc_array_consistent; the lock itself goes on working. */
static int lock_for_copy(mproc_array *a, int64_t timeout_ms)
{
    if (timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (!a->has_lock)
        return 0;
    int rc = 0;
    if (!mproc__lockword_try_fast(&a->s->lock)) { /* clock read only here */
        mproc__deadline d;
        rc = mproc__deadline_init(&d, timeout_ms);
        if (rc < 0)
            return rc;
        rc = mproc__lockword_acquire(&a->s->lock, &d);
    }
    if (rc == MPROC_EOWNERDEAD) {
        atomic_store(&a->s->damaged, 1);
        mproc__lockword_consistent(&a->s->lock);
    } else if (rc < 0) {
        return rc;
    }
    return atomic_load(&a->s->damaged) ? MPROC_EOWNERDEAD : 0;
}

static void unlock_after_copy(mproc_array *a)
{
    if (a->has_lock)
        mproc__lockword_release(&a->s->lock);
}

static int check_range(mproc_array *a, size_t start, size_t n)
{
    size_t count = a->count;
    return start <= count && n <= count - start ? 0 : MPROC_ERANGE;
}

int mproc_array_get_range(mproc_array *a, size_t start, size_t n, void *buf,
                          int64_t timeout_ms)
{
    if (a == NULL || buf == NULL)
        return MPROC_EINVAL;
    int rc = check_range(a, start, n);
    if (rc < 0)
        return rc;
    rc = lock_for_copy(a, timeout_ms);
    if (rc < 0 && rc != MPROC_EOWNERDEAD)
        return rc;
    size_t es = a->elem_size;
    memcpy(buf, a->data + start * es, n * es);
    unlock_after_copy(a);
    return rc;
}

int mproc_array_set_range(mproc_array *a, size_t start, size_t n,
                          const void *buf, int64_t timeout_ms)
{
    if (a == NULL || buf == NULL)
        return MPROC_EINVAL;
    int rc = check_range(a, start, n);
    if (rc < 0)
        return rc;
    rc = lock_for_copy(a, timeout_ms);
    if (rc < 0 && rc != MPROC_EOWNERDEAD)
        return rc;
    size_t es = a->elem_size;
    memcpy(a->data + start * es, buf, n * es);
    unlock_after_copy(a);
    return rc;
}

int mproc_array_get(mproc_array *a, size_t i, void *out, int64_t timeout_ms)
{
    return mproc_array_get_range(a, i, 1, out, timeout_ms);
}

int mproc_array_set(mproc_array *a, size_t i, const void *in,
                    int64_t timeout_ms)
{
    return mproc_array_set_range(a, i, 1, in, timeout_ms);
}

int mproc_array_consistent(mproc_array *a)
{
    if (a == NULL || !a->has_lock)
        return MPROC_EINVAL;
    if (!mproc__lockword_owned(&a->s->lock))
        return MPROC_ENOTOWNER;
    atomic_store(&a->s->damaged, 0);
    /* Also a lock the caller took with MPROC_EOWNERDEAD itself; when the
     * lock is not in that state this does nothing. */
    (void)mproc__lockword_consistent(&a->s->lock);
    return 0;
}

/* The element for an atomic operation, or NULL (with *rc set). */
static void *atomic_elem(mproc_array *a, size_t i, int *rc)
{
    if (a == NULL || a->type == MPROC_TYPE_BYTES) {
        *rc = MPROC_EINVAL;
        return NULL;
    }
    if (i >= a->count) {
        *rc = MPROC_ERANGE;
        return NULL;
    }
    *rc = 0;
    return a->data + i * a->elem_size;
}

#define ADD_INT(T)                                                             \
    do {                                                                       \
        T d_, o_;                                                              \
        memcpy(&d_, delta, sizeof d_);                                         \
        o_ = __atomic_fetch_add((T *)p, d_, __ATOMIC_SEQ_CST);                 \
        if (old != NULL)                                                       \
            memcpy(old, &o_, sizeof o_);                                       \
    } while (0)

/* Floating add: CAS loop on the bit pattern. */
#define ADD_FLOAT(F, U)                                                        \
    do {                                                                       \
        F d_, f_;                                                              \
        U cur_, next_;                                                         \
        memcpy(&d_, delta, sizeof d_);                                         \
        cur_ = __atomic_load_n((U *)p, __ATOMIC_RELAXED);                      \
        do {                                                                   \
            memcpy(&f_, &cur_, sizeof f_);                                     \
            f_ = f_ + d_;                                                      \
            memcpy(&next_, &f_, sizeof next_);                                 \
        } while (!__atomic_compare_exchange_n(                                 \
            (U *)p, &cur_, next_, true, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));  \
        if (old != NULL)                                                       \
            memcpy(old, &cur_, sizeof cur_);                                   \
    } while (0)

int mproc_array_add(mproc_array *a, size_t i, const void *delta, void *old)
{
    int rc;
    void *p = atomic_elem(a, i, &rc);
    if (p == NULL)
        return rc;
    if (delta == NULL)
        return MPROC_EINVAL;
    switch (a->type) {
    case MPROC_TYPE_INT8:
    case MPROC_TYPE_UINT8:
        ADD_INT(uint8_t);
        break;
    case MPROC_TYPE_INT16:
    case MPROC_TYPE_UINT16:
        ADD_INT(uint16_t);
        break;
    case MPROC_TYPE_INT32:
    case MPROC_TYPE_UINT32:
        ADD_INT(uint32_t);
        break;
    case MPROC_TYPE_INT64:
    case MPROC_TYPE_UINT64:
        ADD_INT(uint64_t);
        break;
    case MPROC_TYPE_FLOAT:
        ADD_FLOAT(float, uint32_t);
        break;
    case MPROC_TYPE_DOUBLE:
        ADD_FLOAT(double, uint64_t);
        break;
    default:
        return MPROC_EINVAL;
    }
    return 0;
}

#define XCHG(U)                                                                \
    do {                                                                       \
        U n_, o_;                                                              \
        memcpy(&n_, in, sizeof n_);                                            \
        o_ = __atomic_exchange_n((U *)p, n_, __ATOMIC_SEQ_CST);                \
        if (old != NULL)                                                       \
            memcpy(old, &o_, sizeof o_);                                       \
    } while (0)

int mproc_array_exchange(mproc_array *a, size_t i, const void *in, void *old)
{
    int rc;
    void *p = atomic_elem(a, i, &rc);
    if (p == NULL)
        return rc;
    if (in == NULL)
        return MPROC_EINVAL;
    switch (a->elem_size) {
    case 1:
        XCHG(uint8_t);
        break;
    case 2:
        XCHG(uint16_t);
        break;
    case 4:
        XCHG(uint32_t);
        break;
    default:
        XCHG(uint64_t);
        break;
    }
    return 0;
}

#define CAS(U)                                                                 \
    do {                                                                       \
        U e_, d_;                                                              \
        memcpy(&e_, expected, sizeof e_);                                      \
        memcpy(&d_, desired, sizeof d_);                                       \
        ok = __atomic_compare_exchange_n((U *)p, &e_, d_, false,               \
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);  \
        if (!ok)                                                               \
            memcpy(expected, &e_, sizeof e_);                                  \
    } while (0)

int mproc_array_compare_exchange(mproc_array *a, size_t i, void *expected,
                                 const void *desired, bool *swapped)
{
    int rc;
    void *p = atomic_elem(a, i, &rc);
    if (p == NULL)
        return rc;
    if (expected == NULL || desired == NULL || swapped == NULL)
        return MPROC_EINVAL;
    bool ok;
    switch (a->elem_size) {
    case 1:
        CAS(uint8_t);
        break;
    case 2:
        CAS(uint16_t);
        break;
    case 4:
        CAS(uint32_t);
        break;
    default:
        CAS(uint64_t);
        break;
    }
    *swapped = ok;
    return 0;
}

const char *mproc_array_name(mproc_array *a)
{
    return a != NULL ? a->region.name : NULL;
}

/* ----------------------------------------------------------------- Value */

int mproc_value_create(mproc_value **out, const char *name, mproc_type type,
                       const mproc_value_opts *opts)
{
    return make(out, name, MPROC__KIND_VALUE, type, 1, opts);
}

int mproc_value_open(mproc_value **out, const char *name,
                     const mproc_value_opts *opts)
{
    return open_any(out, name, opts != NULL ? &opts->access : NULL);
}

void mproc_value_close(mproc_value *v)
{
    mproc_array_close(v);
}

int mproc_value_unlink(const char *name)
{
    return mproc_array_unlink(name);
}

int mproc_value_get(mproc_value *v, void *out, int64_t timeout_ms)
{
    return mproc_array_get(v, 0, out, timeout_ms);
}

int mproc_value_set(mproc_value *v, const void *in, int64_t timeout_ms)
{
    return mproc_array_set(v, 0, in, timeout_ms);
}

mproc_lock *mproc_value_get_lock(mproc_value *v)
{
    return mproc_array_get_lock(v);
}

int mproc_value_consistent(mproc_value *v)
{
    return mproc_array_consistent(v);
}

int mproc_value_add(mproc_value *v, const void *delta, void *old)
{
    return mproc_array_add(v, 0, delta, old);
}

int mproc_value_exchange(mproc_value *v, const void *in, void *old)
{
    return mproc_array_exchange(v, 0, in, old);
}

int mproc_value_compare_exchange(mproc_value *v, void *expected,
                                 const void *desired, bool *swapped)
{
    return mproc_array_compare_exchange(v, 0, expected, desired, swapped);
}

/* ----------------------------------------------------------- typed calls */

/* The typed calls check the type the handle saw at create/open, then do
 * what the untyped call does. */
static int typed(mproc_array *a, mproc_type k)
{
    return a != NULL && a->type == k ? 0 : MPROC_EINVAL;
}

#define TYPED_DEFS(S, T, K)                                                    \
    int mproc_array_get_##S(mproc_array *a, size_t i, T *out,                  \
                            int64_t timeout_ms)                                \
    {                                                                          \
        int rc = typed(a, K);                                                  \
        return rc < 0 ? rc : mproc_array_get(a, i, out, timeout_ms);           \
    }                                                                          \
    int mproc_array_set_##S(mproc_array *a, size_t i, T x, int64_t timeout_ms) \
    {                                                                          \
        int rc = typed(a, K);                                                  \
        return rc < 0 ? rc : mproc_array_set(a, i, &x, timeout_ms);            \
    }                                                                          \
    int mproc_array_add_##S(mproc_array *a, size_t i, T delta, T *old)         \
    {                                                                          \
        int rc = typed(a, K);                                                  \
        return rc < 0 ? rc : mproc_array_add(a, i, &delta, old);               \
    }                                                                          \
    int mproc_array_exchange_##S(mproc_array *a, size_t i, T x, T *old)        \
    {                                                                          \
        int rc = typed(a, K);                                                  \
        return rc < 0 ? rc : mproc_array_exchange(a, i, &x, old);              \
    }                                                                          \
    int mproc_array_compare_exchange_##S(                                      \
        mproc_array *a, size_t i, T *expected, T desired, bool *swapped)       \
    {                                                                          \
        int rc = typed(a, K);                                                  \
        return rc < 0 ? rc                                                     \
                      : mproc_array_compare_exchange(a, i, expected, &desired, \
                                                     swapped);                 \
    }                                                                          \
    int mproc_value_get_##S(mproc_value *v, T *out, int64_t timeout_ms)        \
    {                                                                          \
        return mproc_array_get_##S(v, 0, out, timeout_ms);                     \
    }                                                                          \
    int mproc_value_set_##S(mproc_value *v, T x, int64_t timeout_ms)           \
    {                                                                          \
        return mproc_array_set_##S(v, 0, x, timeout_ms);                       \
    }                                                                          \
    int mproc_value_add_##S(mproc_value *v, T delta, T *old)                   \
    {                                                                          \
        return mproc_array_add_##S(v, 0, delta, old);                          \
    }                                                                          \
    int mproc_value_exchange_##S(mproc_value *v, T x, T *old)                  \
    {                                                                          \
        return mproc_array_exchange_##S(v, 0, x, old);                         \
    }                                                                          \
    int mproc_value_compare_exchange_##S(mproc_value *v, T *expected,          \
                                         T desired, bool *swapped)             \
    {                                                                          \
        return mproc_array_compare_exchange_##S(v, 0, expected, desired,       \
                                                swapped);                      \
    }

MPROC_NUMERIC_TYPES(TYPED_DEFS)
const char *mproc_value_name(mproc_value *v)
{
    return mproc_array_name(v);
}
