/*
 * Benchmark helpers: timing, pinning, percentiles and RESULT lines.
 */
#include "common.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double bench_now_s(void)
{
    return (double)bench_now_ns() / 1e9;
}

void bench_pin_cpu(int cpu)
{
    /* Choose among the CPUs the process had before its first pin: a child
     * forked from a pinned parent inherits the parent's one CPU, and would
     * otherwise stay there, beside the parent. */
    static cpu_set_t avail;
    static int have;
    if (!have) {
        if (sched_getaffinity(0, sizeof avail, &avail) != 0)
            return;
        have = 1;
    }
    int n = CPU_COUNT(&avail);
    if (n < 2)
        return;
    int want = cpu % n, seen = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &avail))
            continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}

static int quick(void)
{
    const char *q = getenv("MPROC_BENCH_QUICK");
    return q != NULL && q[0] != '\0' && q[0] != '0';
}

double bench_seconds(void)
{
    return quick() ? 1.0 : 3.0;
}

int bench_repeats(void)
{
    return quick() ? 3 : 5;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)rank;
    if (lo + 1 >= n)
        return v[n - 1];
    double frac = rank - (double)lo;
    return v[lo] * (1.0 - frac) + v[lo + 1] * frac;
}

void bench_result(const char *bench, const char *impl, const char *metric,
                  double value)
{
    printf("RESULT bench=%s impl=%s metric=%s value=%.6g\n", bench, impl,
           metric, value);
    fflush(stdout);
}

/* True when the comma list in the environment variable var is unset or
 * empty, or names name. */
static int listed(const char *var, const char *name)
{
    const char *list = getenv(var);
    if (list == NULL || list[0] == '\0')
        return 1;
    size_t n = strlen(name);
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return 1;
        p += len + (end ? 1 : 0);
    }
    return 0;
}

int bench_impl_enabled(const char *impl)
{
    return listed("MPROC_BENCH_IMPLS", impl);
}

int bench_case_enabled(const char *bench)
{
    return listed("MPROC_BENCH_CASES", bench);
}

static unsigned char pattern_byte(size_t k, uint64_t i)
{
    return (unsigned char)((k * 131u + i * 7u + 13u) & 0xffu);
}

void bench_fill(void *buf, size_t len, uint64_t i)
{
    unsigned char *b = buf;
    if (len >= 8) {
        memcpy(b, &i, 8);
        b[len - 1] = pattern_byte(len - 1, i);
        for (size_t k = 8; k + 1 < len; k += 4096)
            b[k] = pattern_byte(k, i);
    } else {
        for (size_t k = 0; k < len; k++)
            b[k] = pattern_byte(k, i);
    }
}

int bench_check(const void *buf, size_t len, uint64_t i)
{
    const unsigned char *b = buf;
    if (len >= 8) {
        uint64_t got;
        memcpy(&got, b, 8);
        if (got != i || b[len - 1] != pattern_byte(len - 1, i))
            return 0;
        for (size_t k = 8; k + 1 < len; k += 4096)
            if (b[k] != pattern_byte(k, i))
                return 0;
        return 1;
    }
    for (size_t k = 0; k < len; k++)
        if (b[k] != pattern_byte(k, i))
            return 0;
    return 1;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}
