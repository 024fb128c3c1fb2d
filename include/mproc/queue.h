/*
 * mproc/queue.h: queues in shared memory (Python's multiprocessing Queue,
 * JoinableQueue and SimpleQueue): many producer and many consumer
 * processes, messages of any size, bounds in messages and in bytes,
 * blocking and non-blocking put and get with timeouts, an exact qsize,
 * shutdown, zero-copy reserve/commit and borrow/release, and an fd for
 * event loops.
 *
 * A message is a byte string of any length (0 bytes included). Messages up
 * to mproc_queue_max_inplace() bytes are copied into the queue's memory
 * whole and published at once; longer ones are streamed through it in
 * pieces while a consumer takes them out (unless the queue was made with
 * opts.no_stream), so a message may be larger than the queue's memory.
 *
 * put is synchronous: there is no feeder thread. When put returns 0 the
 * message is in the queue, and the process may exit at once. A put or get
 * that finds the other side awake makes no system call; a side that must
 * wait spins briefly, then sleeps on a futex, and is woken only when it
 * sleeps.
 *
 * Death of a process (SIGKILL at any instruction), the rules every call
 * keeps:
 *   - A producer killed inside a put: the message went whole or not at all.
 *     A streamed message it had begun is dropped by the consumer that
 *     reads it; no part of it is ever delivered.
 *   - A consumer killed inside a get: the message it was taking is either
 *     still in the queue (taken by the next consumer) or gone with the dead
 *     process, never both and never torn. A consumer killed while it holds a
 *     borrowed message (mproc_queue_borrow) loses that message: it is not
 *     delivered again. A consumer killed inside a streamed message loses
 *     that message; the others go on with the next one.
 *   - A process killed while asleep in put or get wedges no one: the queue's
 *     internal locks are robust, and sleepers look for dead lock holders
 *     every 50 ms or so.
 *   - JoinableQueue: a consumer process that dies holding tasks it got and
 *     did not mark done has them written off (counted as done) when a
 *     joiner notices its death, and mproc_queue_join() then returns
 *     MPROC_EOWNERDEAD to each joiner, once, so that no join hangs for a
 *     dead worker and none succeeds without being told.
 *
 * Anonymous or named, as every mproc shared object (mproc/named.h): name
 * NULL makes a queue that children forked afterwards inherit and nobody
 * else can reach; a name ("/name") makes a file in /dev/shm that unrelated
 * processes open with mproc_queue_open(). close drops this process's handle;
 * unlink removes the name.
 *
 * Fork: a child inherits every handle and uses the same queue; each process
 * closes its own copy. A handle holding a reservation or a borrowed message
 * at the fork keeps it in the parent only (the child's copy has none). The
 * fd of mproc_queue_fd() is per process: a child calls it on its own handle.
 *
 * Threads: every call is safe from several threads of one process. A
 * handle holds at most one reservation and one borrowed message at a time;
 * threads that each want one use a handle each (open the queue again, or
 * create it and fork).
 */
#ifndef MPROC_QUEUE_H
#define MPROC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/error.h"
#include "mproc/named.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A Queue or JoinableQueue. Opaque. */
typedef struct mproc_queue mproc_queue;

/* The default memory of a queue: 1 MiB. */
#define MPROC_QUEUE_CAPACITY_DEFAULT ((size_t)1 << 20)
/* The smallest and largest memory a queue may have. */
#define MPROC_QUEUE_CAPACITY_MIN ((size_t)4096)
#define MPROC_QUEUE_CAPACITY_MAX ((size_t)1 << 30)
/* The most messages a queue holds at once (its maxsize when 0 is given). */
#define MPROC_QUEUE_MAXSIZE_MAX ((size_t)0x7fffffff)

/*
 * Options of mproc_queue_create() (and, for `access` only, of
 * mproc_queue_open()). Start from MPROC_QUEUE_OPTS_INIT.
 *   maxsize        the bound in messages: put waits while that many are in
 *                  the queue. 0: no bound but memory (and
 *                  MPROC_QUEUE_MAXSIZE_MAX).
 *   capacity       the bound in bytes: the queue's memory, for messages and
 *                  an 8-byte header each (a message of n bytes takes
 *                  8 + n rounded up to 8). Rounded up to a power of two,
 *                  MPROC_QUEUE_CAPACITY_MIN .. MPROC_QUEUE_CAPACITY_MAX;
 *                  0: MPROC_QUEUE_CAPACITY_DEFAULT. Messages up to half of
 *                  it (minus a header) travel whole.
 *   joinable       a JoinableQueue: mproc_queue_task_done() and
 *                  mproc_queue_join() work.
 *   no_stream      refuse messages longer than mproc_queue_max_inplace()
 *                  with MPROC_EMSGSIZE instead of streaming them.
 *   max_consumers  how many processes may at once hold a borrowed message or
 *                  (JoinableQueue) tasks not yet marked done (0: 64; at most
 *                  4096). A process that tries beyond it gets MPROC_EAGAIN.
 *                  Dead processes' places are reused.
 *   mode           permission bits of a named queue (0: 0600).
 *   access         open: whose queues are accepted (mproc/named.h).
 */
