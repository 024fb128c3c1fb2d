/* The manager: its server (limits, access, bad input, clients killed at
 * every awkward moment), its objects and commands, the C client over rings,
 * the socket and TCP, the same calls against a real redis-server, and
 * redis-cli driving it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal/conn.h"
#include "internal/ring.h"
#include "mproc.h"
#include "testlib.h"

#define T 5000 /* a generous timeout for calls that should not wait */

static mproc_manager *start(const mproc_manager_opts *o)
{
    mproc_manager *m = NULL;
    int rc = mproc_manager_start(&m, NULL, o);
    ck_assert_msg(rc == 0, "start: %s", mproc_errname(rc));
    return m;
}

static mproc_mclient *client(const char *addr, bool rings)
{
    mproc_mclient_opts o = MPROC_MCLIENT_OPTS_INIT;
    o.no_rings = !rings;
    mproc_mclient *c = NULL;
    int rc = mproc_mclient_open(&c, addr, &o, T);
    ck_assert_msg(rc == 0, "open %s: %s", addr, mproc_errname(rc));
    return c;
}

/* Joins p (a forked helper), checks its exit code and frees it. */
static void expect_exit(mproc_process *p, int want)
{
    ck_assert_int_eq(mproc_process_join(p, test_ms(20000)), 0);
    int code = -1;
    mproc_process_exitcode(p, &code);
    ck_assert_int_eq(code, want);
    mproc_process_destroy(p);
}

/* A raw socket to a manager's Unix address ("unix:@name" or a path). */
static int raw_connect(const char *addr)
{
    if (strncmp(addr, "unix:", 5) == 0)
        addr += 5;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len;
    if (addr[0] == '@') {
        size_t n = strlen(addr) - 1;
        memcpy(sa.sun_path + 1, addr + 1, n);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    } else {
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", addr);
        len = sizeof sa;
    }
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, len), 0);
    return fd;
}

