/*
 * A look at a queue's shared words for tools (`mproc stat`): who waits and
 * who holds its locks, as the words say at one instant.
 */
#ifndef MPROC_INTERNAL_QUEUEPEEK_H
#define MPROC_INTERNAL_QUEUEPEEK_H

#include <stdbool.h>
#include <stdint.h>

#include "mproc/queue.h"

typedef struct mproc__queue_peek {
    bool consumer_asleep;  /* a consumer (or an fd helper) sleeps on data */
    bool producer_asleep;  /* a producer sleeps for room */
    uint32_t producer_tid; /* the producers' lock holder, 0: free */
    uint32_t consumer_tid; /* the consumers' lock holder, 0: free */
    uint32_t slots_used;   /* consumer places taken (borrows, task counts) */
    uint32_t unfinished;   /* JoinableQueue: tasks not yet marked done */
} mproc__queue_peek;

void mproc__queue_peek_at(mproc_queue *q, mproc__queue_peek *out);

#endif