typedef struct mproc_queue_opts {
    size_t maxsize;
    size_t capacity;
    bool joinable;
    bool no_stream;
    unsigned max_consumers;
    unsigned mode;
    mproc_access access;
} mproc_queue_opts;

#define MPROC_QUEUE_OPTS_INIT                                                  \
    {                                                                          \
        0, 0, false, false, 0, 0, MPROC_ACCESS_INIT                            \
    }

/*
 * mproc_queue_create: makes a new, empty queue; anonymous when name is
 * NULL, else named (mproc/named.h).
 * out   (out) the handle, written only on success.
 * opts  NULL for defaults.
 * Errors: MPROC_EINVAL (out NULL, a bad name, capacity above
 * MPROC_QUEUE_CAPACITY_MAX, maxsize above MPROC_QUEUE_MAXSIZE_MAX,
 * max_consumers above 4096, mode above 0777), MPROC_ENAMETOOLONG,
 * MPROC_EEXIST (the name exists), MPROC_ENOMEM, MPROC_ENOSPC (/dev/shm
 * full), another -errno. A failed create leaves no name behind.
 * Ownership: close the handle with mproc_queue_close(); unlink a name with
 * mproc_queue_unlink(). Never blocks. A named queue's memory is allocated
 * in /dev/shm at create (a full /dev/shm is MPROC_ENOSPC here, never a
 * SIGBUS later); an anonymous one's pages are touched as messages use them.
 */
MPROC_API int mproc_queue_create(mproc_queue **out, const char *name,
                                 const mproc_queue_opts *opts);

/*
 * mproc_queue_open: opens a named Queue or JoinableQueue made by any
 * process; its kind, bounds and memory come from the object.
 * opts: NULL for defaults; only opts->access is used.
 * Errors: MPROC_EINVAL, MPROC_ENAMETOOLONG, MPROC_ENOENT, MPROC_EBADOBJ
 * (not an mproc queue), MPROC_EVERSION, MPROC_EACCES (mproc/named.h),
 * MPROC_EPROTO (the queue's header makes no sense: a file scribbled on),
 * MPROC_ENOMEM. Waits at most half a second for a queue still being made.
 */
MPROC_API int mproc_queue_open(mproc_queue **out, const char *name,
                               const mproc_queue_opts *opts);

/*
 * mproc_queue_close: drops this process's handle (and its fd, see
 * mproc_queue_fd). A reservation not committed is cancelled; a borrowed
 * message not released is released (it is gone from the queue). The queue
 * and its messages stay for the other handles. NULL is ignored. Returns
 * within a bounded time. Not to be called while another thread uses the
 * handle.
 */
MPROC_API void mproc_queue_close(mproc_queue *q);

/* mproc_queue_unlink: removes a named queue's name (the queue lives on
 * while open). Errors: name errors, MPROC_ENOENT, MPROC_EBADOBJ (not a
 * queue: nothing is removed), MPROC_EVERSION. */
MPROC_API int mproc_queue_unlink(const char *name);

/*
 * mproc_queue_put: puts one message of len bytes (buf may be NULL when len
 * is 0), waiting up to timeout_ms while the queue is full (maxsize
 * messages, or no room in its memory).
 * Returns 0 (the message is in the queue); MPROC_ETIMEDOUT (nothing was
 * put; a streamed message whose put timed out half way is dropped whole:
 * no consumer sees a part of it); MPROC_ECLOSED (the queue was shut
 * down); MPROC_EMSGSIZE (len above mproc_queue_max_inplace() on a queue
 * made with no_stream); MPROC_EINVAL (NULL q, NULL buf with len > 0, bad
 * timeout, or this handle holds a reservation: commit it first);
 * MPROC_EPROTO (the queue's shared words were scribbled on).
 * buf is only read during the call. Thread and process safe.
 */
MPROC_API int mproc_queue_put(mproc_queue *q, const void *buf, size_t len,
                              int64_t timeout_ms);

