/*
 * A minimal single-producer single-consumer ring in shared memory, for the
 * benchmarks only: the ceiling that mproc's queue and pipe ends are
 * measured against. Fixed slots; a message longer than a slot travels in
 * fragments, one slot each. SPSC_FUTEX: a side that must wait spins 5 us,
 * then sleeps on a futex, and the other side wakes it only when it sleeps
 * (one system call per sleep, none while both are awake). SPSC_SPIN: the
 * same ring that spins and never sleeps (the floor).
 *
 * Made before fork; the producer and the consumer each use their own copy
 * of the handle (it keeps the side's position). One process sends, one
 * receives; nothing survives the death of either side.
 */
#ifndef MPROC_BENCH_SPSC_H
#define MPROC_BENCH_SPSC_H

#include <stddef.h>
#include <stdint.h>

typedef struct spsc spsc;

enum { SPSC_FUTEX = 0, SPSC_SPIN = 1 };

/* Makes a ring of nslots slots of slot_size bytes (nslots a power of two)
 * in anonymous shared memory. NULL on failure (errno set). */
spsc *spsc_create(uint32_t nslots, uint32_t slot_size, int mode);

/* Unmaps the ring and frees the handle in the calling process. NULL is
 * ignored. */
void spsc_destroy(spsc *r);

/* Sends one message of n bytes, in fragments when n is above the slot
 * size; waits for room. */
void spsc_send(spsc *r, const void *b, size_t n);

/* Receives one message into b (cap bytes); returns its length. Waits for
 * it; dies (bench_die) when it is longer than cap. */
size_t spsc_recv(spsc *r, void *b, size_t cap);

/* Sends count messages of each bytes (each at most the slot size) laid
 * one after another in b, publishing as many at once as there is room
 * for (one wake-up check per group). */
void spsc_send_batch(spsc *r, const void *b, size_t each, size_t count);

/* Receives up to max messages at once into b (cap bytes, one after
 * another), lens[i] the length of message i; waits for the first and takes
 * the whole ones already there after it, freeing their slots together.
 * Returns how many (>= 1). */
size_t spsc_recv_batch(spsc *r, void *b, size_t cap, size_t *lens, size_t max);

#endif
