/*
 * mproc/pool.h: a pool of worker processes (Python's multiprocessing.Pool):
 * map, imap, imap_unordered, apply and apply_async, with callbacks, chunks,
 * an initializer, a tasks-per-worker limit and progress reports.
 *
 * A pool pre-starts N workers, children of the calling process started
 * through mproc/process.h and named "PoolWorker-K" (K counts every pool
 * worker this process starts, replacements included), so that
 * %(processName)s in mproc/log.h records says which worker wrote. Each
 * worker has a task queue and a result queue in shared memory
 * (mproc/queue.h); a thread of the pool in the calling process (the pool
 * thread) hands tasks out, takes results in, runs the callbacks, and
 * watches the workers' pidfds.
 *
 * A task is a C function and an input byte string:
 *
 *     int fn(const void *in, size_t in_len, mproc_pool_out *out, void *arg);
 *
 * It runs in a worker. `in` points into the task queue's shared memory
 * (no copy on the worker's side; read-only, valid only while fn runs, 8-byte
 * aligned). fn writes its output (at most out->cap bytes, the call's bound)
 * at out->data, inside the result queue's shared memory, and sets out->len;
 * the pool thread copies it once into the caller's array or storage, or
 * hands the callback a pointer to it in place. fn returns 0 for success or
 * any other value for failure (a negative MPROC_E* code, say; see
 * mproc_pool_fail() to add a message and a place).
 *
 * Ownership: the pool copies every input into shared memory when it sends
 * the task, and the caller keeps its input buffers; but map and map_async
 * read the caller's input array again when a worker dies holding a chunk of
 * it, so that array must stay unchanged until the call returns (map) or the
 * result is ready or destroyed (map_async). Outputs written to a caller's
 * array belong to the caller; outputs the pool stores belong to the result
 * or iterator and are freed with it.
 *
 * What a worker sees of the caller: a worker is a forked copy of the
 * calling process made when the worker started (at mproc_pool_create(), or
 * later for a replacement). `fn` may be any function of the program; `arg`
 * is passed as a pointer value, so in the worker it points into the
 * worker's copy of memory taken when that worker started: give it data that
 * existed before the pool was created and does not change afterwards, or
 * shared memory mapped before then (mproc/shm.h). Send per-task data in
 * `in`.
 *
 * Failures (a result's records are mproc_failure values, mproc/process.h):
 *   - fn returns r != 0: the task fails with error r; message and place as
 *     given to mproc_pool_fail(), else "returned r (NAME: text)";
 *     from_child is true, exitcode and signal 0. The worker goes on.
 *   - fn calls mproc_fail(): the worker ends (that is what mproc_fail does)
 *     with its record (code, message, file:line, backtrace); the task fails
 *     with that record and the worker is replaced.
 *   - the worker is killed by a signal, or exits, while it holds a task:
 *     exactly that task fails, with error MPROC_ECHILD, the signal (or exit
 *     code) and the worker's name and pid; the worker is replaced and the
 *     other tasks it had been sent but had not started are sent again. A
 *     task a worker had received but not started when it died is never
 *     failed and never run twice.
 *   - the output is larger than the bound (out->len > out->cap): the task
 *     fails with MPROC_EMSGSIZE.
 *   - the pool is terminated or destroyed first: the task fails with
 *     MPROC_ECANCELED (never a result that waits for ever).
 *   - every worker's replacement failed its initializer: the tasks left
 *     fail with MPROC_EBROKEN, and so do later calls.
 * A dead worker never wedges the others: each worker has its own queues,
 * made new for its replacement, and the pool thread waits on the workers'
 * pidfds, never on a dead process.
 *
 * Callbacks (on_success, on_error, on_progress of mproc_pool_call_opts) run
 * in the calling process, on the pool thread, one at a time, as results
 * arrive (completion order). A callback that returns non-zero is recorded
 * on its result (mproc_pool_result_callback_error) and never stops the
 * pool. Callbacks must be short: while one runs, no other result is taken
 * in. From a callback, the calls that wait (map, apply, a result's get or
 * wait with a timeout other than 0, join, terminate, iter_next) return
 * MPROC_EDEADLK; calls that only submit (map_async, apply_async) and close
 * are allowed.
 *
 * Signals: workers ignore SIGINT, so Ctrl-C on a terminal reaches the
 * parent alone (by default it ends the parent, and the workers, which are
 * daemon children, are killed with it); a program that handles SIGINT calls
 * mproc_pool_terminate() (or close and join) from its main code, not from
 * the handler. Workers get SIGTERM's default action and the signal mask of
 * the thread that created the pool. The pool thread blocks every signal.
 *
 * Threads: every call may be made from any thread of the process that
 * created the pool, concurrently, except mproc_pool_destroy(), which must be
 * the last. A result or an iterator is used by one thread at a time.
 *
 * Fork: the pool belongs to the process that created it. In a forked child
 * (a worker's task included) every call on the copied handle returns
 * MPROC_ENOTOWNER, and mproc_pool_destroy() there frees nothing the parent
 * owns (it does nothing). Replacement workers are forked from the pool
 * thread while the caller's threads run: a task must not rely on a lock
 * another thread of the caller may hold at that moment (as with any fork
 * from a threaded program). Not usable by unrelated processes.
 */