/* One message of a batch. */
typedef struct mproc_queue_msg {
    const void *data;
    size_t len;
} mproc_queue_msg;

/*
 * mproc_queue_put_batch: puts n messages in order, publishing them together
 * where they fit (consumers see them all at once, as n ordinary messages).
 * *sent (may be NULL) is how many went, also on error. Returns as
 * mproc_queue_put(); after an error the first *sent messages are in the
 * queue and the rest are not.
 */
MPROC_API int mproc_queue_put_batch(mproc_queue *q, const mproc_queue_msg *msgs,
                                    size_t n, size_t *sent, int64_t timeout_ms);

/*
 * mproc_queue_get: takes the next message into buf (capacity cap); *len
 * (out) is its size. Waits up to timeout_ms while the queue is empty.
 * Returns 0; MPROC_EMSGSIZE when the message is longer than cap (*len is
 * its size and it stays first in the queue: call again with a buffer that
 * large, or use mproc_queue_get_alloc); MPROC_ETIMEDOUT (also when another
 * consumer holds the consumers' side past the deadline); MPROC_ECLOSED (the
 * queue was shut down and every message is taken); MPROC_EINVAL (NULL q or
 * len, NULL buf with cap > 0, bad timeout); MPROC_EPROTO (the queue's
 * memory was scribbled on: every later call gives it too).
 * A get that times out inside a streamed message keeps what it has read in
 * the handle and holds the consumers' side (other consumers wait) until a
 * later get or get_alloc on this handle, from the same thread, finishes
 * the message; closing the handle drops it.
 * Thread and process safe; consumers take messages in the order they were
 * put (one producer's messages in its order; several producers' messages
 * in the order their puts published).
 */
MPROC_API int mproc_queue_get(mproc_queue *q, void *buf, size_t cap,
                              size_t *len, int64_t timeout_ms);

/*
 * mproc_queue_get_alloc: as mproc_queue_get() into a buffer the library
 * allocates: *out (free with free()) holds *len bytes and one NUL byte after
 * them. max guards the size (SIZE_MAX: none): a longer message gives
 * MPROC_EMSGSIZE with *len set and the message kept. MPROC_ENOMEM (the
 * message is kept). Writes *out only on success.
 */
MPROC_API int mproc_queue_get_alloc(mproc_queue *q, void **out, size_t *len,
                                    size_t max, int64_t timeout_ms);

/*
 * mproc_queue_get_batch: takes up to n messages at once into buf, one after
 * another (message i starts where message i-1 ends), with lens[i] the size
 * of message i. Waits up to timeout_ms for the first message; takes the
 * ones that are there after it, while they fit in cap and are not streamed.
 * *got (out) is how many were taken (>= 1 on success). Returns as
 * mproc_queue_get() (MPROC_EMSGSIZE when the first message does not fit
 * in cap: lens[0] is its size and it stays queued).
 */
MPROC_API int mproc_queue_get_batch(mproc_queue *q, void *buf, size_t cap,
                                    size_t *lens, size_t n, size_t *got,
                                    int64_t timeout_ms);

/* ----- Zero copy ----- */

/*
 * mproc_queue_reserve: reserves room for a message of len bytes (at most
 * mproc_queue_max_inplace()) inside the queue's memory and gives its
 * address in *buf (out); write the message there, then publish it with
 * mproc_queue_commit() or drop it with mproc_queue_cancel(). Waits up to
 * timeout_ms for room. Until the commit or cancel, this handle holds the
 * producers' side: other producers wait (keep it short). A producer killed
 * between reserve and commit puts nothing.
 * Returns 0; MPROC_ETIMEDOUT; MPROC_ECLOSED; MPROC_EMSGSIZE (len above
 * mproc_queue_max_inplace()); MPROC_EINVAL (NULL arguments, bad timeout,
 * this handle already holds a reservation); MPROC_EPROTO.
 * *buf is valid until the commit or cancel. Not thread-safe for one
 * handle between reserve and commit (a handle holds one reservation).
 */
MPROC_API int mproc_queue_reserve(mproc_queue *q, void **buf, size_t len,
                                  int64_t timeout_ms);

/*
 * mproc_queue_commit: publishes the reserved message with its final size
 * len (at most the reserved size). Returns 0; MPROC_ESTATE (no reservation
 * on this handle, or it belongs to another process after a fork);
 * MPROC_EINVAL (len larger than reserved; the reservation stays);
 * MPROC_ECLOSED (the queue was shut down meanwhile: nothing is put). Never
 * blocks.
 */
MPROC_API int mproc_queue_commit(mproc_queue *q, size_t len);

