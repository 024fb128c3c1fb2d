/*
 * mproc/shm.h: shared memory blocks, and typed shared values and arrays
 * (Python's multiprocessing.shared_memory, Value and Array).
 *
 * Every object lives in a region (docs/shared-memory.md): anonymous when
 * made with name NULL (shared with the children forked after it is made,
 * reachable by no one else), or named ("/name", at most NAME_MAX-1 bytes,
 * no other '/': a file in /dev/shm, mode 0600 unless opts say otherwise,
 * created with O_EXCL, opened by unrelated processes). Attaching or
 * opening never removes anything (unlike Python's resource tracker); only
 * an explicit unlink removes a name. Names a process made and forgot are
 * found and removed by the `mproc` command (it lists /dev/shm for mproc
 * headers).
 *
 * Fork: a child inherits every handle and sees the same memory; each
 * process closes its own handle. Handles are safe to use from
 * several threads; the memory itself is the caller's to synchronise (or
 * use the lock and atomic calls of Value and Array).
 */
#ifndef MPROC_SHM_H
#define MPROC_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/error.h"
#include "mproc/named.h"
#include "mproc/sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ shm blocks */

/*
 * A block of bytes. Fork: the child inherits the handle and the mapping,
 * at the same address. Unrelated processes open a named block with
 * mproc_shm_open; it maps at another address in each, so keep offsets in
 * it, not pointers.
 */
typedef struct mproc_shm mproc_shm;

typedef struct mproc_shm_opts {
    unsigned mode;       /* permission bits of a named block; 0 means 0600 */
    mproc_access access; /* open: whose blocks are accepted (named.h) */
} mproc_shm_opts;
#define MPROC_SHM_OPTS_INIT                                                    \
    {                                                                          \
        0, MPROC_ACCESS_INIT                                                   \
    }

/*
 * mproc_shm_create: a new block of size bytes, zero-filled, 64-byte
 * aligned; anonymous when name is NULL. A name ending in "XXXXXX" is a
 * template (mproc/named.h); mproc_shm_name gives the name made.
 * out: the handle, written only on success.
 * Errors: MPROC_EINVAL (out NULL, size 0, bad name, opts->mode above
 * 0777), MPROC_ENAMETOOLONG, MPROC_EEXIST (the name exists), MPROC_ENOMEM,
 * MPROC_ENOSPC (/dev/shm full), -errno. A failed create leaves no name
 * behind.
 * Ownership: mproc_shm_close the handle; mproc_shm_unlink the name.
 */
MPROC_API int mproc_shm_create(mproc_shm **out, const char *name, size_t size,
                               const mproc_shm_opts *opts);

/*
 * mproc_shm_open: opens (attaches) an existing named block; its size is
 * learned from its header. opts: NULL for defaults; only opts->access is
 * used (whose blocks are accepted: mproc/named.h).
 * Errors: MPROC_EINVAL (bad name, out NULL, access arrays),
 * MPROC_ENAMETOOLONG, MPROC_ENOENT, MPROC_EDENIED (the file's owner or mode
 * is not accepted by opts->access), MPROC_EBADOBJ (not an mproc block:
 * another mproc kind, a foreign file, a symlink, a directory, a damaged
 * block, or one whose creator never finished), MPROC_EVERSION,
 * MPROC_EACCES (the system's: the file's mode does not let this user open
 * it), MPROC_ENOMEM, -errno. Waits at most half a second for a block still
 * being made. Never removes anything.
 */
MPROC_API int mproc_shm_open(mproc_shm **out, const char *name,
                             const mproc_shm_opts *opts);

/* mproc_shm_close: unmaps the block from this process and frees the
 * handle; the name and other processes' mappings stay. NULL is ignored. */
MPROC_API void mproc_shm_close(mproc_shm *shm);

/*
 * mproc_shm_unlink: removes the name of a block after checking it is one
 * (a damaged block too: truncated, or its header's sizes scribbled on).
 * Mappings stay valid until closed.
 * Errors: MPROC_EINVAL, MPROC_ENAMETOOLONG, MPROC_ENOENT (no such name, e.g.
 * unlinked twice), MPROC_EBADOBJ (not an mproc shm block, a symlink, a
 * directory; not removed), MPROC_EVERSION, MPROC_EACCES, MPROC_EPERM
 * (another user's name in /dev/shm, which only its owner may remove),
 * -errno.
 */