#ifndef MPROC_POOL_H
#define MPROC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mproc/error.h"
#include "mproc/process.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A pool of workers. Opaque. */
typedef struct mproc_pool mproc_pool;

/* The outcome of map_async or apply_async (Python's AsyncResult). Opaque. */
typedef struct mproc_pool_result mproc_pool_result;

/* The results of imap or imap_unordered, one at a time. Opaque. */
typedef struct mproc_pool_iter mproc_pool_iter;

/*
 * Where a task writes its output. The pool fills data and cap and sets len
 * to 0 before the task runs; the task writes at most cap bytes at data and
 * sets len. data is 8-byte aligned, inside shared memory, and valid only
 * while the task runs.
 */
typedef struct mproc_pool_out {
    void *data;
    size_t cap;
    size_t len;
} mproc_pool_out;

/* A task function: see the top of this header. */
typedef int (*mproc_pool_fn)(const void *in, size_t in_len, mproc_pool_out *out,
                             void *arg);

/* One input of variable length (map with in_size 0). */
typedef struct mproc_pool_input {
    const void *data;
    size_t len;
} mproc_pool_input;

/*
 * Options of mproc_pool_create(). Start from MPROC_POOL_OPTS_INIT.
 *   workers      how many workers; 0: the CPUs this process may run on
 *                (sched_getaffinity). At most MPROC_POOL_WORKERS_MAX.
 *   initializer  NULL, or run once in each worker (replacements too) before
 *                its first task, with initarg; 0 means success. A
 *                failure (a non-zero return, mproc_fail, or the worker's
 *                death before the initializer returned) makes
 *                mproc_pool_create() fail; in a replacement, that worker
 *                is not replaced again (never a loop of respawns).
 *   max_tasks_per_worker
 *                0: none; else a worker runs exactly that many tasks, then
 *                exits and is replaced (Python's maxtasksperchild, counted
 *                in tasks, not chunks).
 *   out_max      the output bound of calls that give none (apply_async,
 *                map_async and imap without an output array); 0: 64 KiB.
 *   queue_capacity
 *                bytes of each worker's task queue and of its result queue
 *                (mproc/queue.h capacity, rounded up to a power of two);
 *                0: 1 MiB; at least 64 KiB (smaller values are raised).
 *                One task's input, and one task's output bound, must fit
 *                in one message of such a queue (half of it, less some
 *                headers): see mproc_pool_max_input().
 *   terminate_timeout_ms
 *                how long terminate (and destroy) waits after SIGTERM
 *                before it sends SIGKILL; 0: 1000; at most 600000.
 */
typedef struct mproc_pool_opts {
    unsigned workers;
    int (*initializer)(void *initarg);
    void *initarg;
    uint64_t max_tasks_per_worker;
    size_t out_max;
    size_t queue_capacity;
    int64_t terminate_timeout_ms;
} mproc_pool_opts;

#define MPROC_POOL_OPTS_INIT                                                   \
    {                                                                          \
        0, NULL, NULL, 0, 0, 0, 0                                              \
    }

/* The most workers one pool has. */
#define MPROC_POOL_WORKERS_MAX 1024u

