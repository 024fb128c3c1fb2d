/*
 * The worker pool against Python's multiprocessing.Pool (bench/py/pool.py),
 * the same cases in the same run:
 *   pool.map_chunk1        map of an identity task over 100,000 8-byte
 *                          items on 2 workers, chunk size 1 (us_per_task)
 *   pool.map_chunkdefault  the same with the automatic chunk size
 *   pool.apply_async       apply_async then get, one task at a time
 *                          (us_per_task: the round trip)
 *   pool.start             from creation until a first map of 10 items
 *                          returns, 2 workers (ms)
 *   pool.cpu_speedup       a CPU-bound map (32 tasks of about 8 ms) on 1
 *                          worker, divided by the same on 2 (ratio)
 * Every output is checked. Medians of bench_repeats() runs. Nothing is
 * pinned: the pool's processes share the machine's CPUs, as a pool does;
 * cpu_speedup needs 2 CPUs and says so when it has fewer.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mproc.h"

#define IMPL "mproc_pool"
#define ITEMS 100000
#define START_ITEMS 10
#define CPU_TASKS 32
#define CPU_TASK_MS 8.0

static int t_ident(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    return mproc_pool_out_write(out, in, len);
}

static uint64_t spin_work(uint64_t seed, uint64_t iters)
{
    uint64_t x = seed;
    for (uint64_t i = 0; i < iters; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    return x;
}

struct cpu_in {
    uint64_t seed, iters;
};

static int t_cpu(const void *in, size_t len, mproc_pool_out *out, void *arg)
{
    (void)arg;
    struct cpu_in c;
    if (len != sizeof c)
        return MPROC_EINVAL;
    memcpy(&c, in, sizeof c);
    uint64_t r = spin_work(c.seed, c.iters);
    return mproc_pool_out_write(out, &r, sizeof r);
}

static mproc_pool *make_pool(unsigned workers)
{
    mproc_pool_opts o = MPROC_POOL_OPTS_INIT;
    o.workers = workers;
    mproc_pool *p;
    int rc = mproc_pool_create(&p, &o);
    if (rc != 0)
        bench_die("mproc_pool_create: %s", mproc_strerror(rc));
    return p;
}

static void end_pool(mproc_pool *p)
{
    mproc_pool_close(p);
    int rc = mproc_pool_join(p, 30000);
    if (rc != 0)
        bench_die("mproc_pool_join: %s", mproc_strerror(rc));
    mproc_pool_destroy(p);
}

static double median(double *v, int n)
{
    return bench_percentile(v, (size_t)n, 50);
}

static uint64_t in[ITEMS], out[ITEMS];

/* Maps of ITEMS items for about secs; us per task. */
static double map_rate(mproc_pool *p, size_t chunk, double secs)
{
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = chunk;
    double tasks = 0, took = 0;
    do {
        memset(out, 0, sizeof out);
        int64_t t0 = bench_now_ns();
        int rc = mproc_pool_map(p, t_ident, NULL, in, sizeof in[0], ITEMS, out,
                                sizeof out[0], &co, MPROC_FOREVER);
        took += (double)(bench_now_ns() - t0) / 1e3;
        if (rc != 0)
            bench_die("mproc_pool_map: %s", mproc_strerror(rc));
        for (size_t i = 0; i < ITEMS; i++)
            if (out[i] != in[i])
                bench_die("map: output %zu damaged", i);
        tasks += ITEMS;
    } while (took < secs * 1e6);
    return took / tasks;
}

static double apply_rate(mproc_pool *p, double secs)
{
    double tasks = 0;
    int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(secs * 1e9);
    for (uint64_t i = 0; bench_now_ns() < end; i++) {
        for (int k = 0; k < 64; k++, i++) {
            mproc_pool_result *r;
            int rc = mproc_pool_apply_async(&r, p, t_ident, NULL, &i, sizeof i,
                                            NULL);
            if (rc == 0)
                rc = mproc_pool_result_get(r, MPROC_FOREVER);
            const void *d;
            size_t len;
            if (rc == 0)
                rc = mproc_pool_result_output(r, 0, &d, &len);
            if (rc != 0 || len != sizeof i || memcmp(d, &i, sizeof i) != 0)
                bench_die("apply_async: %s", mproc_strerror(rc));
            mproc_pool_result_destroy(r);
            tasks++;
        }
    }
    return (double)(bench_now_ns() - t0) / 1e3 / tasks;
}

