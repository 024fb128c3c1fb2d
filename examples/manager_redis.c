/*
 * The same program pointed at a manager and at a real Redis server: a dict,
 * a list and a queue through the same calls, whatever listens at the
 * address. The Redis part runs when redis-server is installed (it is
 * started on a Unix socket in a temporary directory, and stopped).
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mproc.h"

/* The program: it does not care which server it talks to. */
static int run(const char *address)
{
    mproc_mclient *c;
    int rc = mproc_mclient_open(&c, address, NULL, 5000);
    if (rc != 0)
        return rc;
    printf("%s: a %s, over %s\n", address,
           mproc_mclient_server(c) == MPROC_MSERVER_MANAGER ? "manager"
                                                            : "Redis server",
           mproc_mclient_transport(c));
    mproc_mdict *d;
    mproc_mlist *l;
    mproc_mqueue *q = NULL;
    mproc_mdict_open(&d, c, "example:prices");
    mproc_mlist_open(&l, c, "example:log");
    rc = mproc_mqueue_open(&q, c, "example:jobs", NULL, 5000);
    if (rc == 0)
        rc = mproc_mdict_set_double(d, "apple", MPROC_MSTR, 1.25, 5000);
    double price = 0;
    if (rc == 0)
        rc = mproc_mdict_incr_double(d, "apple", MPROC_MSTR, 0.5, &price, 5000);
    if (rc == 0)
        rc = mproc_mlist_append(l, "priced apple", MPROC_MSTR, NULL, 5000);
    if (rc == 0)
        rc = mproc_mqueue_put(q, "job-1", MPROC_MSTR, 5000);
    void *job = NULL;
    size_t len;
    if (rc == 0)
        rc = mproc_mqueue_get(q, &job, &len, 5000);
    if (rc == 0)
        printf("  apple costs %.2f; took %s from the queue\n", price,
               (char *)job);
    free(job);
    mproc_mclient_del(c, "example:prices", 5000);
    mproc_mclient_del(c, "example:log", 5000);
    mproc_mdict_close(d);
    mproc_mlist_close(l);
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    return rc;
}

static bool have_redis(void)
{
    const char *dirs[] = {"/usr/bin", "/usr/local/bin", "/usr/sbin"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/redis-server", dirs[i]);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

int main(void)
{
    mproc_manager *m;
    int rc = mproc_manager_start(&m, NULL, NULL);
    if (rc == 0)
        rc = run(mproc_manager_address(m));
    mproc_manager_destroy(m);
    if (rc != 0) {
        fprintf(stderr, "manager: %s\n", mproc_strerror(rc));
        return 1;
    }
    if (!have_redis()) {
        printf("redis-server is not installed: the Redis half is skipped\n");
        return 0;
    }
    char dir[] = "/tmp/mproc-redis-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char sock[64], address[80];
    snprintf(sock, sizeof sock, "%s/redis.sock", dir);
    snprintf(address, sizeof address, "unix:%s", sock);
    char *argv[] = {"redis-server",
                    "--port",
                    "0",
                    "--unixsocket",
                    sock,
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    dir,
                    "--loglevel",
                    "warning",
                    NULL};
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    mproc_spawn_opts so = MPROC_SPAWN_OPTS_INIT;
    so.stdout_fd = devnull;
    mproc_process *redis;
    rc = mproc_process_spawn(&redis, "redis-server", argv, &so);
    close(devnull);
    if (rc == 0) {
        rc = run(address); /* open retries until Redis listens */
        mproc_process_terminate(redis);
        mproc_process_join(redis, 10000);
        mproc_process_destroy(redis);
    }
    unlink(sock);
    rmdir(dir);
    if (rc != 0)
        fprintf(stderr, "redis: %s\n", mproc_strerror(rc));
    return rc == 0 ? 0 : 1;
}