/*
 * Options of one call (map, map_async, apply, apply_async, imap,
 * imap_unordered). Start from MPROC_POOL_CALL_OPTS_INIT; NULL means these
 * defaults.
 *   chunksize      tasks sent to a worker together (one message, one wake
 *                  up). 0: automatic: map and map_async use Python's rule,
 *                  ceil(n / (4 * workers)); imap and apply use 1. Chunks
 *                  change speed only: results, callbacks and failures stay
 *                  per task.
 *   out_max        the output bound when the call has no output array
 *                  (0: the pool's out_max); with an array, its element size
 *                  is the bound.
 *   max_in_flight  imap and imap_unordered: at most this many inputs are
 *                  taken from the input callback and not yet returned by
 *                  mproc_pool_iter_next(); 0: 8 * workers * chunksize (at
 *                  least 16).
 *   on_success     called for each task that succeeded, with its index and
 *                  its output (borrowed: valid only during the call; it
 *                  points into shared memory, not yet copied).
 *   on_error       called for each task that failed, with its record
 *                  (borrowed, valid during the call).
 *   on_progress    called after each task ends, with how many tasks of this
 *                  call have ended and how many there are (imap: taken so
 *                  far, as the total is not known).
 *   ctx            passed to the three callbacks.
 * Each callback returns 0, or non-zero to record a failure on the result
 * (see the top of this header): the pool goes on either way.
 */
typedef struct mproc_pool_call_opts {
    size_t chunksize;
    size_t out_max;
    size_t max_in_flight;
    int (*on_success)(void *ctx, size_t index, const void *out, size_t len);
    int (*on_error)(void *ctx, size_t index, const mproc_failure *f);
    int (*on_progress)(void *ctx, size_t done, size_t total);
    void *ctx;
} mproc_pool_call_opts;

#define MPROC_POOL_CALL_OPTS_INIT                                              \
    {                                                                          \
        0, 0, 0, NULL, NULL, NULL, NULL                                        \
    }

/*
 * mproc_pool_create: starts a pool and waits until every worker has run its
 * initializer.
 * out   (out) the pool, written only on success.
 * opts  NULL for defaults.
 * Errors: MPROC_EINVAL (out NULL, workers above MPROC_POOL_WORKERS_MAX, a
 * terminate_timeout_ms outside 0..600000, queue_capacity above
 * MPROC_QUEUE_CAPACITY_MAX, out_max larger than the queues can carry); the
 * initializer's error when it failed in any worker: its negative return value
 * or mproc_fail code, else MPROC_ECHILD (a positive return, a worker killed or
 * exiting during it); MPROC_ENOMEM, MPROC_EAGAIN (fork: too many processes; a
 * thread), MPROC_EMFILE and other -errno of the queues, pidfds or fork. On
 * failure every worker started is ended and reaped and nothing is left.
 * Ownership: end the pool with close + join, or terminate, then
 * mproc_pool_destroy(). Blocking: until every worker is ready (forks and
 * initializers; no timeout: an initializer that never returns blocks it).
 * Thread-safe.
 */
MPROC_API int mproc_pool_create(mproc_pool **out, const mproc_pool_opts *opts);

/*
 * mproc_pool_map: runs fn on n inputs, waits for all, writes the outputs in
 * input order (Python's Pool.map).
 * fn, arg   the task (the top of this header).
 * in        n inputs: when in_size > 0, an array of n elements of in_size
 *           bytes (task i gets in + i * in_size); when in_size is 0, an array
 *           of n mproc_pool_input (variable lengths). NULL only when n is 0.
 * out       NULL (outputs are only seen by on_success), or an array of n
 *           elements of out_size bytes: task i writes at most out_size bytes
 *           at out + i * out_size (its bound). Elements of failed tasks are
 *           left as they were.
 * opts      chunksize and callbacks; NULL for defaults.
 * timeout_ms  MPROC_FOREVER, or a bound on the whole call.
 * Returns 0 when every task succeeded; MPROC_ECHILD when at least one
 * failed (the others' outputs are written; on_error says which and why);
 * MPROC_ETIMEDOUT (the call is abandoned: tasks not yet started are
 * dropped, and nothing is written to out after the return); MPROC_EINVAL
 * (NULL pool or fn, NULL in with n > 0, NULL out with out_size > 0 or out
 * with out_size 0, bad timeout); MPROC_EMSGSIZE (an input, or out_size,
 * above mproc_pool_max_input()); MPROC_ESTATE (the pool was closed or
 * terminated); MPROC_EBROKEN (no worker left); MPROC_ENOTOWNER (not the
 * pool's process); MPROC_EDEADLK (called from a callback); MPROC_ENOMEM.
 * Blocking: until the last task ends or timeout_ms. The input array is read
 * until the call returns.
 */
MPROC_API int mproc_pool_map(mproc_pool *pool, mproc_pool_fn fn, void *arg,
                             const void *in, size_t in_size, size_t n,
                             void *out, size_t out_size,
                             const mproc_pool_call_opts *opts,
                             int64_t timeout_ms);