MPROC_API int mproc_shm_unlink(const char *name);

/* mproc_shm_addr: the block's first byte in this process (borrowed, valid
 * until close); NULL for NULL. */
MPROC_API void *mproc_shm_addr(mproc_shm *shm);

/* mproc_shm_size: the block's size in bytes (as created); 0 for NULL. */
MPROC_API size_t mproc_shm_size(mproc_shm *shm);

/* mproc_shm_name: the name (borrowed, valid until close; the name made
 * from a template), NULL when anonymous or for NULL. */
MPROC_API const char *mproc_shm_name(mproc_shm *shm);

/* ------------------------------------------------------- Value and Array */

/* Element types (Python's typecodes 'b','B','h','H','i','I','q','Q','f',
 * 'd', and fixed-size bytes). */
typedef enum mproc_type {
    MPROC_TYPE_INT8 = 1,
    MPROC_TYPE_UINT8,
    MPROC_TYPE_INT16,
    MPROC_TYPE_UINT16,
    MPROC_TYPE_INT32,
    MPROC_TYPE_UINT32,
    MPROC_TYPE_INT64,
    MPROC_TYPE_UINT64,
    MPROC_TYPE_FLOAT,
    MPROC_TYPE_DOUBLE,
    MPROC_TYPE_BYTES /* opts.bytes_size bytes per element */
} mproc_type;

/*
 * An Array of count elements of one type; a Value is an Array of one
 * (mproc_value_* are shorthands).
 *
 * Two sets of calls reach the elements. The typed calls (below the untyped
 * ones: mproc_value_get_int64, mproc_array_add_double, ...) carry the C
 * type in their name and signature, so the compiler checks what is passed,
 * and they refuse an object of another type. The untyped calls take void *
 * and trust the caller that it points to the element type (an int given to
 * a double Value is stored as garbage; an int given to an int64 Value is
 * read 8 bytes wide): they are for generic code, where the type is known
 * only at run time, and for MPROC_TYPE_BYTES and ranges.
 *
 * With a lock (the default, as in Python) get and set of one element or a
 * range take the array's RLock, which mproc_array_get_lock hands out for
 * longer critical sections. add, exchange and compare_exchange are
 * lock-free atomic operations on one integer, float or double element,
 * with or without a lock (they do not take it, so do not mix them with
 * locked range updates of that element).
 *
 * Owner death. The lock is robust. When a get or set finds that a thread
 * died holding it, the elements may be torn: the dead holder may have been
 * half way through a set (some elements new, one partly written) or
 * through its own critical section under mproc_array_get_lock (any mix of
 * old and new it was making). That get or set still copies and returns
 * MPROC_EOWNERDEAD, and so does every later get and set, in every process,
 * until a caller holding the lock calls mproc_array_consistent to say the
 * elements are repaired or known good. The warning stays in the array, not
 * with the one caller that happened to meet the death, because a copy
 * cannot tell torn elements from good ones, and a caller that ignores the
 * code must not take the warning away from those that check. The lock
 * itself goes on working meanwhile (it never becomes not recoverable
 * through get or set). A caller that takes the lock itself
 * (mproc_lock_acquire on mproc_array_get_lock) and gets MPROC_EOWNERDEAD
 * follows the rules of mproc_lock_acquire: it repairs, then calls
 * mproc_array_consistent or mproc_lock_consistent before releasing. The
 * atomic operations take no lock and report no death; an array made
 * without a lock cannot notice one.
 *
 * Fork: the child inherits the handle and shares the elements, the lock
 * (not its ownership) and the owner-death mark, at the same address.
 * Unrelated processes open a named Array or Value with mproc_array_open or
 * mproc_value_open; type, count and lock come from the object.
 */
typedef struct mproc_array mproc_array;

typedef struct mproc_array_opts {
    bool lock;           /* give the array an RLock (default true) */
    size_t bytes_size;   /* element size for MPROC_TYPE_BYTES (1..65536) */
    unsigned mode;       /* 0 means 0600 */
    mproc_access access; /* open: whose objects are accepted (named.h) */
} mproc_array_opts;
#define MPROC_ARRAY_OPTS_INIT                                                  \
    {                                                                          \
        true, 0, 0, MPROC_ACCESS_INIT                                          \
    }

