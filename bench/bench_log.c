/*
 * Logging cost: ns per record written to an O_APPEND file by one process and
 * by 4 processes at once, and ns per call filtered out by the level. Peers:
 * snprintf + write(2) by hand (the floor) and Python's logging
 * (bench/py/log.py). Every written file is read back and every record
 * checked.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mproc.h"

#define FORMAT "%(asctime)s %(process)d %(levelname)-8s %(message)s"
#define BATCH 256
#define PROCS 4

static char path[128];

/* The message of record i (its check value lets the reader verify it). */
#define MSG_FMT "seq=%lu check=%lu the quick brown fox"
static unsigned long check_of(unsigned long i)
{
    return (i * 2654435761UL) % 1000003UL;
}

/* Writes records for `seconds` with the chosen implementation and returns
 * how many; raw formats the same line by hand and writes it with write(2). */
static unsigned long run_writer(const char *impl, mproc_log *lg, int fd,
                                double seconds)
{
    unsigned long n = 0;
    int64_t end = bench_now_ns() + (int64_t)(seconds * 1e9);
    char line[256];
    while (bench_now_ns() < end) {
        for (int b = 0; b < BATCH; b++, n++) {
            if (strcmp(impl, "mproc") == 0) {
                if (mproc_log_info(lg, MSG_FMT, n, check_of(n)) != 0)
                    bench_die("bench_log: write failed");
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                struct tm tm;
                localtime_r(&ts.tv_sec, &tm);
                char date[32];
                strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
                int len = snprintf(line, sizeof line,
                                   "%s,%03ld %d %-8s " MSG_FMT "\n", date,
                                   ts.tv_nsec / 1000000, (int)getpid(), "INFO",
                                   n, check_of(n));
                if (write(fd, line, (size_t)len) != len)
                    bench_die("bench_log: write failed");
            }
        }
    }
    return n;
}

/* Reads the file back: every line whole, each writer's records 0..n-1 in
 * order. Returns the number of lines. */
static unsigned long verify(int writers)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        bench_die("bench_log: cannot read %s", path);
    int pids[PROCS] = {0};
    unsigned long next[PROCS] = {0}, lines = 0;
    char line[512];
    while (fgets(line, sizeof line, fp) != NULL) {
        int pid, off = 0;
        unsigned long seq, check;
        if (sscanf(line,
                   "%*s %*s %d INFO seq=%lu check=%lu the quick brown "
                   "fox%n",
                   &pid, &seq, &check, &off) != 3 ||
            strcmp(line + off, "\n") != 0 || check != check_of(seq))
            bench_die("bench_log: damaged line %lu: %s", lines, line);
        int w = 0;
        while (w < writers && pids[w] != 0 && pids[w] != pid)
            w++;
        if (w == writers)
            bench_die("bench_log: too many writers");
        pids[w] = pid;
        if (seq != next[w]++)
            bench_die("bench_log: record %lu of %d out of order", seq, pid);
        lines++;
    }
    fclose(fp);
    return lines;
}

static int open_file(void)
{
    int fd =
        open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        bench_die("bench_log: cannot open %s", path);
    return fd;
}

static mproc_log *make_logger(int fd, int level)
{
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = FORMAT;
    o.level = level;
    mproc_log *lg;
    if (mproc_log_create(&lg, &o) != 0 || mproc_log_add_fd(lg, fd, NULL) != 0)
        bench_die("bench_log: cannot make the logger");
    return lg;
}

/* ns per record with `writers` processes writing at once. */
static double measure(const char *impl, int writers, double seconds)
{
    int fd = open_file();
    mproc_log *lg = make_logger(fd, MPROC_LOG_INFO);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        bench_die("bench_log: pipe");
    int64_t t0 = bench_now_ns();
    pid_t pids[PROCS];
    for (int w = 0; w < writers; w++) {
        pids[w] = fork();
        if (pids[w] < 0)
            bench_die("bench_log: fork");
        if (pids[w] == 0) {
            unsigned long n = run_writer(impl, lg, fd, seconds);
            _exit(write(pfd[1], &n, sizeof n) == sizeof n ? 0 : 1);
        }
    }
    unsigned long total = 0;
    for (int w = 0; w < writers; w++) {
        unsigned long n;
        int st;
        if (read(pfd[0], &n, sizeof n) != sizeof n ||
            waitpid(pids[w], &st, 0) < 0 || st != 0)
            bench_die("bench_log: a writer failed");
        total += n;
    }
    int64_t elapsed = bench_now_ns() - t0;
    mproc_log_destroy(lg);
    close(fd);
    close(pfd[0]);
    close(pfd[1]);
    if (verify(writers) != total)
        bench_die("bench_log: records lost");
    unlink(path);
    return (double)elapsed / (double)total;
}

static double measure_filtered(double seconds)
{
    int fd = open_file();
    mproc_log *lg = make_logger(fd, MPROC_LOG_WARNING);
    unsigned long n = 0;
    int64_t t0 = bench_now_ns(), end = t0 + (int64_t)(seconds * 1e9);
    while (bench_now_ns() < end)
        for (int b = 0; b < BATCH; b++, n++)
            mproc_log_debug(lg, MSG_FMT, n, check_of(n));
    int64_t elapsed = bench_now_ns() - t0;
    mproc_log_destroy(lg);
    close(fd);
    if (verify(1) != 0)
        bench_die("bench_log: a filtered record was written");
    unlink(path);
    return (double)elapsed / (double)n;
}

static void report(const char *bench, const char *impl,
                   double (*fn)(const char *, int, double), int writers)
{
    if (!bench_impl_enabled(impl))
        return;
    int reps = bench_repeats();
    double v[16];
    for (int r = 0; r < reps; r++)
        v[r] = fn(impl, writers, bench_seconds() / reps);
    bench_result(bench, impl, "ns_per_record",
                 bench_percentile(v, (size_t)reps, 50));
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/mproc-bench-log-%d.log", (int)getpid());
    report("log.file_1proc", "mproc", measure, 1);
    report("log.file_1proc", "raw_write", measure, 1);
    report("log.file_4proc", "mproc", measure, PROCS);
    report("log.file_4proc", "raw_write", measure, PROCS);
    if (bench_impl_enabled("mproc")) {
        int reps = bench_repeats();
        double v[16];
        for (int r = 0; r < reps; r++)
            v[r] = measure_filtered(bench_seconds() / reps);
        bench_result("log.filtered", "mproc", "ns_per_record",
                     bench_percentile(v, (size_t)reps, 50));
    }
    return 0;
}