static void raw_send(int fd, const char *s)
{
    size_t n = strlen(s);
    ck_assert_int_eq(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads until EOF or ms pass; returns the bytes (NUL-terminated) and
 * whether EOF came in *eof. */
static size_t raw_read(int fd, char *buf, size_t cap, int64_t ms, bool *eof)
{
    size_t n = 0;
    *eof = false;
    int64_t end = test_now_ms() + ms;
    while (n + 1 < cap) {
        int64_t left = end - test_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k <= 0) {
            *eof = true;
            break;
        }
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}

/* Reads until buf holds want, EOF, or ms pass. */
static bool raw_expect(int fd, const char *want, int64_t ms)
{
    char buf[4096];
    size_t n = 0;
    int64_t end = test_now_ms() + ms;
    while (n + 1 < sizeof buf) {
        buf[n] = '\0';
        if (strstr(buf, want) != NULL)
            return true;
        int64_t left = end - test_now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (k <= 0)
            return false;
        n += (size_t)k;
    }
    return false;
}

static long long stat_field(mproc_mclient *c, const char *name,
                            const char *field)
{
    const char *argv[] = {"MPROC.STAT", name};
    mproc_mreply *r = NULL;
    ck_assert_int_eq(mproc_mclient_call(c, &r, 2, argv, NULL, T), 0);
    long long v = -1;
    if (r->type == MPROC_MREPLY_ARRAY)
        for (size_t i = 0; i + 1 < r->elements; i += 2)
            if (strcmp(r->element[i]->str, field) == 0)
                v = r->element[i + 1]->integer;
    mproc_mreply_free(r);
    return v;
}

/* Waits until field of name reaches want (up to a few seconds). */
static bool stat_reaches(mproc_mclient *c, const char *name, const char *field,
                         long long want)
{
    int64_t end = test_now_ms() + test_ms(5000);
    while (test_now_ms() < end) {
        if (stat_field(c, name, field) == want)
            return true;
        usleep(2000);
    }
    return false;
}

/* ----- a real redis-server on a Unix socket in the test's directory ----- */

typedef struct redis_srv {
    mproc_process *p;
    char sock[256];
    char addr[300];
} redis_srv;

static bool have_program(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path != NULL ? path : "/usr/bin:/bin");
    for (char *d = strtok(buf, ":"); d != NULL; d = strtok(NULL, ":")) {
        char full[4200];
        snprintf(full, sizeof full, "%s/%s", d, name);
        if (access(full, X_OK) == 0)
            return true;
    }
    return false;
}

/* Starts redis-server; false (after test_skip) when it is not installed. */
static bool redis_start(redis_srv *r)
{
    if (!have_program("redis-server")) {
        test_skip("redis-server is not installed");
        return false;
    }
    char dir[256];
    test_path(dir, sizeof dir, "");
    test_path(r->sock, sizeof r->sock, "redis.sock");
    snprintf(r->addr, sizeof r->addr, "unix:%s", r->sock);
    char *argv[] = {"redis-server",
                    "--port",
                    "0",
                    "--unixsocket",
                    r->sock,
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
    int rc = mproc_process_spawn(&r->p, "redis-server", argv, &so);
    close(devnull);
    ck_assert_msg(rc == 0, "spawn redis-server: %s", mproc_errname(rc));
    /* Ready when it answers. */
    mproc_mclient *c = NULL;
    rc = mproc_mclient_open(&c, r->addr, NULL, test_ms(10000));
    ck_assert_msg(rc == 0, "redis-server did not come up: %s",
                  mproc_errname(rc));
    ck_assert_int_eq(mproc_mclient_server(c), MPROC_MSERVER_REDIS);
    mproc_mclient_close(c);
    return true;
}

static void redis_stop(redis_srv *r)
{
    mproc_process_terminate(r->p);
    ck_assert_int_eq(mproc_process_join(r->p, test_ms(10000)), 0);
    mproc_process_destroy(r->p);
    unlink(r->sock);
}

/* ----- the calls both servers have ----- */

static void common_cases(mproc_mclient *c)
{
    void *p;
    size_t n;
    int64_t i;
    double d;
    mproc_mreply *r;
    mproc_mclient_del(c, "cd", T);
    mproc_mclient_del(c, "cl", T);
    mproc_mclient_del(c, "cv", T);
    mproc_mclient_del(c, "cq", T);

    /* dict */
    mproc_mdict *dict;
    ck_assert_int_eq(mproc_mdict_open(&dict, c, "cd"), 0);
    ck_assert_int_eq(mproc_mdict_get(dict, "a", MPROC_MSTR, &p, &n, T),
                     MPROC_ENOENT);
    ck_assert_int_eq(mproc_mdict_set(dict, "a", MPROC_MSTR, "x\0y", 3, T), 0);
    ck_assert_int_eq(mproc_mdict_get(dict, "a", MPROC_MSTR, &p, &n, T), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(p, "x\0y", 3), 0);
    free(p);
    ck_assert_int_eq(mproc_mdict_setnx(dict, "a", MPROC_MSTR, "z", 1, T),
                     MPROC_EEXIST);
    ck_assert_int_eq(mproc_mdict_setnx(dict, "b", MPROC_MSTR, "z", 1, T), 0);
    ck_assert_int_eq(mproc_mdict_contains(dict, "b", MPROC_MSTR, T), 1);
    ck_assert_int_eq(mproc_mdict_contains(dict, "c", MPROC_MSTR, T), 0);
    ck_assert_int_eq(mproc_mdict_incr(dict, "n", MPROC_MSTR, 5, &i, T), 0);
    ck_assert_int_eq(mproc_mdict_incr(dict, "n", MPROC_MSTR, -7, &i, T), 0);
    ck_assert_int_eq(i, -2);
    ck_assert_int_eq(mproc_mdict_incr(dict, "a", MPROC_MSTR, 1, &i, T),
                     MPROC_ERANGE);
    ck_assert_int_eq(
        mproc_mdict_incr_double(dict, "f", MPROC_MSTR, 10.5, &d, T), 0);
    ck_assert_int_eq(
        mproc_mdict_incr_double(dict, "f", MPROC_MSTR, 0.25, &d, T), 0);
    ck_assert(d == 10.75);
    ck_assert_int_eq(mproc_mdict_set_i64(dict, "i", MPROC_MSTR, -42, T), 0);
    ck_assert_int_eq(mproc_mdict_get_i64(dict, "i", MPROC_MSTR, &i, T), 0);
    ck_assert_int_eq(i, -42);
    ck_assert_int_eq(mproc_mdict_get_double(dict, "f", MPROC_MSTR, &d, T), 0);
    ck_assert(d == 10.75);
    ck_assert_int_eq(mproc_mdict_len(dict, &n, T), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_int_eq(mproc_mdict_keys(dict, &r, T), 0);
    ck_assert_uint_eq(r->elements, 5);
    mproc_mreply_free(r);
    ck_assert_int_eq(mproc_mdict_items(dict, &r, T), 0);
    ck_assert_uint_eq(r->elements, 10);
    mproc_mreply_free(r);
    ck_assert_int_eq(mproc_mdict_del(dict, "a", MPROC_MSTR, T), 0);
    ck_assert_int_eq(mproc_mdict_del(dict, "a", MPROC_MSTR, T), MPROC_ENOENT);

    /* list */
    mproc_mlist *l;
    ck_assert_int_eq(mproc_mlist_open(&l, c, "cl"), 0);
    ck_assert_int_eq(mproc_mlist_append(l, "b", MPROC_MSTR, &n, T), 0);
    ck_assert_int_eq(mproc_mlist_append(l, "c", MPROC_MSTR, &n, T), 0);
    ck_assert_int_eq(mproc_mlist_prepend(l, "a", MPROC_MSTR, &n, T), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(mproc_mlist_get(l, -1, &p, &n, T), 0);
    ck_assert_str_eq(p, "c");
    free(p);
    ck_assert_int_eq(mproc_mlist_get(l, 7, &p, &n, T), MPROC_ENOENT);
    ck_assert_int_eq(mproc_mlist_set(l, 1, "B", MPROC_MSTR, T), 0);
    ck_assert_int_eq(mproc_mlist_set(l, 9, "B", MPROC_MSTR, T), MPROC_ERANGE);
    ck_assert_int_eq(
        mproc_mlist_insert(l, true, "B", MPROC_MSTR, "b2", MPROC_MSTR, &n, T),
        0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(mproc_mlist_insert(l, false, "nope", MPROC_MSTR, "x",
                                        MPROC_MSTR, &n, T),
                     MPROC_ENOENT);
    ck_assert_int_eq(mproc_mlist_range(l, 0, -1, &r, T), 0);
    ck_assert_uint_eq(r->elements, 4);
    ck_assert_str_eq(r->element[0]->str, "a");
    ck_assert_str_eq(r->element[1]->str, "B");
    ck_assert_str_eq(r->element[2]->str, "b2");
    ck_assert_str_eq(r->element[3]->str, "c");
    mproc_mreply_free(r);
    ck_assert_int_eq(mproc_mlist_append(l, "B", MPROC_MSTR, NULL, T), 0);
    ck_assert_int_eq(mproc_mlist_remove(l, 0, "B", MPROC_MSTR, &n, T), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(mproc_mlist_pop_front(l, &p, &n, T), 0);
    ck_assert_str_eq(p, "a");
    free(p);
    ck_assert_int_eq(mproc_mlist_pop_back(l, &p, &n, T), 0);
    ck_assert_str_eq(p, "c");
    free(p);
    ck_assert_int_eq(mproc_mlist_len(l, &n, T), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(mproc_mlist_pop_back(l, &p, &n, T), 0);
    free(p);
    ck_assert_int_eq(mproc_mlist_pop_back(l, &p, &n, T), MPROC_ENOENT);

    /* value */
    mproc_mvalue *v;
    ck_assert_int_eq(mproc_mvalue_open(&v, c, "cv"), 0);
    ck_assert_int_eq(mproc_mvalue_get(v, &p, &n, T), MPROC_ENOENT);
    ck_assert_int_eq(mproc_mvalue_setnx(v, "1", MPROC_MSTR, T), 0);
    ck_assert_int_eq(mproc_mvalue_setnx(v, "2", MPROC_MSTR, T), MPROC_EEXIST);
    ck_assert_int_eq(mproc_mvalue_incr(v, 41, &i, T), 0);
    ck_assert_int_eq(i, 42);
    ck_assert_int_eq(mproc_mvalue_get_i64(v, &i, T), 0);
    ck_assert_int_eq(i, 42);
    ck_assert_int_eq(mproc_mvalue_getset(v, "hi", MPROC_MSTR, &p, &n, T), 0);
    ck_assert_str_eq(p, "42");
    free(p);
    ck_assert_int_eq(mproc_mvalue_incr(v, 1, &i, T), MPROC_ERANGE);
    ck_assert_int_eq(mproc_mvalue_set_double(v, 1.5, T), 0);
    ck_assert_int_eq(mproc_mvalue_incr_double(v, 1.25, &d, T), 0);
    ck_assert(d == 2.75);
    ck_assert_int_eq(mproc_mvalue_get_double(v, &d, T), 0);
    ck_assert(d == 2.75);
    ck_assert_int_eq(mproc_mvalue_set(v, "", 0, T), 0);
    ck_assert_int_eq(mproc_mvalue_get(v, &p, &n, T), 0);
    ck_assert_uint_eq(n, 0);
    free(p);

    /* a key of the wrong kind: Redis's WRONGTYPE */
    ck_assert_int_eq(mproc_mlist_append(l, "x", MPROC_MSTR, NULL, T), 0);
    mproc_mvalue_close(v);
    mproc_mvalue *wrong;
    ck_assert_int_eq(mproc_mvalue_open(&wrong, c, "cl"), 0);
    ck_assert_int_eq(mproc_mvalue_get(wrong, &p, &n, T), MPROC_EBADOBJ);
    char err[256];
    ck_assert_ptr_nonnull(
        strstr(mproc_mclient_error(c, err, sizeof err), "WRONGTYPE"));
    mproc_mvalue_close(wrong);
    mproc_mdict *wd;
    ck_assert_int_eq(mproc_mdict_open(&wd, c, "cl"), 0);
    ck_assert_int_eq(mproc_mdict_set(wd, "k", MPROC_MSTR, "v", MPROC_MSTR, T),
                     MPROC_EBADOBJ);
    mproc_mdict_close(wd);

    /* queue */
    mproc_mqueue *q;
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "cq", NULL, T), 0);
    ck_assert_int_eq(mproc_mqueue_get(q, &p, &n, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_mqueue_get(q, &p, &n, 100), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 90);
    for (int k = 0; k < 3; k++) {
        char item[8];
        snprintf(item, sizeof item, "i%d", k);
        ck_assert_int_eq(mproc_mqueue_put(q, item, MPROC_MSTR, T), 0);
    }
    ck_assert_int_eq(mproc_mqueue_qsize(q, &n, T), 0);
    ck_assert_uint_eq(n, 3);
    for (int k = 0; k < 3; k++) {
        char item[8];
        snprintf(item, sizeof item, "i%d", k);
        ck_assert_int_eq(mproc_mqueue_get(q, &p, &n, T), 0);
        ck_assert_str_eq(p, item);
        free(p);
    }
    mproc_mqueue *wq;
    ck_assert_int_eq(mproc_mqueue_open(&wq, c, "cd", NULL, T), MPROC_EBADOBJ);

    /* a pipelined batch: 100 commands, one round trip */
    mproc_mbatch *b;
    ck_assert_int_eq(mproc_mbatch_create(&b, c), 0);
    for (int k = 0; k < 100; k++) {
        char f[16];
        snprintf(f, sizeof f, "f%d", k);
        const char *argv[] = {"HSET", "cd", f, f};
        ck_assert_int_eq(mproc_mbatch_add(b, 4, argv, NULL), 0);
    }
    const char *bad[] = {"LPUSH", "cd", "x"};
    ck_assert_int_eq(mproc_mbatch_add(b, 3, bad, NULL), 0);
    ck_assert_int_eq(mproc_mbatch_run(b, T), 0);
    ck_assert_uint_eq(mproc_mbatch_count(b), 101);
    for (size_t k = 0; k < 100; k++)
        ck_assert_int_eq(mproc_mbatch_reply(b, k)->integer, 1);
    ck_assert_int_eq(mproc_mbatch_code(b, 100), MPROC_EBADOBJ);
    mproc_mbatch_clear(b);
    const char *get[] = {"HGET", "cd", "f99"};
    ck_assert_int_eq(mproc_mbatch_add(b, 3, get, NULL), 0);
    ck_assert_int_eq(mproc_mbatch_run(b, T), 0);
    ck_assert_str_eq(mproc_mbatch_reply(b, 0)->str, "f99");
    mproc_mbatch_destroy(b);

    mproc_mdict_close(dict);
    mproc_mlist_close(l);
    mproc_mqueue_close(q);
    ck_assert_int_eq(mproc_mclient_del(c, "cd", T), 0);
    ck_assert_int_eq(mproc_mclient_del(c, "cd", T), MPROC_ENOENT);
    mproc_mclient_del(c, "cl", T);
    mproc_mclient_del(c, "cv", T);
}

START_TEST(common_calls_work_on_a_manager_over_rings)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    ck_assert_str_eq(mproc_mclient_transport(c), "rings");
    ck_assert_int_eq(mproc_mclient_server(c), MPROC_MSERVER_MANAGER);
    common_cases(c);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(common_calls_work_on_a_manager_over_the_socket)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), false);
    ck_assert_str_eq(mproc_mclient_transport(c), "unix");
    common_cases(c);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(common_calls_work_on_a_real_redis_server)
{
    redis_srv r;
    if (!redis_start(&r))
        return;
    mproc_mclient *c = client(r.addr, true);
    ck_assert_int_eq(mproc_mclient_server(c), MPROC_MSERVER_REDIS);
    ck_assert_str_eq(mproc_mclient_transport(c), "unix");
    common_cases(c);
    /* What only a manager has says so without asking. */
    mproc_mlock *l;
    ck_assert_int_eq(mproc_mlock_open(&l, c, "l", NULL, T), MPROC_ENOSYS);
    mproc_mqueue *q;
    mproc_mqueue_opts qo = {.maxsize = 2};
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "q", &qo, T), MPROC_ENOSYS);
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "q", NULL, T), 0);
    ck_assert_int_eq(mproc_mqueue_join(q, T), MPROC_ENOSYS);
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    redis_stop(&r);
}
END_TEST

