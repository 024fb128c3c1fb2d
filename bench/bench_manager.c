/*
 * Manager benchmarks: a dict set, a dict get, a queue put+get and a
 * pipelined batch of 100 sets, each a blocking round trip from one client
 * to a server on the other CPU: mproc's manager through its client (over
 * the shared-memory rings it sets up, and over the plain socket), and a
 * real redis-server on a Unix socket through hiredis. Python's
 * multiprocessing.Manager() is in bench/py/manager.py. Every get checks
 * the value it got.
 */
#include <hiredis/hiredis.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "mproc.h"

#define KEYS 1000
#define VALUE_LEN 16

static void check(int rc, const char *what)
{
    if (rc != 0)
        bench_die("%s: %s", what, mproc_strerror(rc));
}

/* The CPUs this process had at start: the server goes on the second. */
static cpu_set_t cpus;

static void pin_pid(pid_t pid, int which)
{
    int n = CPU_COUNT(&cpus), seen = 0;
    if (n < 2)
        return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &cpus))
            continue;
        if (seen++ == which % n) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            if (sched_setaffinity(pid, sizeof one, &one) != 0)
                bench_die("pinning pid %d: %s", (int)pid, strerror(errno));
            cpu_set_t got;
            if (sched_getaffinity(pid, sizeof got, &got) != 0 ||
                !CPU_EQUAL(&got, &one))
                bench_die("pid %d is not on CPU %d", (int)pid, c);
            return;
        }
    }
}

static void key_of(char *buf, size_t n, long i)
{
    snprintf(buf, n, "k%ld", i % KEYS);
}

static void value_of(char *buf, long i)
{
    bench_fill(buf, VALUE_LEN, (uint64_t)(i % KEYS));
}

/* ----- one operation, per implementation ----- */

typedef struct impl {
    const char *name;
    /* the clients */
    mproc_mclient *mc;
    mproc_mdict *md;
    mproc_mqueue *mq;
    mproc_mbatch *mb;
    redisContext *rc;
} impl;

static void op_set(impl *im, long i)
{
    char k[16], v[VALUE_LEN];
    key_of(k, sizeof k, i);
    value_of(v, i);
    if (im->mc != NULL) {
        check(mproc_mdict_set(im->md, k, MPROC_MSTR, v, VALUE_LEN, 5000),
              "mproc_mdict_set");
        return;
    }
    const char *argv[] = {"HSET", "d", k, v};
    size_t argl[] = {4, 1, strlen(k), VALUE_LEN};
    redisReply *r = redisCommandArgv(im->rc, 4, argv, argl);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        bench_die("redis HSET failed");
    freeReplyObject(r);
}

static void op_get(impl *im, long i)
{
    char k[16];
    key_of(k, sizeof k, i);
    if (im->mc != NULL) {
        void *p;
        size_t n;
        check(mproc_mdict_get(im->md, k, MPROC_MSTR, &p, &n, 5000),
              "mproc_mdict_get");
        if (n != VALUE_LEN || !bench_check(p, n, (uint64_t)(i % KEYS)))
            bench_die("mproc dict value %ld damaged", i);
        free(p);
        return;
    }
    const char *argv[] = {"HGET", "d", k};
    size_t argl[] = {4, 1, strlen(k)};
    redisReply *r = redisCommandArgv(im->rc, 3, argv, argl);
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len != VALUE_LEN ||
        !bench_check(r->str, r->len, (uint64_t)(i % KEYS)))
        bench_die("redis HGET %ld failed or damaged", i);
    freeReplyObject(r);
}

static void op_putget(impl *im, long i)
{
    char v[VALUE_LEN];
    bench_fill(v, VALUE_LEN, (uint64_t)i);
    if (im->mc != NULL) {
        check(mproc_mqueue_put(im->mq, v, VALUE_LEN, 5000), "mproc_mqueue_put");
        void *p;
        size_t n;
        check(mproc_mqueue_get(im->mq, &p, &n, 5000), "mproc_mqueue_get");
        if (n != VALUE_LEN || !bench_check(p, n, (uint64_t)i))
            bench_die("mproc queue item %ld damaged", i);
        free(p);
        return;
    }
    const char *put[] = {"RPUSH", "q", v};
    size_t putl[] = {5, 1, VALUE_LEN};
    redisReply *r = redisCommandArgv(im->rc, 3, put, putl);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        bench_die("redis RPUSH failed");
    freeReplyObject(r);
    const char *get[] = {"BLPOP", "q", "5"};
    r = redisCommandArgv(im->rc, 3, get, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->len != VALUE_LEN ||
        !bench_check(r->element[1]->str, VALUE_LEN, (uint64_t)i))
        bench_die("redis BLPOP %ld failed or damaged", i);
    freeReplyObject(r);
}

/* 100 sets in one round trip; counts as 100 operations. */
static void op_pipe100(impl *im, long i)
{
    char k[100][16], v[100][VALUE_LEN];
    for (int j = 0; j < 100; j++) {
        key_of(k[j], sizeof k[j], i * 100 + j);
        value_of(v[j], i * 100 + j);
    }
    if (im->mc != NULL) {
        mproc_mbatch_clear(im->mb);
        for (int j = 0; j < 100; j++) {
            const char *argv[] = {"HSET", "d", k[j], v[j]};
            size_t argl[] = {4, 1, strlen(k[j]), VALUE_LEN};
            check(mproc_mbatch_add(im->mb, 4, argv, argl), "mproc_mbatch_add");
        }
        check(mproc_mbatch_run(im->mb, 5000), "mproc_mbatch_run");
        for (size_t j = 0; j < 100; j++)
            if (mproc_mbatch_reply(im->mb, j)->type != MPROC_MREPLY_INTEGER)
                bench_die("mproc batch reply %zu", j);
        return;
    }
    for (int j = 0; j < 100; j++) {
        const char *argv[] = {"HSET", "d", k[j], v[j]};
        size_t argl[] = {4, 1, strlen(k[j]), VALUE_LEN};
        redisAppendCommandArgv(im->rc, 4, argv, argl);
    }
    for (int j = 0; j < 100; j++) {
        redisReply *r;
        if (redisGetReply(im->rc, (void **)&r) != REDIS_OK ||
            r->type != REDIS_REPLY_INTEGER)
            bench_die("redis pipelined reply %d", j);
        freeReplyObject(r);
    }
}