/*
 * mproc_pool_map_async: as mproc_pool_map(), without waiting: *res (out)
 * is the result. With out NULL the outputs are stored in the result, each
 * bounded by opts->out_max (or the pool's out_max).
 * The arrays in (when in_size > 0, or the mproc_pool_input array and the
 * buffers it names) and out must stay valid, and in unchanged, until the
 * result is ready or destroyed.
 * Errors: as mproc_pool_map() at submission (never MPROC_ECHILD or
 * MPROC_ETIMEDOUT: those come from mproc_pool_result_get). Never blocks.
 * Ownership: destroy *res with mproc_pool_result_destroy().
 */
MPROC_API int mproc_pool_map_async(mproc_pool_result **res, mproc_pool *pool,
                                   mproc_pool_fn fn, void *arg, const void *in,
                                   size_t in_size, size_t n, void *out,
                                   size_t out_size,
                                   const mproc_pool_call_opts *opts);

/*
 * mproc_pool_apply: runs one task and waits for it (Python's Pool.apply).
 * in, in_len  the input (in may be NULL when in_len is 0); copied.
 * out, out_cap  where the output goes (out_cap is the task's bound); out
 *             may be NULL when out_cap is 0.
 * out_len     (out, may be NULL) the output's length, written on success.
 * Returns 0; MPROC_ECHILD (the task failed; use apply_async to read its
 * record); MPROC_ETIMEDOUT (the task is abandoned: its output, if it comes,
 * is dropped); the submission errors of mproc_pool_map(). Blocking: up to
 * timeout_ms.
 */
MPROC_API int mproc_pool_apply(mproc_pool *pool, mproc_pool_fn fn, void *arg,
                               const void *in, size_t in_len, void *out,
                               size_t out_cap, size_t *out_len,
                               int64_t timeout_ms);

/*
 * mproc_pool_apply_async: submits one task (Python's Pool.apply_async);
 * *res (out) is its result, with the output stored in it (bound:
 * opts->out_max or the pool's). The input is copied before the return.
 * opts: callbacks (on_success, on_error; index 0) and out_max.
 * Errors: the submission errors of mproc_pool_map(). Never blocks.
 * Ownership: destroy *res with mproc_pool_result_destroy().
 */
MPROC_API int mproc_pool_apply_async(mproc_pool_result **res, mproc_pool *pool,
                                     mproc_pool_fn fn, void *arg,
                                     const void *in, size_t in_len,
                                     const mproc_pool_call_opts *opts);

/* ----- Results of map_async and apply_async ----- */

/*
 * mproc_pool_result_get: waits until every task of the result has ended.
 * Returns 0 (all succeeded), MPROC_ECHILD (at least one failed: see
 * mproc_pool_result_error), MPROC_ETIMEDOUT (not ready yet; nothing
 * changes), MPROC_EINVAL (NULL, bad timeout), MPROC_EDEADLK (from a
 * callback, with a timeout other than 0). May be called any number of
 * times, also after the pool was terminated or destroyed: a result never
 * waits for a pool that is gone (its tasks that had not ended fail with
 * MPROC_ECANCELED). A callback's failure does not change what get returns
 * (see mproc_pool_result_callback_error).
 */
MPROC_API int mproc_pool_result_get(mproc_pool_result *res, int64_t timeout_ms);

/* mproc_pool_result_wait: as get, but 0 once ready whatever the outcome. */
MPROC_API int mproc_pool_result_wait(mproc_pool_result *res,
                                     int64_t timeout_ms);

/* mproc_pool_result_ready: 1 when every task has ended, 0 before,
 * MPROC_EINVAL for NULL. Never blocks. */
MPROC_API int mproc_pool_result_ready(mproc_pool_result *res);

/* mproc_pool_result_successful: 1 when ready and every task succeeded, 0
 * when ready and one failed, MPROC_ESTATE when not ready (Python raises),
 * MPROC_EINVAL for NULL. */
MPROC_API int mproc_pool_result_successful(mproc_pool_result *res);

/*
 * mproc_pool_result_output: task i's output, once the result is ready.
 * *data (out) points at it (in the caller's output array, or stored in the
 * result; valid until mproc_pool_result_destroy; may be NULL when *len is
 * 0) and *len (out) is its length. Returns 0; MPROC_ECHILD (task i failed:
 * see mproc_pool_result_error); MPROC_ESTATE (not ready); MPROC_EINVAL
 * (NULL arguments, i out of range).
 */