/* mproc_queue_cancel: drops the reservation: nothing is put. 0,
 * MPROC_ESTATE (no reservation). Never blocks. */
MPROC_API int mproc_queue_cancel(mproc_queue *q);

/*
 * mproc_queue_borrow: takes the next message in place: *data (out) points
 * at it inside the queue's memory, *len (out) is its size. The message is
 * taken (no other consumer gets it, and qsize counts it out) but its memory
 * stays reserved until mproc_queue_release(); meanwhile other consumers go
 * on with the next messages. A streamed message cannot be borrowed:
 * MPROC_EMSGSIZE (*len is its size; it stays first in the queue: take it
 * with get or get_alloc). Waits up to timeout_ms.
 * Returns as mproc_queue_get(), plus MPROC_EINVAL (this handle already
 * holds a borrowed message), MPROC_EAGAIN (max_consumers processes already
 * hold borrowed messages or tasks).
 * *data is valid until the release; a consumer killed while it holds it
 * loses the message (the header comment). Borrowed memory that is never
 * released stops the queue's memory from being reused past it: release
 * promptly.
 */
MPROC_API int mproc_queue_borrow(mproc_queue *q, const void **data, size_t *len,
                                 int64_t timeout_ms);

/* mproc_queue_release: gives back the memory of the borrowed message. 0,
 * MPROC_ESTATE (nothing borrowed on this handle), MPROC_EINVAL (NULL).
 * Never blocks. */
MPROC_API int mproc_queue_release(mproc_queue *q);

/* ----- JoinableQueue ----- */

/*
 * mproc_queue_task_done: marks one task (a message taken by get, get_alloc,
 * get_batch or borrow) as done. Returns 0; MPROC_EOVERRELEASE (more
 * task_done calls than messages put: nothing changes; Python's
 * ValueError); MPROC_EINVAL (NULL, or not a JoinableQueue). Waits only
 * while another process counts a task (a few instructions), or about 50 ms
 * for one killed while counting, whose count it then finishes.
 * Tasks count per queue, not per consumer, as in Python; the death rule of
 * the header comment counts the tasks a process got against its own
 * task_done calls: a process killed inside task_done has either counted
 * the task or not, never half (then the task is written off with it).
 */
MPROC_API int mproc_queue_task_done(mproc_queue *q);

/*
 * mproc_queue_join: waits up to timeout_ms until every message ever put has
 * been marked done. Returns 0; MPROC_EOWNERDEAD (every task is accounted
 * for, but some were written off because the consumer that got them died:
 * told once to each handle, for the tasks written off since its last join);
 * MPROC_ETIMEDOUT; MPROC_EINVAL (NULL, not a JoinableQueue, bad timeout).
 */
MPROC_API int mproc_queue_join(mproc_queue *q, int64_t timeout_ms);

/* ----- State ----- */

/*
 * mproc_queue_qsize: the number of messages in the queue (put and not yet
 * taken) into *n: exact at the instant it is read (a streamed message
 * counts from its first piece). MPROC_EINVAL for NULL. Never blocks.
 */
MPROC_API int mproc_queue_qsize(mproc_queue *q, size_t *n);

/* mproc_queue_empty / mproc_queue_full: 1 or 0 (a snapshot), MPROC_EINVAL
 * for NULL. full means maxsize messages are in the queue. */
MPROC_API int mproc_queue_empty(mproc_queue *q);
MPROC_API int mproc_queue_full(mproc_queue *q);

/* mproc_queue_max_inplace: the largest message that travels whole (and may
 * be reserved or borrowed); 0 for NULL. */
MPROC_API size_t mproc_queue_max_inplace(mproc_queue *q);

/* mproc_queue_capacity: the queue's memory in bytes; 0 for NULL. */
MPROC_API size_t mproc_queue_capacity(mproc_queue *q);

/* mproc_queue_maxsize: the bound in messages (0: none); 0 for NULL. */
MPROC_API size_t mproc_queue_maxsize(mproc_queue *q);

/*
 * A snapshot of a queue for monitoring (`mproc stat` prints one): what its
 * shared words say at one instant, for people, not for synchronising.
 *   depth             messages in the queue (as mproc_queue_qsize);
 *   consumer_waiting  a consumer (or another process's fd helper) sleeps
 *                     for a message;
 *   producer_waiting  a producer sleeps for room;
 *   producer_tid, consumer_tid
 *                     the thread holding the producers' or the consumers'
 *                     lock, 0 when free (a consumer holds its lock while it
 *                     sleeps for a message);
 *   consumer_places   places of max_consumers in use;
 *   unfinished        JoinableQueue: messages put and not yet marked done.
 */
