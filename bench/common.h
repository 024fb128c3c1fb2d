/*
 * Shared helpers for the benchmarks: clocks, CPU pinning, how long to
 * measure, percentiles, and the RESULT line every result is printed as:
 *   RESULT bench=<group>.<case> impl=<impl> metric=<metric> value=<number>
 * bench/report.py turns those lines into the table with ratios.
 */
#ifndef MPROC_BENCH_COMMON_H
#define MPROC_BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic time in nanoseconds / seconds. */
int64_t bench_now_ns(void);
double bench_now_s(void);

/* Pins the calling process to cpu modulo the CPUs available; no-op with one. */
void bench_pin_cpu(int cpu);

/* How long one measurement runs, seconds: 1 with MPROC_BENCH_QUICK=1
 * (make bench QUICK=1), 3 otherwise. */
double bench_seconds(void);

/* How many times a measurement is repeated to take a median: 3 quick, 5. */
int bench_repeats(void);

/* The p-th percentile (0..100) of v[0..n) (sorts v in place). */
double bench_percentile(double *v, size_t n, double p);

/* Prints one RESULT line (and flushes stdout). */
void bench_result(const char *bench, const char *impl, const char *metric,
                  double value);

/* True when `impl` was selected: MPROC_BENCH_IMPLS unset, or a comma list
 * that contains it. */
int bench_impl_enabled(const char *impl);

/* True when the case `bench` (as in its RESULT lines, "queue.wake_64B")
 * was selected: MPROC_BENCH_CASES unset, or a comma list that contains it.
 * The queue and conn groups honour it. */
int bench_case_enabled(const char *bench);

/* Fills buf with a deterministic pattern for message i (so receivers can
 * check every message arrived intact), and checks one. */
void bench_fill(void *buf, size_t len, uint64_t i);
int bench_check(const void *buf, size_t len, uint64_t i);

/* Prints a message to stderr and exits 1: a benchmark whose data arrived
 * damaged has no result. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