/*
 * mproc_array_create: a new zeroed array of count (>= 1) elements of type,
 * anonymous when name is NULL (a template name: mproc/named.h).
 * Errors: MPROC_EINVAL (out NULL, count 0, unknown type, bytes_size out of
 * range for MPROC_TYPE_BYTES, opts->mode above 0777), name errors,
 * MPROC_EEXIST, MPROC_ENOMEM (also count * element size too large),
 * MPROC_ENOSPC, -errno. Ownership: mproc_array_close; mproc_array_unlink
 * the name.
 */
MPROC_API int mproc_array_create(mproc_array **out, const char *name,
                                 mproc_type type, size_t count,
                                 const mproc_array_opts *opts);

/* mproc_array_open: opens a named array (or value); type, count and lock
 * come from its header, and only opts->access is used (opts may be NULL).
 * Errors as mproc_shm_open (MPROC_EBADOBJ: not an mproc Array or Value, or
 * its descriptor is inconsistent). */
MPROC_API int mproc_array_open(mproc_array **out, const char *name,
                               const mproc_array_opts *opts);

/* mproc_array_close: drops this handle; NULL is ignored. */
MPROC_API void mproc_array_close(mproc_array *a);

/* mproc_array_unlink: removes the name of a named array or value after
 * checking it is one. Errors as mproc_shm_unlink (MPROC_EBADOBJ: not an
 * mproc Array or Value). */
MPROC_API int mproc_array_unlink(const char *name);

/* mproc_array_type / _count / _elem_size: from the header as validated at
 * create/open, kept in the handle (0 for NULL). */
MPROC_API mproc_type mproc_array_type(mproc_array *a);
MPROC_API size_t mproc_array_count(mproc_array *a);
MPROC_API size_t mproc_array_elem_size(mproc_array *a);

/* mproc_array_get_lock: the array's RLock (borrowed, valid until close), or
 * NULL when made without one (and for NULL). */
MPROC_API mproc_lock *mproc_array_get_lock(mproc_array *a);

/* mproc_array_data: the elements in this process (borrowed, valid until
 * close; synchronise yourself). NULL for NULL. */
MPROC_API void *mproc_array_data(mproc_array *a);

/*
 * mproc_array_get_range / mproc_array_set_range (untyped): copy n elements
 * starting at start out of / into the array (buf holds n * elem_size
 * bytes), under the
 * lock when there is one, waiting for it up to timeout_ms (MPROC_FOREVER
 * waits, 0 tries once; ignored, but still checked, without a lock).
 * Errors: MPROC_EINVAL (NULL, buf NULL, timeout_ms below MPROC_FOREVER),
 * MPROC_ERANGE (start + n > count; nothing copied), MPROC_ETIMEDOUT (the
 * lock stayed held; nothing copied), MPROC_EOWNERDEAD (copied, but the
 * elements may be torn: a holder of the lock died and no one has called
 * mproc_array_consistent since; see "Owner death" above),
 * MPROC_ENOTRECOVERABLE (nothing copied; someone who held the lock through
 * mproc_array_get_lock released it without making it consistent),
 * MPROC_EOVERFLOW (nothing copied; the calling thread holds the lock
 * UINT32_MAX levels deep), MPROC_EDEADLK never (the lock is an RLock: a
 * holder may call these).
 * Thread and process safe; count and element size are those seen at
 * create/open, whatever the shared header says later.
 */
MPROC_API int mproc_array_get_range(mproc_array *a, size_t start, size_t n,
                                    void *buf, int64_t timeout_ms);
MPROC_API int mproc_array_set_range(mproc_array *a, size_t start, size_t n,
                                    const void *buf, int64_t timeout_ms);

/* mproc_array_get / mproc_array_set (untyped): one element (a range of 1),
 * with the same timeout and errors. */
MPROC_API int mproc_array_get(mproc_array *a, size_t i, void *out,
                              int64_t timeout_ms);
MPROC_API int mproc_array_set(mproc_array *a, size_t i, const void *in,
                              int64_t timeout_ms);

/*
 * mproc_array_consistent: says that the elements are repaired (or known
 * good) after MPROC_EOWNERDEAD: get and set return 0 again, and a lock the
 * caller took with MPROC_EOWNERDEAD from mproc_lock_acquire is marked
 * consistent too. The calling thread must hold the array's lock, so that no
 * get or set comes between its repair and this mark.
 * Errors: MPROC_EINVAL (NULL, an array made without a lock), MPROC_ENOTOWNER
 * (the calling thread does not hold the lock; nothing changes). Returns 0
 * also when nothing was marked. Never blocks; thread and process safe.
 */