MPROC_API int mproc_pool_result_output(mproc_pool_result *res, size_t i,
                                       const void **data, size_t *len);

/* mproc_pool_result_error: task i's failure record once the result is
 * ready, NULL when it succeeded, is not ready, or i is out of range.
 * Borrowed: valid until mproc_pool_result_destroy. */
MPROC_API const mproc_failure *mproc_pool_result_error(mproc_pool_result *res,
                                                       size_t i);

/*
 * mproc_pool_result_callback_error: the first non-zero value a callback of
 * this result returned (0 when none did, or not yet), with the task's index
 * in *index (may be NULL; for on_progress, the count it was given minus 1).
 * MPROC_EINVAL for NULL res. Never blocks.
 */
MPROC_API int mproc_pool_result_callback_error(mproc_pool_result *res,
                                               size_t *index);

/*
 * mproc_pool_result_destroy: frees the result. One not ready yet is
 * abandoned: tasks not started are dropped, outputs that still come are
 * dropped, and nothing is written to the caller's output array after the
 * return. NULL is ignored. Never blocks (beyond the pool's mutex).
 */
MPROC_API void mproc_pool_result_destroy(mproc_pool_result *res);

/* ----- imap ----- */

/*
 * The input callback of imap: gives input number index (0, 1, ...) in
 * *data and *len and returns 1; returns 0 when there is no more input, or a
 * negative code to stop the input with that error. The bytes are copied
 * before the next call; *data may be NULL when *len is 0. It runs in the
 * thread that calls mproc_pool_iter_next() (never on the pool thread), from
 * inside that call.
 */
typedef int (*mproc_pool_next_fn)(void *ctx, size_t index, const void **data,
                                  size_t *len);

/*
 * mproc_pool_imap: runs fn on inputs taken lazily from next(ctx, ...) and
 * returns the results one at a time in input order (Python's Pool.imap):
 * inputs are taken while results are returned, never more than
 * opts->max_in_flight ahead of the caller.
 * mproc_pool_imap_unordered: the same, results in the order they end.
 * it   (out) the iterator, written only on success.
 * opts chunksize (default 1), out_max (each output is stored until
 *      returned), max_in_flight, callbacks.
 * Errors: the submission errors of mproc_pool_map(), MPROC_EINVAL for a
 * NULL next. Never blocks; no input is taken before the first
 * mproc_pool_iter_next(). Ownership: mproc_pool_iter_destroy().
 * An iterator keeps its pool open: join after close waits until every
 * iterator has returned its last result or been destroyed.
 */
MPROC_API int mproc_pool_imap(mproc_pool_iter **it, mproc_pool *pool,
                              mproc_pool_fn fn, void *arg,
                              mproc_pool_next_fn next, void *next_ctx,
                              const mproc_pool_call_opts *opts);
MPROC_API int mproc_pool_imap_unordered(mproc_pool_iter **it, mproc_pool *pool,
                                        mproc_pool_fn fn, void *arg,
                                        mproc_pool_next_fn next, void *next_ctx,
                                        const mproc_pool_call_opts *opts);

/*
 * mproc_pool_iter_next: takes more input while there is room, then returns
 * the next result.
 * index (out, may be NULL) the task's input number.
 * data, len (out, may be NULL) the output: borrowed, valid until the next
 *       call on the iterator or its destroy.
 * Returns 0 (task *index succeeded); MPROC_ECHILD (task *index failed:
 * mproc_pool_iter_error() gives the record); MPROC_ECLOSED (every result
 * was returned and the input is finished); the input callback's negative
 * code, once, after the results of the inputs it gave (then
 * MPROC_ECLOSED); MPROC_ETIMEDOUT (nothing yet); MPROC_EINVAL (NULL,
 * bad timeout); MPROC_EDEADLK (from a callback, with a timeout other than
 * 0). Inputs an input callback gives after the pool was terminated fail
 * with MPROC_ECANCELED. Blocking: the input callback, then up to
 * timeout_ms.
 */
MPROC_API int mproc_pool_iter_next(mproc_pool_iter *it, size_t *index,
                                   const void **data, size_t *len,
                                   int64_t timeout_ms);

/* mproc_pool_iter_error: the record of the failure the last iter_next
 * returned (MPROC_ECHILD), else NULL. Borrowed, valid until the next call
 * on the iterator. */