static void write_file(const char *path, const char *text, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    fchmod(fd, mode);
    close(fd);
}

START_TEST(tcp_clients_must_auth_with_the_password_file)
{
    char pw[256];
    test_path(pw, sizeof pw, "password");
    write_file(pw, "s3cret\n", 0600);
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.tcp = "127.0.0.1:0";
    o.password_file = pw;
    mproc_manager *m = start(&o);
    const char *tcp = mproc_manager_tcp_address(m);
    ck_assert_ptr_nonnull(tcp);
    ck_assert(strncmp(tcp, "tcp:127.0.0.1:", 14) == 0);

    mproc_mclient *c = NULL;
    ck_assert_int_eq(mproc_mclient_open(&c, tcp, NULL, T), MPROC_EDENIED);
    mproc_mclient_opts co = MPROC_MCLIENT_OPTS_INIT;
    co.password = "s3cres";
    ck_assert_int_eq(mproc_mclient_open(&c, tcp, &co, T), MPROC_EDENIED);
    co.password = "s3cret-and-more";
    ck_assert_int_eq(mproc_mclient_open(&c, tcp, &co, T), MPROC_EDENIED);
    co.password = NULL;
    co.password_file = pw;
    ck_assert_int_eq(mproc_mclient_open(&c, tcp, &co, T), 0);
    ck_assert_str_eq(mproc_mclient_transport(c), "tcp");
    common_cases(c);
    mproc_mclient_close(c);
    unlink(pw);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(start_refuses_a_password_file_others_can_read)
{
    char pw[256];
    test_path(pw, sizeof pw, "password");
    write_file(pw, "s3cret\n", 0644);
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.tcp = "127.0.0.1:0";
    o.password_file = pw;
    mproc_manager *m = NULL;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, &o), MPROC_EDENIED);
    /* TCP without a password, and a host that is not loopback. */
    o.password_file = NULL;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, &o), MPROC_EINVAL);
    chmod(pw, 0600);
    o.password_file = pw;
    o.tcp = "10.1.2.3:0";
    ck_assert_int_eq(mproc_manager_start(&m, NULL, &o), MPROC_EINVAL);
    unlink(pw);
    /* Times beyond their bounds (they would overflow in nanoseconds). */
    o = (mproc_manager_opts)MPROC_MANAGER_OPTS_INIT;
    o.spin_us = INT64_MAX;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, &o), MPROC_EINVAL);
    o.spin_us = 1000001;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, &o), MPROC_EINVAL);
    o = (mproc_manager_opts)MPROC_MANAGER_OPTS_INIT;
    o.request_timeout_ms = INT64_MAX;
    ck_assert_int_eq(mproc_manager_start(&m, NULL, &o), MPROC_EINVAL);
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(start_refuses_a_path_that_is_not_a_socket_and_replaces_a_stale_one)
{
    char path[256], addr[300];
    test_path(path, sizeof path, "mgr.sock");
    snprintf(addr, sizeof addr, "unix:%s", path);
    write_file(path, "not a socket", 0600);
    mproc_manager *m = NULL;
    ck_assert_int_eq(mproc_manager_start(&m, addr, NULL), MPROC_EEXIST);
    unlink(path);
    /* A socket nobody listens on: left by a server that died. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    ck_assert_int_eq(mproc_manager_start(&m, addr, NULL), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* A second server on a live socket: refused. */
    mproc_manager *m2 = NULL;
    ck_assert_int_eq(mproc_manager_start(&m2, addr, NULL), MPROC_EEXIST);
    mproc_mclient *c = client(addr, true);
    ck_assert_int_eq(mproc_mclient_ping(c, T), 0);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

static int connect_as_nobody(void *arg)
{
    const char *addr = arg;
    if (!test_become_nobody())
        return 9;
    mproc_mclient *c = NULL;
    int rc = mproc_mclient_open(&c, addr, NULL, 5000);
    if (rc == 0) {
        rc = mproc_mclient_ping(c, 5000);
        mproc_mclient_close(c);
        return rc == 0 ? 0 : 3;
    }
    return rc == MPROC_ECLOSED ? 2 : 4;
}

START_TEST(peers_of_another_uid_are_refused_unless_listed)
{
    if (geteuid() != 0) {
        test_skip("not root: no second uid to try");
        return;
    }
    mproc_manager *m = start(NULL);
    mproc_process *p;
    ck_assert_int_eq(mproc_process_start(&p, connect_as_nobody,
                                         (void *)mproc_manager_address(m),
                                         NULL),
                     0);
    expect_exit(p, 2);
    mproc_manager_destroy(m);

    uid_t nobody = TEST_NOBODY;
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.access.uids = &nobody;
    o.access.n_uids = 1;
    m = start(&o);
    ck_assert_int_eq(mproc_process_start(&p, connect_as_nobody,
                                         (void *)mproc_manager_address(m),
                                         NULL),
                     0);
    expect_exit(p, 0);
    mproc_manager_destroy(m);
}
END_TEST

/* ----- blocking, parking, processes ----- */

START_TEST(a_parked_client_never_blocks_the_server)
{
    mproc_manager *m = start(NULL);
    int fd = raw_connect(mproc_manager_address(m));
    raw_send(fd, "BLPOP q 0\r\n");
    mproc_mclient *c = client(mproc_manager_address(m), true);
    ck_assert(stat_reaches(c, "q", "waiters", 1));
    int64_t t0 = test_now_ms();
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(mproc_mclient_ping(c, T), 0);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    mproc_mlist *l;
    mproc_mlist_open(&l, c, "q");
    ck_assert_int_eq(mproc_mlist_append(l, "item", MPROC_MSTR, NULL, T), 0);
    ck_assert(raw_expect(fd, "*2\r\n$1\r\nq\r\n$4\r\nitem\r\n", test_ms(5000)));
    mproc_mlist_close(l);
    close(fd);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

/* RUN_SERIAL five_hundred_clients_are_served_at_once */
START_TEST(five_hundred_clients_are_served_at_once)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 700 && rl.rlim_max >= 700) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 700) {
        test_skip("RLIMIT_NOFILE below 700");
        return;
    }
    enum { N = 500 };
    mproc_manager *m = start(NULL);
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = raw_connect(mproc_manager_address(m));
        raw_send(fds[i], "BLPOP many 0\r\n");
    }
    mproc_mclient *c = client(mproc_manager_address(m), true);
    ck_assert(stat_reaches(c, "many", "waiters", N));
    mproc_mbatch *b;
    mproc_mbatch_create(&b, c);
    for (int i = 0; i < N; i++) {
        char item[16];
        snprintf(item, sizeof item, "%d", i);
        const char *argv[] = {"RPUSH", "many", item};
        mproc_mbatch_add(b, 3, argv, NULL);
    }
    ck_assert_int_eq(mproc_mbatch_run(b, T), 0);
    mproc_mbatch_destroy(b);
    /* Items go to the waiters in the order they came. */
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "$4\r\nmany\r\n$%d\r\n%d\r\n",
                 i < 10    ? 1
                 : i < 100 ? 2
                           : 3,
                 i);
        ck_assert_msg(raw_expect(fds[i], want, test_ms(5000)),
                      "client %d did not get item %d", i, i);
        raw_send(fds[i], "PING\r\n");
    }
    for (int i = 0; i < N; i++) {
        ck_assert(raw_expect(fds[i], "+PONG\r\n", test_ms(5000)));
        close(fds[i]);
    }
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