typedef struct mproc_queue_stats {
    size_t depth;
    bool consumer_waiting;
    bool producer_waiting;
    pid_t producer_tid;
    pid_t consumer_tid;
    unsigned consumer_places;
    size_t unfinished;
} mproc_queue_stats;

/* mproc_queue_stat: fills *out. 0, MPROC_EINVAL (NULL). Never blocks, no
 * system call. */
MPROC_API int mproc_queue_stat(mproc_queue *q, mproc_queue_stats *out);

/* mproc_queue_is_joinable: 1 for a JoinableQueue, 0 otherwise, MPROC_EINVAL
 * for NULL. */
MPROC_API int mproc_queue_is_joinable(mproc_queue *q);

/* mproc_queue_name: the name (borrowed, valid until close), NULL when
 * anonymous or for NULL. */
MPROC_API const char *mproc_queue_name(mproc_queue *q);

/*
 * mproc_queue_shutdown: shuts the queue down for every process (Python
 * 3.13's Queue.shutdown()): puts from then on return MPROC_ECLOSED, and
 * consumers take what is left, then get MPROC_ECLOSED; every sleeper is
 * woken. There is no way back. 0, MPROC_EINVAL (NULL). Never blocks.
 */
MPROC_API int mproc_queue_shutdown(mproc_queue *q);

/* mproc_queue_is_shutdown: 1 after mproc_queue_shutdown, 0 before,
 * MPROC_EINVAL for NULL. */
MPROC_API int mproc_queue_is_shutdown(mproc_queue *q);

/*
 * mproc_queue_fd: an fd that polls readable (POLLIN) while a message waits
 * in the queue (or it is shut down) and not readable while it is empty, for
 * poll/epoll and mproc_wait(). Returns the fd (>= 0), or MPROC_EINVAL
 * (NULL), MPROC_EMFILE, MPROC_ENOMEM, MPROC_EAGAIN (no thread could be
 * started). Never read from or write to it.
 * The fd is owned by the handle and valid in the calling process until
 * mproc_queue_close(); the same fd is returned on later calls. It is made
 * on the first call: an eventfd kept in step by a helper thread of this
 * process (all signals blocked) that sleeps on the queue as a consumer
 * would, without taking anything; so the fd follows the queue within one
 * thread wake-up, and, with several consumers, readable means a message
 * was there a moment ago (get with timeout 0 may then find another
 * consumer took it). A forked child calls it on its own handle.
 */
MPROC_API int mproc_queue_fd(mproc_queue *q);

/* For mproc_wait() (mproc/conn.h, included by mproc.h): an item that waits
 * until a message is in queue q.
 * When mproc_queue_fd() fails, the item's fd is that negative code and
 * mproc_wait() returns MPROC_EINVAL. */
#define MPROC_WAIT_QUEUE(q) MPROC_WAIT_FD(mproc_queue_fd(q))

/* ----- SimpleQueue ----- */

/*
 * A SimpleQueue: the minimal queue (Python's SimpleQueue): unbounded in
 * messages, put, get and empty. The same object as a Queue made with
 * default options (mproc_queue_open may open it, and mproc_queue_unlink
 * removes its name); its handle offers only these calls. Errors, blocking,
 * fork and death rules as the calls of the same name above (put waits, up
 * to its timeout, only while the queue's memory is full).
 */
typedef struct mproc_simple_queue mproc_simple_queue;

/* mproc_simple_queue_create: capacity 0 means the default
 * (MPROC_QUEUE_CAPACITY_DEFAULT); name NULL: anonymous. */
MPROC_API int mproc_simple_queue_create(mproc_simple_queue **out,
                                        const char *name, size_t capacity);
MPROC_API int mproc_simple_queue_open(mproc_simple_queue **out,
                                      const char *name);
MPROC_API void mproc_simple_queue_close(mproc_simple_queue *q);
MPROC_API int mproc_simple_queue_put(mproc_simple_queue *q, const void *buf,
                                     size_t len, int64_t timeout_ms);
MPROC_API int mproc_simple_queue_get(mproc_simple_queue *q, void *buf,
                                     size_t cap, size_t *len,
                                     int64_t timeout_ms);
MPROC_API int mproc_simple_queue_get_alloc(mproc_simple_queue *q, void **out,
                                           size_t *len, int64_t timeout_ms);
MPROC_API int mproc_simple_queue_empty(mproc_simple_queue *q);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_QUEUE_H */