MPROC_API const mproc_failure *mproc_pool_iter_error(mproc_pool_iter *it);

/* mproc_pool_iter_callback_error: as mproc_pool_result_callback_error. */
MPROC_API int mproc_pool_iter_callback_error(mproc_pool_iter *it,
                                             size_t *index);

/* mproc_pool_iter_destroy: frees the iterator; tasks not started are
 * dropped and outputs still to come are dropped. NULL is ignored. Never
 * blocks (beyond the pool's mutex). */
MPROC_API void mproc_pool_iter_destroy(mproc_pool_iter *it);

/* ----- Ending a pool ----- */

/*
 * mproc_pool_close: no new work (later calls return MPROC_ESTATE); the
 * work already submitted (and the inputs of open iterators) still runs,
 * then the workers exit. Returns 0, MPROC_EINVAL (NULL), MPROC_ENOTOWNER.
 * Repeating it is harmless. Never blocks.
 */
MPROC_API int mproc_pool_close(mproc_pool *pool);

/*
 * mproc_pool_terminate: stops now: tasks not ended fail with
 * MPROC_ECANCELED, every worker gets SIGTERM, and SIGKILL after the pool's
 * terminate_timeout_ms; returns once they are reaped. Bounded: a task that
 * never returns is killed. Returns 0; MPROC_ETIMEDOUT (a worker could not
 * be reaped in time, or the pool thread is stuck in a callback that does
 * not return: the workers were sent SIGKILL anyway); MPROC_EINVAL;
 * MPROC_ENOTOWNER; MPROC_EDEADLK (from a callback). Repeating it is
 * harmless.
 */
MPROC_API int mproc_pool_terminate(mproc_pool *pool);

/*
 * mproc_pool_join: waits until the workers have exited and the pool thread
 * has ended, after close or terminate. Returns 0; MPROC_ESTATE (neither
 * close nor terminate was called); MPROC_ETIMEDOUT; MPROC_EINVAL;
 * MPROC_ENOTOWNER; MPROC_EDEADLK (from a callback). After 0, every result's
 * tasks have ended and every callback has run.
 */
MPROC_API int mproc_pool_join(mproc_pool *pool, int64_t timeout_ms);

/*
 * mproc_pool_destroy: terminates the pool if it was not joined (bounded as
 * terminate) and frees it. Results and iterators stay valid until their own
 * destroy (their tasks that had not ended fail with MPROC_ECANCELED). NULL
 * is ignored. In a process other than the pool's, does nothing.
 */
MPROC_API void mproc_pool_destroy(mproc_pool *pool);

/* ----- Information ----- */

/* mproc_pool_workers: how many workers the pool was made with (0 for
 * NULL). */
MPROC_API unsigned mproc_pool_workers(const mproc_pool *pool);

/* mproc_pool_max_input: the largest input of one task, and the largest
 * output bound, the pool's queues carry (0 for NULL). */
MPROC_API size_t mproc_pool_max_input(const mproc_pool *pool);

/* ----- Inside a task ----- */

/*
 * mproc_pool_fail: a macro for a task to fail with a message and its place
 * without ending the worker:
 *     if (bad) return mproc_pool_fail(MPROC_EINVAL, "bad record %zu", i);
 * Records the code, the printf-formatted message (truncated to 1023 bytes)
 * and __FILE__:__LINE__ for the current task's failure record, and returns
 * code, which the task returns. The last call before the task returns wins;
 * the record is used only if the task returns non-zero. Outside a pool
 * worker it only returns code. Never blocks; not async-signal-safe.
 */
#define mproc_pool_fail(code, ...)                                             \
    mproc_pool_fail_at(__FILE__, __LINE__, (code), __VA_ARGS__)

/* The function behind mproc_pool_fail(); call the macro instead. */
MPROC_API int mproc_pool_fail_at(const char *file, int line, int code,
                                 const char *fmt, ...) MPROC_PRINTF(4, 5);

/*
 * mproc_pool_out_write: copies len bytes of data to the task's output and
 * sets out->len. Returns 0, or MPROC_EMSGSIZE when len exceeds out->cap
 * (nothing is copied; out->len is set to len, so the task fails with
 * MPROC_EMSGSIZE even if it returns 0), MPROC_EINVAL (NULL out, or NULL
 * data with len > 0).
 */
MPROC_API int mproc_pool_out_write(mproc_pool_out *out, const void *data,
                                   size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_POOL_H */