typedef struct kid_arg {
    mproc_mclient *c;
    mproc_mdict *d;
    int out_fd;
} kid_arg;

static int incr_in_child(void *arg)
{
    kid_arg *a = arg;
    for (int i = 0; i < 100; i++)
        if (mproc_mdict_incr(a->d, "n", MPROC_MSTR, 1, NULL, 5000) != 0)
            return 2;
    /* Its own connection, and rings like the parent's. */
    if (strcmp(mproc_mclient_transport(a->c), "rings") != 0)
        return 3;
    return 0;
}

START_TEST(handles_work_in_forked_children_each_with_its_own_connection)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_mdict *d;
    ck_assert_int_eq(mproc_mdict_open(&d, c, "forked"), 0);
    ck_assert_int_eq(mproc_mdict_incr(d, "n", MPROC_MSTR, 1, NULL, T), 0);
    kid_arg a = {c, d, -1};
    mproc_process *p[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(mproc_process_start(&p[i], incr_in_child, &a, NULL),
                         0);
    for (int i = 0; i < 4; i++) {
        expect_exit(p[i], 0);
    }
    int64_t n;
    ck_assert_int_eq(mproc_mdict_get_i64(d, "n", MPROC_MSTR, &n, T), 0);
    ck_assert_int_eq(n, 401);
    mproc_mdict_close(d);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

/* The seed's JoinableQueue: filled with 2, 3, 4; three processes each take
 * one and call task_done; join returns once all are done. */
static int take_one(void *arg)
{
    mproc_mqueue *q = arg;
    void *p;
    size_t n;
    if (mproc_mqueue_get(q, &p, &n, 5000) != 0)
        return 2;
    free(p);
    return mproc_mqueue_task_done(q, 5000) == 0 ? 0 : 3;
}

START_TEST(joinable_queue_join_waits_for_every_task_done)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_mqueue *q;
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "jq", NULL, T), 0);
    for (int i = 2; i <= 4; i++) {
        char item[4] = {(char)('0' + i), 0};
        ck_assert_int_eq(mproc_mqueue_put(q, item, MPROC_MSTR, T), 0);
    }
    ck_assert_int_eq(mproc_mqueue_join(q, 50), MPROC_ETIMEDOUT);
    mproc_process *p[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mproc_process_start(&p[i], take_one, q, NULL), 0);
    ck_assert_int_eq(mproc_mqueue_join(q, test_ms(10000)), 0);
    for (int i = 0; i < 3; i++) {
        expect_exit(p[i], 0);
    }
    ck_assert_int_eq(mproc_mqueue_task_done(q, T), MPROC_EOVERRELEASE);
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(bounded_queue_put_waits_for_room_and_times_out)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_mclient *c2 = client(mproc_manager_address(m), false);
    mproc_mqueue *q, *q2;
    mproc_mqueue_opts o = {.maxsize = 2};
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "bq", &o, T), 0);
    /* Another opener takes it as its creator made it. */
    ck_assert_int_eq(mproc_mqueue_open(&q2, c2, "bq", NULL, T), 0);
    ck_assert_int_eq(mproc_mqueue_put(q2, "a", MPROC_MSTR, T), 0);
    ck_assert_int_eq(mproc_mqueue_put(q2, "b", MPROC_MSTR, T), 0);
    ck_assert_int_eq(mproc_mqueue_put(q2, "c", MPROC_MSTR, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_mqueue_put(q2, "c", MPROC_MSTR, 100),
                     MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 90);
    size_t n;
    ck_assert_int_eq(mproc_mqueue_qsize(q, &n, T), 0);
    ck_assert_uint_eq(n, 2);
    mproc_mqueue_close(q);
    mproc_mqueue_close(q2);
    mproc_mclient_close(c);
    mproc_mclient_close(c2);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(locks_are_exclusive_and_checked_by_owner)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *a = client(mproc_manager_address(m), true);
    mproc_mclient *b = client(mproc_manager_address(m), true);
    mproc_mlock *la, *lb;
    ck_assert_int_eq(mproc_mlock_open(&la, a, "L", NULL, T), 0);
    mproc_mlock_opts ro = {.recursive = true};
    ck_assert_int_eq(mproc_mlock_open(&lb, b, "L", &ro, T), 0);
    ck_assert(!mproc_mlock_is_recursive(lb)); /* the creator chose */
    ck_assert_int_eq(mproc_mlock_acquire(la, T), 0);
    ck_assert_int_eq(mproc_mlock_acquire(la, T), MPROC_EDEADLK);
    ck_assert_int_eq(mproc_mlock_acquire(lb, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_mlock_acquire(lb, 50), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_mlock_release(lb, T), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_mlock_release(la, T), 0);
    ck_assert_int_eq(mproc_mlock_release(la, T), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_mlock_acquire(lb, T), 0);
    ck_assert_int_eq(mproc_mlock_release(lb, T), 0);
    mproc_mlock_close(la);
    mproc_mlock_close(lb);

    mproc_mlock *r;
    ck_assert_int_eq(mproc_mlock_open(&r, a, "R", &ro, T), 0);
    ck_assert(mproc_mlock_is_recursive(r));
    ck_assert_int_eq(mproc_mlock_acquire(r, T), 0);
    ck_assert_int_eq(mproc_mlock_acquire(r, T), 0);
    ck_assert_int_eq(mproc_mlock_release(r, T), 0);
    ck_assert_int_eq(stat_field(b, "R", "depth"), 1);
    ck_assert_int_eq(stat_field(b, "R", "owner_pid"), getpid());
    ck_assert_int_eq(mproc_mlock_release(r, T), 0);
    mproc_mlock_close(r);
    mproc_mclient_close(a);
    mproc_mclient_close(b);
    mproc_manager_destroy(m);
}
END_TEST

typedef struct hold_arg {
    mproc_mlock *l;
    int fd;
} hold_arg;

static int hold_lock(void *arg)
{
    hold_arg *h = arg;
    if (mproc_mlock_acquire(h->l, 5000) != 0)
        return 2;
    (void)!write(h->fd, "x", 1);
    pause();
    return 0;
}

START_TEST(a_lock_holder_that_dies_releases_it_and_the_next_owner_learns_it)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_mlock *l;
    ck_assert_int_eq(mproc_mlock_open(&l, c, "dead", NULL, T), 0);
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    hold_arg h = {l, pfd[1]};
    mproc_process *p;
    ck_assert_int_eq(mproc_process_start(&p, hold_lock, &h, NULL), 0);
    char x;
    ck_assert_int_eq(read(pfd[0], &x, 1), 1);
    ck_assert_int_eq(mproc_mlock_acquire(l, 0), MPROC_ETIMEDOUT);
    mproc_process_kill(p);
    ck_assert_int_eq(mproc_mlock_acquire(l, test_ms(5000)), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_mlock_release(l, T), 0);
    ck_assert_int_eq(mproc_mlock_acquire(l, T), 0); /* told once */
    ck_assert_int_eq(mproc_mlock_release(l, T), 0);
    mproc_process_join(p, test_ms(5000));
    mproc_process_destroy(p);

    /* A holder that closes its client without releasing: the same. */
    mproc_mclient *c2 = client(mproc_manager_address(m), false);
    mproc_mlock *l2;
    ck_assert_int_eq(mproc_mlock_open(&l2, c2, "dead", NULL, T), 0);
    ck_assert_int_eq(mproc_mlock_acquire(l2, T), 0);
    mproc_mlock_close(l2);
    mproc_mclient_close(c2);
    ck_assert_int_eq(mproc_mlock_acquire(l, test_ms(5000)), MPROC_EOWNERDEAD);
    mproc_mlock_close(l);
    close(pfd[0]);
    close(pfd[1]);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

static int get_forever(void *arg)
{
    mproc_mqueue *q = arg;
    void *p;
    size_t n;
    mproc_mqueue_get(q, &p, &n, MPROC_FOREVER);
    return 0;
}

START_TEST(a_client_killed_while_parked_takes_nothing)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_mqueue *q;
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "kq", NULL, T), 0);
    mproc_process *p[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mproc_process_start(&p[i], get_forever, q, NULL), 0);
    ck_assert(stat_reaches(c, "kq", "waiters", 3));
    /* The worst order: the item comes before the server has read that
     * the waiters are gone. The server is stopped while the push is
     * written and the waiters die, so it finds the push first. */
    int fd = raw_connect(mproc_manager_address(m));
    pid_t srv = mproc_manager_pid(m);
    ck_assert_int_eq(kill(srv, SIGSTOP), 0);
    raw_send(fd, "RPUSH kq kept\r\n");
    usleep(20000);
    for (int i = 0; i < 3; i++) {
        mproc_process_kill(p[i]);
        mproc_process_join(p[i], test_ms(5000));
        mproc_process_destroy(p[i]);
    }
    ck_assert_int_eq(kill(srv, SIGCONT), 0);
    ck_assert(raw_expect(fd, ":1\r\n", T));
    void *item;
    size_t n;
    ck_assert_int_eq(mproc_mqueue_get(q, &item, &n, T), 0);
    ck_assert_str_eq(item, "kept");
    free(item);
    ck_assert(stat_reaches(c, "kq", "waiters", 0));
    close(fd);
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(an_item_never_goes_to_a_waiter_whose_end_is_not_read_yet)
{
    enum { N = 80 }; /* more than the server takes from epoll at once */
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    int w[N];
    for (int i = 0; i < N; i++) {
        w[i] = raw_connect(mproc_manager_address(m));
        raw_send(w[i], "BLPOP late 0\r\n");
        ck_assert(stat_reaches(c, "late", "waiters", i + 1));
    }
    int fd = raw_connect(mproc_manager_address(m));
    pid_t srv = mproc_manager_pid(m);
    /* Stopped, the server finds the push ready before every hangup, and
     * the first waiter's hangup last: it reads the push while that
     * waiter still looks parked. */
    ck_assert_int_eq(kill(srv, SIGSTOP), 0);
    raw_send(fd, "RPUSH late kept\r\n");
    usleep(10000);
    for (int i = N - 1; i >= 0; i--)
        close(w[i]);
    usleep(10000);
    ck_assert_int_eq(kill(srv, SIGCONT), 0);
    ck_assert(raw_expect(fd, ":1\r\n", T));
    mproc_mlist *l;
    mproc_mlist_open(&l, c, "late");
    void *item = NULL;
    size_t n;
    ck_assert_int_eq(mproc_mlist_pop_front(l, &item, &n, T), 0);
    ck_assert_str_eq(item, "kept");
    free(item);
    mproc_mlist_close(l);
    close(fd);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

static int half_request_then_wait(void *arg)
{
    const char *addr = arg;
    int fd = raw_connect(addr);
    const char half[] = "*3\r\n$4\r\nHSET\r\n$4\r\nhalf\r\n$10\r\nab";
    (void)!send(fd, half, sizeof half - 1, MSG_NOSIGNAL);
    pause();
    return 0;
}

START_TEST(a_client_killed_mid_request_leaves_the_server_working)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_process *p;
    ck_assert_int_eq(mproc_process_start(&p, half_request_then_wait,
                                         (void *)mproc_manager_address(m),
                                         NULL),
                     0);
    usleep(100000);
    mproc_process_kill(p);
    mproc_process_join(p, test_ms(5000));
    mproc_process_destroy(p);
    ck_assert_int_eq(mproc_mclient_ping(c, T), 0);
    mproc_mdict *d;
    mproc_mdict_open(&d, c, "half");
    size_t n;
    ck_assert_int_eq(mproc_mdict_len(d, &n, T), 0);
    ck_assert_uint_eq(n, 0);
    mproc_mdict_close(d);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

typedef struct bar_arg {
    mproc_mbarrier *b;
    int fd;
} bar_arg;

static int barrier_party(void *arg)
{
    bar_arg *a = arg;
    unsigned idx = 99;
    int rc = mproc_mbarrier_wait(a->b, &idx, 10000);
    if (rc != 0)
        return rc == MPROC_EBROKEN ? 50 : 60;
    return (int)idx + 10;
}

START_TEST(barrier_event_and_semaphore_work_across_processes)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    mproc_mbarrier *b;
    mproc_mbarrier_opts bo = {.parties = 3};
    ck_assert_int_eq(mproc_mbarrier_open(&b, c, "bar", &bo, T), 0);
    bar_arg a = {b, -1};
    mproc_process *p[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mproc_process_start(&p[i], barrier_party, &a, NULL),
                         0);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(mproc_process_join(p[i], test_ms(15000)), 0);
        int code;
        mproc_process_exitcode(p[i], &code);
        ck_assert_int_ge(code, 10);
        ck_assert_int_le(code, 12);
        seen |= 1 << (code - 10);
        mproc_process_destroy(p[i]);
    }
    ck_assert_int_eq(seen, 7);

    /* A party killed while it waits breaks the barrier for the others. */
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(mproc_process_start(&p[i], barrier_party, &a, NULL),
                         0);
    ck_assert(stat_reaches(c, "bar", "waiting", 2));
    mproc_process_kill(p[0]);
    ck_assert_int_eq(mproc_process_join(p[1], test_ms(10000)), 0);
    int code;
    mproc_process_exitcode(p[1], &code);
    ck_assert_int_eq(code, 50);
    mproc_process_join(p[0], test_ms(5000));
    mproc_process_destroy(p[0]);
    mproc_process_destroy(p[1]);
    ck_assert_int_eq(mproc_mbarrier_wait(b, NULL, 0), MPROC_EBROKEN);
    ck_assert_int_eq(mproc_mbarrier_reset(b, T), 0);
    ck_assert_int_eq(mproc_mbarrier_wait(b, NULL, 50), MPROC_ETIMEDOUT);
    /* Removed while a party waits: that party is told it broke. */
    ck_assert_int_eq(mproc_mbarrier_reset(b, T), 0);
    ck_assert_int_eq(mproc_process_start(&p[0], barrier_party, &a, NULL), 0);
    ck_assert(stat_reaches(c, "bar", "waiting", 1));
    ck_assert_int_eq(mproc_mclient_del(c, "bar", T), 0);
    expect_exit(p[0], 50);
    mproc_mbarrier_close(b);

    mproc_mevent *e;
    ck_assert_int_eq(mproc_mevent_open(&e, c, "ev"), 0);
    ck_assert_int_eq(mproc_mevent_is_set(e, T), 0);
    ck_assert_int_eq(mproc_mevent_wait(e, 30), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_mevent_set(e, T), 0);
    ck_assert_int_eq(mproc_mevent_wait(e, T), 0);
    ck_assert_int_eq(mproc_mevent_is_set(e, T), 1);
    ck_assert_int_eq(mproc_mevent_clear(e, T), 0);
    ck_assert_int_eq(mproc_mevent_is_set(e, T), 0);
    mproc_mevent_close(e);

    mproc_msemaphore *s;
    mproc_msemaphore_opts so = {.value = 2, .bounded = true};
    ck_assert_int_eq(mproc_msemaphore_open(&s, c, "sem", &so, T), 0);
    ck_assert_int_eq(mproc_msemaphore_acquire(s, T), 0);
    ck_assert_int_eq(mproc_msemaphore_acquire(s, T), 0);
    ck_assert_int_eq(mproc_msemaphore_acquire(s, 30), MPROC_ETIMEDOUT);
    unsigned v;
    ck_assert_int_eq(mproc_msemaphore_value(s, &v, T), 0);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(mproc_msemaphore_release(s, T), 0);
    ck_assert_int_eq(mproc_msemaphore_release(s, T), 0);
    ck_assert_int_eq(mproc_msemaphore_release(s, T), MPROC_EOVERRELEASE);
    mproc_msemaphore_close(s);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