MPROC_API int mproc_array_consistent(mproc_array *a);

/*
 * mproc_array_add (untyped): atomically adds *delta (of the element type)
 * to element i, storing the previous value in *old when old is not NULL.
 * Integers wrap around as unsigned arithmetic does.
 * Errors: MPROC_EINVAL (a or delta NULL, MPROC_TYPE_BYTES), MPROC_ERANGE
 * (i >= count). Lock-free: never blocks, no system call.
 */
MPROC_API int mproc_array_add(mproc_array *a, size_t i, const void *delta,
                              void *old);

/* mproc_array_exchange (untyped): atomically stores *in into element i and
 * returns the previous value in *old (may be NULL). Errors as
 * mproc_array_add (in NULL for delta NULL). */
MPROC_API int mproc_array_exchange(mproc_array *a, size_t i, const void *in,
                                   void *old);

/*
 * mproc_array_compare_exchange (untyped): atomically, if element i equals
 * *expected (bitwise: a float -0.0 is not 0.0, a NaN equals the same NaN),
 * stores *desired and sets *swapped to true; otherwise copies the current
 * value into *expected and sets *swapped to false. Errors as
 * mproc_array_add, and MPROC_EINVAL for a NULL pointer argument.
 */
MPROC_API int mproc_array_compare_exchange(mproc_array *a, size_t i,
                                           void *expected, const void *desired,
                                           bool *swapped);

/* mproc_array_name: the name (borrowed, valid until close; the name made
 * from a template), NULL when anonymous or for NULL. */
MPROC_API const char *mproc_array_name(mproc_array *a);

/* Value: an Array of one element. The calls mean the same as the array's
 * with i = 0; a Value opened with mproc_value_open may be an array (its
 * element 0 is used). */
typedef mproc_array mproc_value;
typedef mproc_array_opts mproc_value_opts;
#define MPROC_VALUE_OPTS_INIT MPROC_ARRAY_OPTS_INIT

/* mproc_value_create: a Value of one element of type, anonymous when name
 * is NULL, else named. Same options, errors, ownership and fork behaviour as
 * mproc_array_create() with count 1. */
MPROC_API int mproc_value_create(mproc_value **out, const char *name,
                                 mproc_type type, const mproc_value_opts *opts);

/* mproc_value_open: opens a named Value (or Array: its element 0 is used);
 * only opts->access is used. Errors as mproc_array_open(). */
MPROC_API int mproc_value_open(mproc_value **out, const char *name,
                               const mproc_value_opts *opts);

/* mproc_value_close: unmaps the Value from this process; never unlinks.
 * NULL-safe, never blocks. */
MPROC_API void mproc_value_close(mproc_value *v);

/* mproc_value_unlink: removes a Value's name. Errors as
 * mproc_array_unlink(). */
MPROC_API int mproc_value_unlink(const char *name);

/* mproc_value_get / mproc_value_set (untyped): reads or writes the value (under
 * its lock when it has one, waiting at most timeout_ms for it). Errors and
 * blocking as mproc_array_get() / mproc_array_set() with i = 0. */
MPROC_API int mproc_value_get(mproc_value *v, void *out, int64_t timeout_ms);
MPROC_API int mproc_value_set(mproc_value *v, const void *in,
                              int64_t timeout_ms);

/* mproc_value_get_lock: the Value's lock (borrowed, valid until close), or
 * NULL when it was made without one. As mproc_array_get_lock(). */
MPROC_API mproc_lock *mproc_value_get_lock(mproc_value *v);

/* mproc_value_consistent: as mproc_array_consistent(). */
MPROC_API int mproc_value_consistent(mproc_value *v);

/* mproc_value_add, mproc_value_exchange, mproc_value_compare_exchange
 * (untyped): atomic operations without the lock, as the array's with i = 0
 * (same errors; never block, no system call). */
MPROC_API int mproc_value_add(mproc_value *v, const void *delta, void *old);
MPROC_API int mproc_value_exchange(mproc_value *v, const void *in, void *old);
MPROC_API int mproc_value_compare_exchange(mproc_value *v, void *expected,
                                           const void *desired, bool *swapped);

/* ------------------------------------------------- typed Value and Array */