/* ops per second of op, for about secs, counting weight ops per call. */
static double run_round(impl *im, void (*op)(impl *, long), double secs,
                        int weight)
{
    long n = 0;
    double until = bench_now_s() + secs;
    int64_t t0 = bench_now_ns();
    do {
        for (int j = 0; j < 100; j++, n++)
            op(im, n);
    } while (bench_now_s() < until);
    int64_t t1 = bench_now_ns();
    return (double)n * weight / ((double)(t1 - t0) / 1e9);
}

static void measure(impl *ims, int nim, const char *bench,
                    void (*op)(impl *, long), int weight)
{
    double secs = bench_seconds() / 4;
    int reps = bench_repeats();
    double v[8][16];
    /* Alternate the implementations, so a noisy moment hits them all. */
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < nim; k++)
            v[k][r] = run_round(&ims[k], op, secs, weight);
    for (int k = 0; k < nim; k++)
        bench_result(bench, ims[k].name, "ops_per_s",
                     bench_percentile(v[k], (size_t)reps, 50));
}

/* ----- servers ----- */

static pid_t redis_pid;
static char redis_dir[64], redis_sock[128];

static bool redis_start(void)
{
    snprintf(redis_dir, sizeof redis_dir, "/tmp/mproc-bench-redis-XXXXXX");
    if (mkdtemp(redis_dir) == NULL)
        return false;
    snprintf(redis_sock, sizeof redis_sock, "%s/redis.sock", redis_dir);
    redis_pid = fork();
    if (redis_pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket",
               redis_sock, "--unixsocketperm", "700", "--save", "",
               "--appendonly", "no", "--dir", redis_dir, "--loglevel",
               "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        struct stat st;
        if (stat(redis_sock, &st) == 0)
            return true;
        int status;
        if (waitpid(redis_pid, &status, WNOHANG) == redis_pid)
            return false;
        usleep(10000);
    }
    return false;
}

static void redis_stop(void)
{
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    unlink(redis_sock);
    rmdir(redis_dir);
}

int main(void)
{
    if (sched_getaffinity(0, sizeof cpus, &cpus) != 0)
        bench_die("sched_getaffinity");
    impl ims[3];
    int nim = 0;
    mproc_manager *m = NULL;
    if (bench_impl_enabled("mproc_manager") ||
        bench_impl_enabled("mproc_manager_socket")) {
        check(mproc_manager_start(&m, NULL, NULL), "mproc_manager_start");
        pin_pid(mproc_manager_pid(m), 1);
    }
    const char *names[] = {"mproc_manager", "mproc_manager_socket"};
    for (int k = 0; k < 2; k++) {
        if (!bench_impl_enabled(names[k]))
            continue;
        impl *im = &ims[nim++];
        memset(im, 0, sizeof *im);
        im->name = names[k];
        mproc_mclient_opts o = MPROC_MCLIENT_OPTS_INIT;
        o.no_rings = k == 1;
        check(mproc_mclient_open(&im->mc, mproc_manager_address(m), &o, 5000),
              "mproc_mclient_open");
        if (strcmp(mproc_mclient_transport(im->mc), k == 0 ? "rings" : "unix"))
            bench_die("%s: transport %s", names[k],
                      mproc_mclient_transport(im->mc));
        check(mproc_mdict_open(&im->md, im->mc, "d"), "mproc_mdict_open");
        char q[16];
        snprintf(q, sizeof q, "q%d", k);
        check(mproc_mqueue_open(&im->mq, im->mc, q, NULL, 5000),
              "mproc_mqueue_open");
        check(mproc_mbatch_create(&im->mb, im->mc), "mproc_mbatch_create");
    }
    bool have_redis = false;
    if (bench_impl_enabled("redis")) {
        have_redis = redis_start();
        if (!have_redis) {
            fprintf(stderr, "bench_manager: no redis-server: skipping redis\n");
        } else {
            pin_pid(redis_pid, 1);
            impl *im = &ims[nim++];
            memset(im, 0, sizeof *im);
            im->name = "redis";
            im->rc = redisConnectUnix(redis_sock);
            if (im->rc == NULL || im->rc->err)
                bench_die("hiredis connect failed");
        }
    }
    pin_pid(0, 0);
    /* Fill the dict first, so gets find every key. */
    for (int k = 0; k < nim; k++)
        for (long i = 0; i < KEYS; i++)
            op_set(&ims[k], i);
    measure(ims, nim, "manager.dict_set", op_set, 1);
    measure(ims, nim, "manager.dict_get", op_get, 1);
    measure(ims, nim, "manager.queue_putget", op_putget, 1);
    measure(ims, nim, "manager.pipelined100", op_pipe100, 100);
    for (int k = 0; k < nim; k++) {
        if (ims[k].mc != NULL) {
            mproc_mbatch_destroy(ims[k].mb);
            mproc_mqueue_close(ims[k].mq);
            mproc_mdict_close(ims[k].md);
            mproc_mclient_close(ims[k].mc);
        } else {
            redisFree(ims[k].rc);
        }
    }
    mproc_manager_destroy(m);
    if (have_redis)
        redis_stop();
    return 0;
}