/* ----- bad input ----- */

START_TEST(bad_commands_get_error_replies_and_the_connection_stays)
{
    mproc_manager *m = start(NULL);
    int fd = raw_connect(mproc_manager_address(m));
    raw_send(fd, "NOSUCH a b\r\n");
    ck_assert(raw_expect(fd, "-ERR unknown command 'NOSUCH'\r\n", T));
    raw_send(fd, "*1\r\n$3\r\nGET\r\n");
    ck_assert(raw_expect(fd,
                         "-ERR wrong number of arguments for 'get' "
                         "command\r\n",
                         T));
    raw_send(fd, "INCRBY k notanumber\r\n");
    ck_assert(
        raw_expect(fd, "-ERR value is not an integer or out of range", T));
    raw_send(fd, "RPUSH l x\r\nHGET l f\r\n");
    ck_assert(raw_expect(fd, "-WRONGTYPE", T));
    raw_send(fd, "LOCK.ACQUIRE lk forever\r\n");
    ck_assert(raw_expect(fd, "-ERR timeout is not an integer", T));
    raw_send(fd, "PING\r\n");
    ck_assert(raw_expect(fd, "+PONG\r\n", T));
    close(fd);
    mproc_manager_destroy(m);
}
END_TEST

/* Each input must get an error reply that names it, then EOF. */
static void expect_closed_with(mproc_manager *m, const char *input, size_t len,
                               const char *reply)
{
    int fd = raw_connect(mproc_manager_address(m));
    ck_assert_int_eq(send(fd, input, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[4096];
    bool eof;
    raw_read(fd, buf, sizeof buf, test_ms(5000), &eof);
    ck_assert_msg(strstr(buf, reply) != NULL, "got '%s', want '%s'", buf,
                  reply);
    ck_assert_msg(eof, "connection not closed after '%s'", reply);
    close(fd);
}

START_TEST(malformed_and_oversized_input_closes_that_connection_only)
{
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.max_request = 4096;
    mproc_manager *m = start(&o);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    static const char bulk[] = "*2\r\n$4\r\nECHO\r\n$999999\r\nabc";
    expect_closed_with(m, bulk, sizeof bulk - 1,
                       "-ERR Protocol error: invalid bulk length");
    static const char nested[] = "*1\r\n*1\r\n$4\r\nPING\r\n";
    expect_closed_with(m, nested, sizeof nested - 1, "-ERR Protocol error");
    static const char intarg[] = "*2\r\n$4\r\nECHO\r\n:12\r\n";
    expect_closed_with(m, intarg, sizeof intarg - 1, "-ERR Protocol error");
    static const char badlen[] = "*x\r\n";
    expect_closed_with(m, badlen, sizeof badlen - 1, "-ERR Protocol error");
    static const char quotes[] = "SET a \"unclosed\r\n";
    expect_closed_with(m, quotes, sizeof quotes - 1,
                       "-ERR Protocol error: unbalanced quotes");
    /* A request that grows past the limit piece by piece. */
    char *big = malloc(8192);
    memcpy(big, "*2000\r\n", 7);
    size_t n = 7;
    while (n + 8 < 8192) {
        memcpy(big + n, "$1\r\na\r\n", 7);
        n += 7;
    }
    expect_closed_with(m, big, n, "-ERR Protocol error: request too large");
    memset(big, 'A', 8192);
    expect_closed_with(m, big, 8192, "-ERR Protocol error"); /* inline */
    free(big);
    /* The server and its other clients never noticed. */
    ck_assert_int_eq(mproc_mclient_ping(c, T), 0);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

/* Publishes n raw bytes (not a record) into the ring x sends on; the
 * unlock rings a receiver that sleeps. */
static void ring_put_garbage(mproc__ringio *x, const void *b, size_t n)
{
    mproc__deadline d;
    mproc__deadline_init(&d, T);
    ck_assert_int_eq(mproc__ring_lock(x, &d), 0);
    uint64_t h = atomic_load(&x->r->w.head);
    uint32_t pos = mproc__rec_pos(h);
    memcpy(x->r->data + (pos & (x->size - 1)), b, n);
    atomic_store(&x->r->w.head,
                 mproc__rec_pack(mproc__rec_cnt(h) + 1, pos + (uint32_t)n));
    (void)mproc__ring_unlock(x);
}

/* A ring client's garbage found by a server asleep in epoll (woken by the
 * ring's doorbell): the receive that finds it closes that client, and the
 * server goes on. (The server once went on to drain the doorbell of the
 * ring it had just closed, and crashed.) */
START_TEST(garbage_in_a_ring_woken_from_sleep_closes_that_client_only)
{
    mproc_manager *m = start(NULL);
    mproc_mclient *c = client(mproc_manager_address(m), true);
    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    for (int round = 0; round < 3; round++) {
        mproc_conn *sock, *ring = NULL;
        ck_assert_int_eq(
            mproc_conn_from_fd(&sock, raw_connect(mproc_manager_address(m)),
                               MPROC_CONN_MESSAGES),
            0);
        raw_send(mproc_conn_fd(sock), "*1\r\n$10\r\nMPROC.RING\r\n");
        ck_assert_int_eq(mproc_conn_recv_conn(sock, &ring, T), 0);
        char buf[64];
        size_t n = 0;
        ck_assert_int_eq(mproc_conn_send(ring, ping, sizeof ping - 1, T), 0);
        ck_assert_int_eq(mproc_conn_recv(ring, buf, sizeof buf, &n, T), 0);
        ck_assert_mem_eq(buf, "+PONG\r\n", 7);
        /* Far past the server's spin: it has armed the ring and sleeps. */
        usleep(200000);
        mproc__ringio *x = mproc__conn_ringio(ring, true);
        ck_assert_ptr_nonnull(x);
        ring_put_garbage(x, "GARBAGE!GARBAGE!", 16);
        ck_assert_int_eq(mproc_conn_recv(ring, buf, sizeof buf, &n, T),
                         MPROC_ECLOSED);
        mproc_conn_close(ring);
        mproc_conn_close(sock);
        ck_assert_int_eq(mproc_mclient_ping(c, T), 0);
    }
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(a_half_sent_request_is_closed_after_the_request_timeout)
{
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.request_timeout_ms = 200;
    mproc_manager *m = start(&o);
    static const char half[] = "*2\r\n$4\r\nECHO\r\n$5\r\nab";
    int64_t t0 = test_now_ms();
    expect_closed_with(m, half, sizeof half - 1, "-ERR request timed out");
    ck_assert_int_ge(test_now_ms() - t0, 150);
    /* A connection idle between requests is not a half request. */
    int fd = raw_connect(mproc_manager_address(m));
    usleep(400000);
    raw_send(fd, "PING\r\n");
    ck_assert(raw_expect(fd, "+PONG\r\n", T));
    close(fd);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(too_many_pending_requests_close_the_connection)
{
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.max_pending = 4;
    mproc_manager *m = start(&o);
    int fd = raw_connect(mproc_manager_address(m));
    raw_send(fd, "BLPOP nothing 0\r\nPING\r\nPING\r\nPING\r\n");
    mproc_mclient *c = client(mproc_manager_address(m), true);
    ck_assert(stat_reaches(c, "nothing", "waiters", 1));
    char buf[4096];
    bool eof;
    raw_read(fd, buf, sizeof buf, 100, &eof);
    ck_assert(!eof); /* three behind a parked one are fine */
    raw_send(fd, "PING\r\nPING\r\nPING\r\n");
    raw_read(fd, buf, sizeof buf, test_ms(5000), &eof);
    ck_assert_ptr_nonnull(strstr(buf, "too many pending requests"));
    ck_assert(eof);
    close(fd);
    ck_assert(stat_reaches(c, "nothing", "waiters", -1));
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(connections_beyond_max_clients_are_refused_with_an_error)
{
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.max_clients = 2;
    mproc_manager *m = start(&o);
    mproc_mclient *a = client(mproc_manager_address(m), true);
    mproc_mclient *b = client(mproc_manager_address(m), false);
    mproc_mclient *x = NULL;
    ck_assert_int_eq(mproc_mclient_open(&x, mproc_manager_address(m), NULL, T),
                     MPROC_EAGAIN);
    mproc_mclient_close(b);
    /* Room again once one leaves (the server sees it close). */
    int rc = MPROC_EAGAIN;
    for (int i = 0; i < 100 && rc == MPROC_EAGAIN; i++) {
        rc = mproc_mclient_open(&x, mproc_manager_address(m), NULL, T);
        if (rc == MPROC_EAGAIN)
            usleep(10000);
    }
    ck_assert_int_eq(rc, 0);
    mproc_mclient_close(x);
    mproc_mclient_close(a);
    mproc_manager_destroy(m);
}
END_TEST

START_TEST(a_server_that_never_answers_times_the_client_out)
{
    char name[64];
    snprintf(name, sizeof name, "@mproc-test-mute-%d", (int)getpid());
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, name, NULL), 0);
    mproc_mclient *c = NULL;
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_mclient_open(&c, name, NULL, 200), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 150);
    mproc_listener_close(l);
}
END_TEST

/* ----- lifetime ----- */

START_TEST(shutdown_and_terminate_end_the_server_cleanly)
{
    char path[256], addr[300];
    test_path(path, sizeof path, "shut.sock");
    snprintf(addr, sizeof addr, "unix:%s", path);
    mproc_manager *m = NULL;
    ck_assert_int_eq(mproc_manager_start(&m, addr, NULL), 0);
    mproc_mclient *c = client(addr, true);
    const char *argv[] = {"MPROC.SHUTDOWN"};
    mproc_mreply *r;
    ck_assert_int_eq(mproc_mclient_call(c, &r, 1, argv, NULL, T), 0);
    ck_assert_str_eq(r->str, "OK");
    mproc_mreply_free(r);
    ck_assert_int_eq(mproc_manager_join(m, test_ms(5000)), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(mproc_mclient_ping(c, T), MPROC_ECLOSED);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);

    m = start(NULL);
    ck_assert_int_eq(mproc_manager_terminate(m), 0);
    ck_assert_int_eq(mproc_manager_join(m, test_ms(5000)), 0);
    mproc_manager_destroy(m);
}
END_TEST

static int start_and_leave(void *arg)
{
    const char *addr = arg;
    mproc_manager *m = NULL;
    if (mproc_manager_start(&m, addr, NULL) != 0)
        return 2;
    pid_t pid = mproc_manager_pid(m);
    printf("%d\n", (int)pid);
    fflush(stdout);
    _exit(0); /* without a word to the server */
}

START_TEST(the_server_ends_when_its_owner_ends)
{
    char path[256], addr[300];
    test_path(path, sizeof path, "owner.sock");
    snprintf(addr, sizeof addr, "unix:%s", path);
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(pfd[1], 1);
    mproc_process *p;
    ck_assert_int_eq(mproc_process_start(&p, start_and_leave, addr, NULL), 0);
    dup2(saved, 1);
    close(saved);
    close(pfd[1]);
    ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
    mproc_process_destroy(p);
    char buf[32];
    test_read_to_eof(pfd[0], buf, sizeof buf);
    close(pfd[0]);
    int pid = atoi(buf);
    ck_assert_int_gt(pid, 0);
    /* The server, orphaned, ends by itself (gone, or a zombie until the
     * test's subreaper takes it) and removes its socket file. */
    bool ended = false;
    for (int64_t end = test_now_ms() + test_ms(5000);
         !ended && test_now_ms() < end;) {
        char stat_path[64], st[256] = "";
        snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", pid);
        FILE *f = fopen(stat_path, "r");
        if (f == NULL) {
            ended = true;
            break;
        }
        size_t k = fread(st, 1, sizeof st - 1, f);
        fclose(f);
        st[k] = '\0';
        const char *rp = strrchr(st, ')');
        if (rp != NULL && (rp[2] == 'Z' || rp[2] == 'X'))
            ended = true;
        else
            usleep(5000);
    }
    ck_assert_msg(ended, "the server outlived its owner");
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* ----- redis-cli ----- */

static int run_cli(const char *path, char *const *args, char *out, size_t cap)
{
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    char *argv[16] = {"redis-cli", "-s", (char *)path};
    int i = 3;
    for (; args[i - 3] != NULL && i < 15; i++)
        argv[i] = args[i - 3];
    argv[i] = NULL;
    mproc_spawn_opts so = MPROC_SPAWN_OPTS_INIT;
    so.stdout_fd = pfd[1];
    mproc_process *p;
    ck_assert_int_eq(mproc_process_spawn(&p, "redis-cli", argv, &so), 0);
    close(pfd[1]);
    test_read_to_eof(pfd[0], out, cap);
    close(pfd[0]);
    ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
    int code;
    mproc_process_exitcode(p, &code);
    mproc_process_destroy(p);
    return code;
}

START_TEST(redis_cli_drives_the_manager)
{
    if (!have_program("redis-cli")) {
        test_skip("redis-cli is not installed");
        return;
    }
    char path[256], addr[300], out[4096];
    test_path(path, sizeof path, "cli.sock");
    snprintf(addr, sizeof addr, "unix:%s", path);
    mproc_manager *m = NULL;
    ck_assert_int_eq(mproc_manager_start(&m, addr, NULL), 0);
    char *ping[] = {"PING", NULL};
    ck_assert_int_eq(run_cli(path, ping, out, sizeof out), 0);
    ck_assert_str_eq(out, "PONG\n");
    char *push[] = {"RPUSH", "q", "two words", "3", NULL};
    ck_assert_int_eq(run_cli(path, push, out, sizeof out), 0);
    ck_assert_str_eq(out, "2\n");
    char *range[] = {"LRANGE", "q", "0", "-1", NULL};
    ck_assert_int_eq(run_cli(path, range, out, sizeof out), 0);
    ck_assert_str_eq(out, "two words\n3\n");
    char *hset[] = {"HSET", "d", "k", "v", NULL};
    ck_assert_int_eq(run_cli(path, hset, out, sizeof out), 0);
    char *type[] = {"TYPE", "d", NULL};
    ck_assert_int_eq(run_cli(path, type, out, sizeof out), 0);
    ck_assert_str_eq(out, "hash\n");
    char *wrong[] = {"GET", "d", NULL};
    run_cli(path, wrong, out, sizeof out);
    ck_assert_ptr_nonnull(strstr(out, "WRONGTYPE"));
    char *stat[] = {"MPROC.STAT", "q", NULL};
    ck_assert_int_eq(run_cli(path, stat, out, sizeof out), 0);
    ck_assert_ptr_nonnull(strstr(out, "len\n2\n"));
    /* What redis-cli wrote, the C client reads. */
    mproc_mclient *c = client(addr, true);
    mproc_mdict *d;
    mproc_mdict_open(&d, c, "d");
    void *p;
    size_t n;
    ck_assert_int_eq(mproc_mdict_get(d, "k", MPROC_MSTR, &p, &n, T), 0);
    ck_assert_str_eq(p, "v");
    free(p);
    mproc_mdict_close(d);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("manager");
    TEST_ADD(s, common_calls_work_on_a_manager_over_rings);
    TEST_ADD(s, common_calls_work_on_a_manager_over_the_socket);
    TEST_ADD(s, common_calls_work_on_a_real_redis_server);
    TEST_ADD(s, tcp_clients_must_auth_with_the_password_file);
    TEST_ADD(s, start_refuses_a_password_file_others_can_read);
    TEST_ADD(
        s, start_refuses_a_path_that_is_not_a_socket_and_replaces_a_stale_one);
    TEST_ADD(s, peers_of_another_uid_are_refused_unless_listed);
    TEST_ADD(s, a_parked_client_never_blocks_the_server);
    TEST_ADD(s, five_hundred_clients_are_served_at_once);
    TEST_ADD(s, handles_work_in_forked_children_each_with_its_own_connection);
    TEST_ADD(s, joinable_queue_join_waits_for_every_task_done);
    TEST_ADD(s, bounded_queue_put_waits_for_room_and_times_out);
    TEST_ADD(s, locks_are_exclusive_and_checked_by_owner);
    TEST_ADD(s,
             a_lock_holder_that_dies_releases_it_and_the_next_owner_learns_it);
    TEST_ADD(s, a_client_killed_while_parked_takes_nothing);
    TEST_ADD(s, an_item_never_goes_to_a_waiter_whose_end_is_not_read_yet);
    TEST_ADD(s, a_client_killed_mid_request_leaves_the_server_working);
    TEST_ADD(s, barrier_event_and_semaphore_work_across_processes);
    TEST_ADD(s, bad_commands_get_error_replies_and_the_connection_stays);
    TEST_ADD(s, malformed_and_oversized_input_closes_that_connection_only);
    TEST_ADD(s, garbage_in_a_ring_woken_from_sleep_closes_that_client_only);
    TEST_ADD(s, a_half_sent_request_is_closed_after_the_request_timeout);
    TEST_ADD(s, too_many_pending_requests_close_the_connection);
    TEST_ADD(s, connections_beyond_max_clients_are_refused_with_an_error);
    TEST_ADD(s, a_server_that_never_answers_times_the_client_out);
    TEST_ADD(s, shutdown_and_terminate_end_the_server_cleanly);
    TEST_ADD(s, the_server_ends_when_its_owner_ends);
    TEST_ADD(s, redis_cli_drives_the_manager);
    return s;
}