/*
 * The numeric element types, one X(S, T, K) each: S the suffix of the typed
 * calls, T the C type, K the mproc_type. MPROC_TYPE_BYTES has no typed
 * calls. Given X, the list expands to one use per type, for code that
 * makes its own per-type helpers.
 */
#define MPROC_NUMERIC_TYPES(X)                                                 \
    X(int8, int8_t, MPROC_TYPE_INT8)                                           \
    X(uint8, uint8_t, MPROC_TYPE_UINT8)                                        \
    X(int16, int16_t, MPROC_TYPE_INT16)                                        \
    X(uint16, uint16_t, MPROC_TYPE_UINT16)                                     \
    X(int32, int32_t, MPROC_TYPE_INT32)                                        \
    X(uint32, uint32_t, MPROC_TYPE_UINT32)                                     \
    X(int64, int64_t, MPROC_TYPE_INT64)                                        \
    X(uint64, uint64_t, MPROC_TYPE_UINT64)                                     \
    X(float, float, MPROC_TYPE_FLOAT)                                          \
    X(double, double, MPROC_TYPE_DOUBLE)

/*
 * Typed calls. For each (S, T, K) of MPROC_NUMERIC_TYPES, e.g. (int64,
 * int64_t, MPROC_TYPE_INT64) or (double, double, MPROC_TYPE_DOUBLE):
 *
 *   int mproc_value_get_S(mproc_value *v, T *out, int64_t timeout_ms);
 *   int mproc_value_set_S(mproc_value *v, T x, int64_t timeout_ms);
 *   int mproc_value_add_S(mproc_value *v, T delta, T *old);
 *   int mproc_value_exchange_S(mproc_value *v, T x, T *old);
 *   int mproc_value_compare_exchange_S(mproc_value *v, T *expected,
 *                                      T desired, bool *swapped);
 *
 * and the same five for one element of an Array, with its index after the
 * handle: mproc_array_get_S(mproc_array *a, size_t i, T *out,
 * int64_t timeout_ms), mproc_array_set_S(a, i, x, timeout_ms), and so on.
 *
 * Each does what the untyped call of the same verb does, with T in place
 * of void * (out: *out, *old, *expected and *swapped; old may be NULL):
 * get and set take the lock when there is one, wait for it at most
 * timeout_ms, and return the same codes as mproc_array_get / _set; add,
 * exchange and compare_exchange are lock-free, never block and return the
 * codes of mproc_array_add / _exchange / _compare_exchange. Before
 * anything else each checks the object's type (mproc_array_type): when it
 * is not K, the call returns MPROC_EINVAL and reads, writes and locks
 * nothing (an index out of range on an object of another type is
 * MPROC_EINVAL too). MPROC_EINVAL also for a NULL handle or pointer
 * argument (old excepted). Thread and process safe; fork as the object.
 */
#define MPROC__TYPED_DECLS(S, T, K)                                            \
    MPROC_API int mproc_value_get_##S(mproc_value *v, T *out,                  \
                                      int64_t timeout_ms);                     \
    MPROC_API int mproc_value_set_##S(mproc_value *v, T x,                     \
                                      int64_t timeout_ms);                     \
    MPROC_API int mproc_value_add_##S(mproc_value *v, T delta, T *old);        \
    MPROC_API int mproc_value_exchange_##S(mproc_value *v, T x, T *old);       \
    MPROC_API int mproc_value_compare_exchange_##S(                            \
        mproc_value *v, T *expected, T desired, bool *swapped);                \
    MPROC_API int mproc_array_get_##S(mproc_array *a, size_t i, T *out,        \
                                      int64_t timeout_ms);                     \
    MPROC_API int mproc_array_set_##S(mproc_array *a, size_t i, T x,           \
                                      int64_t timeout_ms);                     \
    MPROC_API int mproc_array_add_##S(mproc_array *a, size_t i, T delta,       \
                                      T *old);                                 \
    MPROC_API int mproc_array_exchange_##S(mproc_array *a, size_t i, T x,      \
                                           T *old);                            \
    MPROC_API int mproc_array_compare_exchange_##S(                            \
        mproc_array *a, size_t i, T *expected, T desired, bool *swapped);
MPROC_NUMERIC_TYPES(MPROC__TYPED_DECLS)
#undef MPROC__TYPED_DECLS
/* mproc_value_name: the name, as mproc_array_name(). */
MPROC_API const char *mproc_value_name(mproc_value *v);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_SHM_H */