static double start_ms(void)
{
    uint64_t a[START_ITEMS], b[START_ITEMS];
    for (uint64_t i = 0; i < START_ITEMS; i++)
        a[i] = i + 1;
    int64_t t0 = bench_now_ns();
    mproc_pool *p = make_pool(2);
    int rc = mproc_pool_map(p, t_ident, NULL, a, sizeof a[0], START_ITEMS, b,
                            sizeof b[0], NULL, MPROC_FOREVER);
    double ms = (double)(bench_now_ns() - t0) / 1e6;
    if (rc != 0 || memcmp(a, b, sizeof a) != 0)
        bench_die("start: map failed");
    end_pool(p);
    return ms;
}

/* Seconds for the CPU-bound map on `workers` workers. */
static double cpu_map_s(unsigned workers, const struct cpu_in *c,
                        const uint64_t *want)
{
    mproc_pool *p = make_pool(workers);
    uint64_t got[CPU_TASKS];
    mproc_pool_call_opts co = MPROC_POOL_CALL_OPTS_INIT;
    co.chunksize = 1;
    int64_t t0 = bench_now_ns();
    int rc = mproc_pool_map(p, t_cpu, NULL, c, sizeof c[0], CPU_TASKS, got,
                            sizeof got[0], &co, MPROC_FOREVER);
    double s = (double)(bench_now_ns() - t0) / 1e9;
    if (rc != 0 || memcmp(got, want, sizeof got) != 0)
        bench_die("cpu map: outputs damaged");
    end_pool(p);
    return s;
}

int main(void)
{
    if (!bench_impl_enabled(IMPL))
        return 0;
    double secs = bench_seconds();
    int reps = bench_repeats();
    double v[16];
    for (size_t i = 0; i < ITEMS; i++)
        in[i] = i * 2654435761u;

    mproc_pool *p = make_pool(2);
    for (int r = 0; r < reps; r++)
        v[r] = map_rate(p, 1, secs);
    bench_result("pool.map_chunk1", IMPL, "us_per_task", median(v, reps));
    for (int r = 0; r < reps; r++)
        v[r] = map_rate(p, 0, secs);
    bench_result("pool.map_chunkdefault", IMPL, "us_per_task", median(v, reps));
    for (int r = 0; r < reps; r++)
        v[r] = apply_rate(p, secs);
    bench_result("pool.apply_async", IMPL, "us_per_task", median(v, reps));
    end_pool(p);

    int starts = reps * 3;
    for (int r = 0; r < starts; r++)
        v[r] = start_ms();
    bench_result("pool.start", IMPL, "ms", median(v, starts));

    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < 2) {
        fprintf(stderr, "bench_pool: one CPU, no cpu_speedup\n");
        return 0;
    }
    /* Calibrate a task to about CPU_TASK_MS here, alone. */
    uint64_t iters = 1u << 20;
    for (;;) {
        int64_t t0 = bench_now_ns();
        volatile uint64_t sink = spin_work(1, iters);
        (void)sink;
        double ms = (double)(bench_now_ns() - t0) / 1e6;
        if (ms >= CPU_TASK_MS / 4) {
            iters = (uint64_t)((double)iters * CPU_TASK_MS / ms);
            break;
        }
        iters *= 2;
    }
    struct cpu_in c[CPU_TASKS];
    uint64_t want[CPU_TASKS];
    for (int i = 0; i < CPU_TASKS; i++) {
        c[i].seed = (uint64_t)i + 1;
        c[i].iters = iters;
        want[i] = spin_work(c[i].seed, iters);
    }
    for (int r = 0; r < reps; r++)
        v[r] = cpu_map_s(1, c, want) / cpu_map_s(2, c, want);
    bench_result("pool.cpu_speedup", IMPL, "ratio", median(v, reps));
    return 0;
}
