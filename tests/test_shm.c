/* Regions, shared memory blocks, and typed Value/Array: naming rules, bad
 * input, kinds and versions, listing, sharing across processes, atomic
 * operations and the robust lock. Forked helpers only _exit. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/region.h"
#include "mproc.h"
#include "testlib.h"

static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(fn(arg));
    return p;
}

/* ------------------------------------------------------------ shm blocks */

static const char *g_name;

static int child_attach_write(void *arg)
{
    (void)arg;
    mproc_shm *m;
    if (mproc_shm_open(&m, g_name, NULL) != 0)
        return 1;
    if (mproc_shm_size(m) != 10000)
        return 2;
    unsigned char *p = mproc_shm_addr(m);
    if (p[0] != 0xab)
        return 3;
    p[9999] = 0xcd;
    mproc_shm_close(m);
    return 0;
}

START_TEST(shm_named_block_is_attached_by_name)
{
    char name[64];
    g_name = test_shm_name(name, sizeof name, "blk");
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, name, 10000, NULL), 0);
    ck_assert_uint_eq(mproc_shm_size(m), 10000);
    ck_assert_str_eq(mproc_shm_name(m), name);
    unsigned char *p = mproc_shm_addr(m);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    ck_assert_uint_eq(p[5000], 0);
    p[0] = 0xab;
    ck_assert_int_eq(test_wait_status(spawn(child_attach_write, NULL)), 0);
    ck_assert_uint_eq(p[9999], 0xcd);
    mproc_shm_close(m);
    /* Attaching and detaching never removed the name. */
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), 0);
    ck_assert_uint_eq(((unsigned char *)mproc_shm_addr(m))[9999], 0xcd);
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
    ck_assert_int_eq(mproc_shm_unlink(name), MPROC_ENOENT);
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), MPROC_ENOENT);
}
END_TEST

static mproc_shm *g_shm;

static int child_anon_write(void *arg)
{
    (void)arg;
    ((int *)mproc_shm_addr(g_shm))[1] = 77;
    mproc_shm_close(g_shm);
    return 0;
}

START_TEST(shm_anonymous_block_is_shared_with_forked_child)
{
    ck_assert_int_eq(mproc_shm_create(&g_shm, NULL, 64, NULL), 0);
    ck_assert_ptr_null(mproc_shm_name(g_shm));
    ck_assert_int_eq(test_wait_status(spawn(child_anon_write, NULL)), 0);
    ck_assert_int_eq(((int *)mproc_shm_addr(g_shm))[1], 77);
    mproc_shm_close(g_shm);
}
END_TEST

START_TEST(shm_create_refuses_an_existing_name)
{
    char name[64];
    test_shm_name(name, sizeof name, "dup");
    mproc_shm *m, *m2 = NULL;
    ck_assert_int_eq(mproc_shm_create(&m, name, 100, NULL), 0);
    ck_assert_int_eq(mproc_shm_create(&m2, name, 100, NULL), MPROC_EEXIST);
    ck_assert_ptr_null(m2);
    /* The failed create did not remove the first one's name. */
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), 0);
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
}
END_TEST

START_TEST(shm_bad_input_is_rejected)
{
    char name[64], longname[400];
    test_shm_name(name, sizeof name, "bad");
    mproc_shm *m = NULL;
    ck_assert_int_eq(mproc_shm_create(&m, name, 0, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_shm_create(NULL, name, 10, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_shm_create(&m, "noslash", 10, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_shm_create(&m, "/a/b", 10, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_shm_create(&m, "/", 10, NULL), MPROC_EINVAL);
    memset(longname, 'x', sizeof longname);
    longname[0] = '/';
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(mproc_shm_create(&m, longname, 10, NULL),
                     MPROC_ENAMETOOLONG);
    ck_assert_int_eq(mproc_shm_open(&m, NULL, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_shm_open(NULL, name, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_shm_unlink("nope"), MPROC_EINVAL);
    ck_assert_ptr_null(m);
    ck_assert_ptr_null(mproc_shm_addr(NULL));
    ck_assert_uint_eq(mproc_shm_size(NULL), 0);
    mproc_shm_close(NULL);
    /* Nothing was created by any of that. */
    ck_assert_int_eq(access("/dev/shm/noslash", F_OK), -1);
}
END_TEST

START_TEST(shm_named_block_has_mode_0600)
{
    char name[64], path[128];
    test_shm_name(name, sizeof name, "mode");
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, name, 10, NULL), 0);
    snprintf(path, sizeof path, "/dev/shm%s", name);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
    mproc_shm_opts o = MPROC_SHM_OPTS_INIT;
    o.mode = 0640;
    ck_assert_int_eq(mproc_shm_create(&m, name, 10, &o), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
}
END_TEST

START_TEST(shm_open_refuses_another_kind)
{
    char name[64];
    test_shm_name(name, sizeof name, "kind");
    mproc_lock *l;
    mproc_shm *m;
    ck_assert_int_eq(mproc_lock_create(&l, name, NULL), 0);
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_shm_unlink(name), MPROC_EBADOBJ);
    mproc_lock_close(l);
    ck_assert_int_eq(mproc_lock_unlink(name), 0);
}
END_TEST

/* Makes a raw /dev/shm file with the given bytes. */
static void raw_file(const char *name, const void *bytes, size_t n)
{
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    if (n > 0)
        ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
    close(fd);
}

START_TEST(shm_open_refuses_a_foreign_file)
{
    char name[64], junk[256];
    test_shm_name(name, sizeof name, "foreign");
    memset(junk, 'J', sizeof junk);
    raw_file(name, junk, sizeof junk);
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), MPROC_EBADOBJ);
    /* Unlink refuses to remove what is not ours. */
    ck_assert_int_eq(mproc_shm_unlink(name), MPROC_EBADOBJ);
    ck_assert_int_eq(shm_unlink(name), 0);
}
END_TEST

START_TEST(shm_open_gives_up_on_an_unfinished_object)
{
    char name[64];
    test_shm_name(name, sizeof name, "empty");
    raw_file(name, NULL, 0); /* as if the creator died before sizing it */
    mproc_shm *m;
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), MPROC_EBADOBJ);
    ck_assert_int_lt(test_now_ms() - t0, test_ms(3000));
    ck_assert_int_eq(shm_unlink(name), 0);
}
END_TEST

static int child_publish_later(void *arg)
{
    _Atomic int *started = arg;
    /* Play a creator that is slow to finish (a file made by other means
     * than mproc's own create, which publishes by link): size the file,
     * write the header, tell the parent, and publish it 20 ms later. */
    int fd = shm_open(g_name, O_RDWR, 0);
    if (fd < 0)
        return 1;
    size_t total = MPROC__REGION_HDR + 128;
    if (ftruncate(fd, (off_t)total) != 0)
        return 2;
    mproc__region_hdr *h =
        mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (h == MAP_FAILED)
        return 3;
    h->magic = MPROC__REGION_MAGIC;
    h->version = MPROC__REGION_VERSION;
    h->kind = MPROC__KIND_SHM;
    h->size = total;
    h->payload_offset = MPROC__REGION_HDR;
    h->payload_size = 128;
    atomic_store(started, 1);
    usleep(20000);
    atomic_store_explicit(&h->ready, MPROC__REGION_READY, memory_order_release);
    munmap(h, total);
    return 0;
}

START_TEST(shm_open_waits_for_a_creator_finishing)
{
    char name[64];
    g_name = test_shm_name(name, sizeof name, "slow");
    raw_file(name, NULL, 0);
    _Atomic int *started = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(started, MAP_FAILED);
    pid_t p = spawn(child_publish_later, (void *)started);
    /* The open's fixed budget (500 ms) starts only once the child is
     * under way, so a slow fork under a sanitizer cannot use it up. */
    int64_t until = test_now_ms() + test_ms(10000);
    while (!atomic_load(started) && test_now_ms() < until)
        usleep(1000);
    ck_assert(atomic_load(started));
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), 0);
    ck_assert_uint_eq(mproc_shm_size(m), 128);
    mproc_shm_close(m);
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
    munmap((void *)started, 4096);
}
END_TEST

START_TEST(shm_open_refuses_another_version)
{
    char name[64];
    test_shm_name(name, sizeof name, "ver");
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, name, 100, NULL), 0);
    /* Rewrite the header as a future version would. */
    int fd = shm_open(name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    mproc__region_hdr h;
    ck_assert_int_eq(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    h.version = MPROC__REGION_VERSION + 1;
    ck_assert_int_eq(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    close(fd);
    mproc_shm *m2;
    ck_assert_int_eq(mproc_shm_open(&m2, name, NULL), MPROC_EVERSION);
    ck_assert_int_eq(mproc_shm_unlink(name), MPROC_EVERSION);
    mproc_shm_close(m);
    /* The cleanup path removes any mproc object whatever its version. */
    ck_assert_int_eq(mproc__region_unlink(name, MPROC__KIND_ANY), 0);
}
END_TEST

START_TEST(shm_open_refuses_a_truncated_object)
{
    char name[64];
    test_shm_name(name, sizeof name, "trunc");
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, name, 8192, NULL), 0);
    int fd = shm_open(name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 1000), 0);
    close(fd);
    mproc_shm_close(m);
    mproc_shm *m2;
    ck_assert_int_eq(mproc_shm_open(&m2, name, NULL), MPROC_EBADOBJ);
    /* Damaged, but still an mproc shm block: its own unlink removes it. */
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
}
END_TEST

struct found {
    const char *a, *b;
    int saw_a, saw_b, saw_other_prefix;
    uint32_t kind_b;
};

static int on_region(const mproc__region_info *info, void *arg)
{
    struct found *f = arg;
    const char *name = info->name;
    if (info->version != MPROC__REGION_VERSION)
        return 0;
    if (strcmp(name, f->a) == 0)
        f->saw_a++;
    else if (strcmp(name, f->b) == 0) {
        f->saw_b++;
        f->kind_b = info->kind;
    } else if (strstr(name, "foreign2") != NULL)
        f->saw_other_prefix++;
    return 0;
}

START_TEST(region_list_finds_forgotten_mproc_names)
{
    char a[64], b[64], c[64], junk[128];
    test_shm_name(a, sizeof a, "lista");
    test_shm_name(b, sizeof b, "listb");
    test_shm_name(c, sizeof c, "foreign2");
    memset(junk, 'J', sizeof junk);
    raw_file(c, junk, sizeof junk);
    mproc_shm *m;
    mproc_event *e;
    ck_assert_int_eq(mproc_shm_create(&m, a, 10, NULL), 0);
    ck_assert_int_eq(mproc_event_create(&e, b, NULL), 0);
    /* "Forgotten": the handles are gone, the names stay. */
    mproc_shm_close(m);
    mproc_event_close(e);
    struct found f = {a, b, 0, 0, 0, 0};
    ck_assert_int_eq(mproc__region_list(on_region, &f), 0);
    ck_assert_int_eq(f.saw_a, 1);
    ck_assert_int_eq(f.saw_b, 1);
    ck_assert_int_eq(f.saw_other_prefix, 0);
    ck_assert_uint_eq(f.kind_b, MPROC__KIND_EVENT);
    ck_assert_int_eq(mproc__region_unlink(a, MPROC__KIND_ANY), 0);
    ck_assert_int_eq(mproc__region_unlink(b, MPROC__KIND_ANY), 0);
    ck_assert_int_eq(mproc__region_unlink(c, MPROC__KIND_ANY), MPROC_EBADOBJ);
    ck_assert_int_eq(shm_unlink(c), 0);
    struct found g = {a, b, 0, 0, 0, 0};
    ck_assert_int_eq(mproc__region_list(on_region, &g), 0);
    ck_assert_int_eq(g.saw_a + g.saw_b, 0);
    ck_assert_int_eq(mproc__region_list(NULL, NULL), MPROC_EINVAL);
}
END_TEST

static int child_create_big(void *arg)
{
    /* arg non-NULL: build under a temporary name, as without O_TMPFILE. */
    mproc__region_test_no_tmpfile(arg != NULL);
    mproc_shm *m;
    /* Killed during this (sizing and reserving 512 MiB takes a while). */
    return mproc_shm_create(&m, g_name, (size_t)512 << 20, NULL) == 0 ? 0 : 1;
}

/* Has pid begun a creation (it holds an unnamed file in /dev/shm, or
 * /dev/shm holds its temporary name), or finished it (name exists)? */
static int creation_seen(pid_t pid, const char *name)
{
    char tmp[64], dir[64], path[320], link[256];
    snprintf(tmp, sizeof tmp, "mproc-tmp-%d-", (int)pid);
    DIR *d = opendir("/dev/shm");
    int seen = 0;
    struct dirent *e;
    while (d != NULL && !seen && (e = readdir(d)) != NULL)
        seen = strncmp(e->d_name, tmp, strlen(tmp)) == 0 ||
               strcmp(e->d_name, name + 1) == 0;
    if (d != NULL)
        closedir(d);
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    d = opendir(dir);
    while (d != NULL && !seen && (e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = '\0';
        seen = strncmp(link, "/dev/shm/", 9) == 0;
    }
    if (d != NULL)
        closedir(d);
    return seen;
}

struct stale {
    char prefix[64];
    int n;
    char name[4][96];
};

static int on_stale(const mproc__region_info *info, void *arg)
{
    struct stale *st = arg;
    if (strncmp(info->name, st->prefix, strlen(st->prefix)) == 0 &&
        info->state == MPROC__REGION_UNFINISHED && st->n < 4)
        snprintf(st->name[st->n++], sizeof st->name[0], "%s", info->name);
    return 0;
}

/* A creator killed half way (during a slow create) leaves nothing under the
 * real name: openers get MPROC_ENOENT at once (not MPROC_EBADOBJ after a
 * wait), the name can be created again, and the temporary name it leaves
 * (without an unnamed file to build in) is listed as stale and removable
 * by mproc__region_unlink. */
static void creator_killed_half_way(bool tmp_name)
{
    char name[64];
    g_name = test_shm_name(name, sizeof name, "big");
    int caught = 0;
    for (int attempt = 0; attempt < 5 && !caught; attempt++) {
        pid_t p = spawn(child_create_big, tmp_name ? name : NULL);
        int64_t until = test_now_ms() + test_ms(5000);
        while (!creation_seen(p, name) && test_now_ms() < until)
            ;
        kill(p, SIGKILL);
        int st = test_wait_status(p);
        mproc_shm *m;
        if (st == 0) { /* finished before the kill: try again */
            ck_assert_int_eq(mproc_shm_unlink(name), 0);
            continue;
        }
        ck_assert_int_eq(st, 128 + SIGKILL);
        caught = 1;
        int64_t t0 = test_now_ms();
        ck_assert_int_eq(mproc_shm_open(&m, name, NULL), MPROC_ENOENT);
        ck_assert_int_lt(test_now_ms() - t0, test_ms(100));
        ck_assert_int_eq(mproc_shm_unlink(name), MPROC_ENOENT);
        ck_assert_int_eq(mproc_shm_create(&m, name, 16, NULL), 0);
        mproc_shm_close(m);
        ck_assert_int_eq(mproc_shm_unlink(name), 0);
        /* What it left, if anything, is a stale temporary name. */
        struct stale sl = {.n = 0};
        snprintf(sl.prefix, sizeof sl.prefix, "/mproc-tmp-%d-", (int)p);
        ck_assert_int_eq(mproc__region_list(on_stale, &sl), 0);
        if (!tmp_name)
            ck_assert_int_eq(sl.n, 0);
        for (int i = 0; i < sl.n; i++)
            ck_assert_int_eq(mproc__region_unlink(sl.name[i], MPROC__KIND_ANY),
                             0);
        ck_assert(!creation_seen(p, name));
    }
    if (!caught)
        test_skip("every create finished before the kill");
}

START_TEST(shm_creator_killed_half_way_leaves_no_name)
{
    creator_killed_half_way(false);
}
END_TEST

START_TEST(shm_creator_killed_half_way_leaves_a_stale_temporary_name)
{
    creator_killed_half_way(true);
}
END_TEST

/* Temporary names are the library's: a live creator's cannot be removed,
 * and a user cannot create one. */
START_TEST(region_temporary_names_are_reserved)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "/mproc-tmp-%d-999999", (int)getpid());
    int fd = shm_open(tmp, O_CREAT | O_EXCL | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(mproc__region_unlink(tmp, MPROC__KIND_ANY), MPROC_EBUSY);
    ck_assert_int_eq(shm_unlink(tmp), 0);
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, tmp, 16, NULL), MPROC_EINVAL);
}
END_TEST

START_TEST(region_create_failure_leaves_no_name)
{
    char name[64], path[128];
    test_shm_name(name, sizeof name, "huge");
    mproc_shm *m;
    /* Larger than any /dev/shm here: the reservation fails, and the name
     * made for it is removed again. */
    int rc = mproc_shm_create(&m, name, (size_t)1 << 50, NULL);
    ck_assert_int_lt(rc, 0);
    snprintf(path, sizeof path, "/dev/shm%s", name);
    ck_assert_int_eq(access(path, F_OK), -1);
}
END_TEST

/* ------------------------------------------------------- Value and Array */

START_TEST(value_gets_and_sets_every_type)
{
    static const mproc_type types[] = {MPROC_TYPE_INT8,  MPROC_TYPE_UINT8,
                                       MPROC_TYPE_INT16, MPROC_TYPE_UINT16,
                                       MPROC_TYPE_INT32, MPROC_TYPE_UINT32,
                                       MPROC_TYPE_INT64, MPROC_TYPE_UINT64,
                                       MPROC_TYPE_FLOAT, MPROC_TYPE_DOUBLE};
    static const size_t sizes[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        mproc_value *v;
        ck_assert_int_eq(mproc_value_create(&v, NULL, types[t], NULL), 0);
        ck_assert_int_eq(mproc_array_type(v), types[t]);
        ck_assert_uint_eq(mproc_array_elem_size(v), sizes[t]);
        ck_assert_uint_eq(mproc_array_count(v), 1);
        ck_assert_ptr_nonnull(mproc_value_get_lock(v));
        unsigned char in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8] = {0};
        ck_assert_int_eq(mproc_value_set(v, in, MPROC_FOREVER), 0);
        ck_assert_int_eq(mproc_value_get(v, out, MPROC_FOREVER), 0);
        ck_assert_int_eq(memcmp(in, out, sizes[t]), 0);
        mproc_value_close(v);
    }
    double d = 1.5, old = 0;
    mproc_value *v;
    ck_assert_int_eq(mproc_value_create(&v, NULL, MPROC_TYPE_DOUBLE, NULL), 0);
    ck_assert_int_eq(mproc_value_set(v, &d, MPROC_FOREVER), 0);
    d = 2.25;
    ck_assert_int_eq(mproc_value_add(v, &d, &old), 0);
    ck_assert(old == 1.5);
    ck_assert_int_eq(mproc_value_get(v, &d, MPROC_FOREVER), 0);
    ck_assert(d == 3.75);
    mproc_value_close(v);
}
END_TEST

/* Every typed call of family S, on element i of a (as an Array) and on
 * element 0 (as a Value): on an object of type K they work; on any other
 * they return MPROC_EINVAL and touch neither the elements nor the caller's
 * variables. */
#define CHECK_TYPED_FAMILY(S, T, K)                                            \
    static void check_typed_##S(mproc_array *a, size_t i)                      \
    {                                                                          \
        unsigned char before[64], after[64];                                   \
        size_t n = mproc_array_count(a) * mproc_array_elem_size(a);            \
        ck_assert_uint_le(n, sizeof before);                                   \
        memcpy(before, mproc_array_data(a), n);                                \
        T x = (T)42, old = (T)42, exp = (T)42;                                 \
        bool sw = true;                                                        \
        if (mproc_array_type(a) != K) {                                        \
            ck_assert_int_eq(mproc_array_get_##S(a, i, &x, 0), MPROC_EINVAL);  \
            ck_assert_int_eq(mproc_array_set_##S(a, i, (T)5, 0),               \
                             MPROC_EINVAL);                                    \
            ck_assert_int_eq(mproc_array_add_##S(a, i, (T)1, &old),            \
                             MPROC_EINVAL);                                    \
            ck_assert_int_eq(mproc_array_exchange_##S(a, i, (T)5, &old),       \
                             MPROC_EINVAL);                                    \
            ck_assert_int_eq(                                                  \
                mproc_array_compare_exchange_##S(a, i, &exp, (T)5, &sw),       \
                MPROC_EINVAL);                                                 \
            ck_assert_int_eq(mproc_array_get_##S(a, 99, &x, 0), MPROC_EINVAL); \
            ck_assert_int_eq(mproc_value_get_##S(a, &x, 0), MPROC_EINVAL);     \
            ck_assert_int_eq(mproc_value_set_##S(a, (T)5, 0), MPROC_EINVAL);   \
            ck_assert_int_eq(mproc_value_add_##S(a, (T)1, &old),               \
                             MPROC_EINVAL);                                    \
            ck_assert_int_eq(mproc_value_exchange_##S(a, (T)5, &old),          \
                             MPROC_EINVAL);                                    \
            ck_assert_int_eq(                                                  \
                mproc_value_compare_exchange_##S(a, &exp, (T)5, &sw),          \
                MPROC_EINVAL);                                                 \
            memcpy(after, mproc_array_data(a), n);                             \
            ck_assert_int_eq(memcmp(before, after, n), 0);                     \
            ck_assert(x == (T)42 && old == (T)42 && exp == (T)42 && sw);       \
            return;                                                            \
        }                                                                      \
        ck_assert_int_eq(mproc_array_set_##S(a, i, (T)5, 0), 0);               \
        ck_assert_int_eq(mproc_array_get_##S(a, i, &x, 0), 0);                 \
        ck_assert(x == (T)5);                                                  \
        ck_assert_int_eq(mproc_array_add_##S(a, i, (T)2, &old), 0);            \
        ck_assert(old == (T)5);                                                \
        ck_assert_int_eq(mproc_array_add_##S(a, i, (T)1, NULL), 0);            \
        ck_assert_int_eq(mproc_array_exchange_##S(a, i, (T)9, &old), 0);       \
        ck_assert(old == (T)8);                                                \
        exp = (T)1;                                                            \
        ck_assert_int_eq(                                                      \
            mproc_array_compare_exchange_##S(a, i, &exp, (T)4, &sw), 0);       \
        ck_assert(!sw && exp == (T)9);                                         \
        ck_assert_int_eq(                                                      \
            mproc_array_compare_exchange_##S(a, i, &exp, (T)4, &sw), 0);       \
        ck_assert(sw);                                                         \
        ck_assert_int_eq(mproc_array_get_##S(a, i, &x, 0), 0);                 \
        ck_assert(x == (T)4);                                                  \
        ck_assert_int_eq(mproc_array_get_##S(a, 99, &x, 0), MPROC_ERANGE);     \
        ck_assert_int_eq(mproc_value_set_##S(a, (T)7, 0), 0);                  \
        ck_assert_int_eq(mproc_value_add_##S(a, (T)3, &old), 0);               \
        ck_assert(old == (T)7);                                                \
        ck_assert_int_eq(mproc_value_exchange_##S(a, (T)6, &old), 0);          \
        ck_assert(old == (T)10);                                               \
        exp = (T)6;                                                            \
        ck_assert_int_eq(mproc_value_compare_exchange_##S(a, &exp, (T)2, &sw), \
                         0);                                                   \
        ck_assert(sw);                                                         \
        ck_assert_int_eq(mproc_value_get_##S(a, &x, 0), 0);                    \
        ck_assert(x == (T)2);                                                  \
        ck_assert_int_eq(mproc_value_get_##S(NULL, &x, 0), MPROC_EINVAL);      \
        ck_assert_int_eq(mproc_value_get_##S(a, NULL, 0), MPROC_EINVAL);       \
        ck_assert_int_eq(mproc_value_compare_exchange_##S(a, NULL, (T)2, &sw), \
                         MPROC_EINVAL);                                        \
    }
MPROC_NUMERIC_TYPES(CHECK_TYPED_FAMILY)

#define CALL_CHECK_TYPED(S, T, K) check_typed_##S(a, 2);

START_TEST(typed_calls_work_on_their_type_and_refuse_every_other)
{
    static const mproc_type types[] = {MPROC_TYPE_INT8,  MPROC_TYPE_UINT8,
                                       MPROC_TYPE_INT16, MPROC_TYPE_UINT16,
                                       MPROC_TYPE_INT32, MPROC_TYPE_UINT32,
                                       MPROC_TYPE_INT64, MPROC_TYPE_UINT64,
                                       MPROC_TYPE_FLOAT, MPROC_TYPE_DOUBLE};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        mproc_array *a;
        ck_assert_int_eq(mproc_array_create(&a, NULL, types[t], 3, NULL), 0);
        memset(mproc_array_data(a), 0xa5, 3 * mproc_array_elem_size(a));
        MPROC_NUMERIC_TYPES(CALL_CHECK_TYPED)
        mproc_array_close(a);
    }
    /* Bytes have no typed calls: every family refuses them. */
    mproc_array_opts o = MPROC_ARRAY_OPTS_INIT;
    o.bytes_size = 8;
    mproc_array *a;
    ck_assert_int_eq(mproc_array_create(&a, NULL, MPROC_TYPE_BYTES, 3, &o), 0);
    MPROC_NUMERIC_TYPES(CALL_CHECK_TYPED)
    mproc_array_close(a);
    /* What the untyped calls got wrong: an int given to a double or an
     * int64 Value is converted by the compiler, not reinterpreted. */
    int one = 1;
    double d;
    int64_t q;
    mproc_value *v;
    ck_assert_int_eq(mproc_value_create(&v, NULL, MPROC_TYPE_DOUBLE, NULL), 0);
    ck_assert_int_eq(mproc_value_add_double(v, one, NULL), 0);
    ck_assert_int_eq(mproc_value_get_double(v, &d, 0), 0);
    ck_assert(d == 1.0);
    mproc_value_close(v);
    ck_assert_int_eq(mproc_value_create(&v, NULL, MPROC_TYPE_INT64, NULL), 0);
    ck_assert_int_eq(mproc_value_add_int64(v, -one, NULL), 0);
    ck_assert_int_eq(mproc_value_get_int64(v, &q, 0), 0);
    ck_assert_int_eq(q, -1);
    mproc_value_close(v);
}
END_TEST

START_TEST(value_and_array_bad_input_is_rejected)
{
    mproc_array *a = NULL;
    mproc_array_opts o = MPROC_ARRAY_OPTS_INIT;
    ck_assert_int_eq(mproc_array_create(&a, NULL, MPROC_TYPE_INT32, 0, NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_create(&a, NULL, (mproc_type)99, 1, NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_create(&a, NULL, MPROC_TYPE_BYTES, 1, &o),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_create(NULL, NULL, MPROC_TYPE_INT32, 1, NULL),
                     MPROC_EINVAL);
    ck_assert_ptr_null(a);
    o.bytes_size = 16;
    ck_assert_int_eq(mproc_array_create(&a, NULL, MPROC_TYPE_BYTES, 3, &o), 0);
    char buf[48] = "0123456789abcdef";
    ck_assert_int_eq(mproc_array_set(a, 2, buf, MPROC_FOREVER), 0);
    char out[16];
    ck_assert_int_eq(mproc_array_get(a, 2, out, MPROC_FOREVER), 0);
    ck_assert_int_eq(memcmp(out, buf, 16), 0);
    int64_t one = 1;
    /* No atomic arithmetic on bytes. */
    ck_assert_int_eq(mproc_array_add(a, 0, &one, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_exchange(a, 0, &one, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_get(a, 3, out, MPROC_FOREVER), MPROC_ERANGE);
    ck_assert_int_eq(mproc_array_get_range(a, 1, 3, buf, MPROC_FOREVER),
                     MPROC_ERANGE);
    ck_assert_int_eq(mproc_array_get_range(a, 4, 0, buf, MPROC_FOREVER),
                     MPROC_ERANGE);
    ck_assert_int_eq(mproc_array_get_range(a, 3, 0, buf, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_array_get(a, 0, NULL, MPROC_FOREVER), MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_get(NULL, 0, out, MPROC_FOREVER),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_array_add(NULL, 0, &one, NULL), MPROC_EINVAL);
    ck_assert_ptr_null(mproc_array_get_lock(NULL));
    mproc_array_close(a);
    mproc_array_close(NULL);
}
END_TEST

START_TEST(array_ranges_and_atomics)
{
    mproc_array *a;
    mproc_array_opts o = MPROC_ARRAY_OPTS_INIT;
    o.lock = false;
    ck_assert_int_eq(mproc_array_create(&a, NULL, MPROC_TYPE_INT32, 10, &o), 0);
    ck_assert_ptr_null(mproc_array_get_lock(a));
    int32_t in[4] = {10, 20, 30, 40}, out[10];
    ck_assert_int_eq(mproc_array_set_range(a, 6, 4, in, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_array_get_range(a, 0, 10, out, MPROC_FOREVER), 0);
    ck_assert_int_eq(out[5], 0);
    ck_assert_int_eq(out[6], 10);
    ck_assert_int_eq(out[9], 40);
    ck_assert_int_eq(((int32_t *)mproc_array_data(a))[7], 20);
    int32_t d = -5, old;
    ck_assert_int_eq(mproc_array_add(a, 6, &d, &old), 0);
    ck_assert_int_eq(old, 10);
    int32_t x = 99;
    ck_assert_int_eq(mproc_array_exchange(a, 6, &x, &old), 0);
    ck_assert_int_eq(old, 5);
    int32_t expect = 1, want = 2;
    bool swapped = true;
    ck_assert_int_eq(
        mproc_array_compare_exchange(a, 6, &expect, &want, &swapped), 0);
    ck_assert(!swapped);
    ck_assert_int_eq(expect, 99);
    ck_assert_int_eq(
        mproc_array_compare_exchange(a, 6, &expect, &want, &swapped), 0);
    ck_assert(swapped);
    ck_assert_int_eq(mproc_array_get(a, 6, &x, MPROC_FOREVER), 0);
    ck_assert_int_eq(x, 2);
    ck_assert_int_eq(mproc_array_add(a, 10, &d, NULL), MPROC_ERANGE);
    ck_assert_int_eq(mproc_array_compare_exchange(a, 0, NULL, &want, &swapped),
                     MPROC_EINVAL);
    mproc_array_close(a);
}
END_TEST

static mproc_value *g_value;

#define ADDS 20000

static int child_atomic_add(void *arg)
{
    (void)arg;
    for (int i = 0; i < ADDS; i++)
        if (mproc_value_add_int64(g_value, 1, NULL) != 0)
            return 1;
    return 0;
}

static int child_locked_add(void *arg)
{
    (void)arg;
    mproc_lock *l = mproc_value_get_lock(g_value);
    for (int i = 0; i < ADDS; i++) {
        int64_t v;
        if (mproc_lock_acquire(l, MPROC_FOREVER) != 0)
            return 1;
        /* Nested get/set: the Value's lock is an RLock, as in Python. */
        if (mproc_value_get_int64(g_value, &v, MPROC_FOREVER) != 0)
            return 2;
        if (mproc_value_set_int64(g_value, v + 1, MPROC_FOREVER) != 0)
            return 3;
        if (mproc_lock_release(l) != 0)
            return 4;
    }
    return 0;
}

START_TEST(value_counts_exactly_from_four_processes)
{
    ck_assert_int_eq(mproc_value_create(&g_value, NULL, MPROC_TYPE_INT64, NULL),
                     0);
    pid_t p[4];
    int64_t v;
    for (int i = 0; i < 4; i++)
        p[i] = spawn(child_atomic_add, NULL);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(test_wait_status(p[i]), 0);
    ck_assert_int_eq(mproc_value_get_int64(g_value, &v, MPROC_FOREVER), 0);
    ck_assert_int_eq(v, 4 * ADDS);
    ck_assert_int_eq(mproc_value_set_int64(g_value, 0, MPROC_FOREVER), 0);
    for (int i = 0; i < 4; i++)
        p[i] = spawn(child_locked_add, NULL);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(test_wait_status(p[i]), 0);
    ck_assert_int_eq(mproc_value_get_int64(g_value, &v, MPROC_FOREVER), 0);
    ck_assert_int_eq(v, 4 * ADDS);
    mproc_value_close(g_value);
}
END_TEST

START_TEST(named_value_is_opened_by_name)
{
    char name[64];
    test_shm_name(name, sizeof name, "value");
    mproc_value *a, *b;
    ck_assert_int_eq(mproc_value_create(&a, name, MPROC_TYPE_UINT16, NULL), 0);
    ck_assert_int_eq(mproc_value_open(&b, name, NULL), 0);
    ck_assert_int_eq(mproc_array_type(b), MPROC_TYPE_UINT16);
    uint16_t x = 4242, y = 0;
    ck_assert_int_eq(mproc_value_set(a, &x, MPROC_FOREVER), 0);
    ck_assert_int_eq(mproc_value_get(b, &y, MPROC_FOREVER), 0);
    ck_assert_uint_eq(y, 4242);
    mproc_value_close(b);
    mproc_value_close(a);
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_open(&m, name, NULL), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_value_unlink(name), 0);
    ck_assert_int_eq(mproc_value_unlink(name), MPROC_ENOENT);
}
END_TEST

/* Dies holding the Value's lock, in the middle of what it was changing. */
static int child_hold_value_lock(void *arg)
{
    (void)arg;
    if (mproc_lock_acquire(mproc_value_get_lock(g_value), 0) != 0)
        return 1;
    mproc_value_set_int64(g_value, 1234, MPROC_FOREVER);
    kill(getpid(), SIGKILL);
    return 2;
}

static int child_get_reports_owner_death(void *arg)
{
    (void)arg;
    int64_t v = 0;
    int rc = mproc_value_get_int64(g_value, &v, test_ms(5000));
    return rc == MPROC_EOWNERDEAD && v == 1234 ? 0 : 1;
}

START_TEST(value_owner_death_is_reported_to_every_caller_until_consistent)
{
    ck_assert_int_eq(mproc_value_create(&g_value, NULL, MPROC_TYPE_INT64, NULL),
                     0);
    mproc_lock *l = mproc_value_get_lock(g_value);
    pid_t p = spawn(child_hold_value_lock, NULL);
    ck_assert_int_eq(test_wait_status(p), 128 + SIGKILL);
    int64_t v = 0;
    ck_assert_int_eq(mproc_value_get_int64(g_value, &v, MPROC_FOREVER),
                     MPROC_EOWNERDEAD);
    ck_assert_int_eq(v, 1234);
    /* Not only to the first caller, which might ignore it: to every later
     * get and set, in every process. */
    ck_assert_int_eq(mproc_value_get_int64(g_value, &v, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(
        test_wait_status(spawn(child_get_reports_owner_death, NULL)), 0);
    ck_assert_int_eq(mproc_value_set_int64(g_value, 99, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(mproc_value_get_int64(g_value, &v, 0), MPROC_EOWNERDEAD);
    ck_assert_int_eq(v, 99); /* the copies were made */
    /* The lock itself works on; only its holder may say "repaired". */
    ck_assert_int_eq(mproc_value_consistent(g_value), MPROC_ENOTOWNER);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0);
    ck_assert_int_eq(mproc_value_consistent(g_value), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(mproc_value_get_int64(g_value, &v, 0), 0);
    ck_assert_int_eq(mproc_value_set_int64(g_value, 5, 0), 0);
    ck_assert_int_eq(mproc_value_consistent(NULL), MPROC_EINVAL);
    mproc_value_close(g_value);
}
END_TEST

static mproc_array *g_array;

static int child_hold_array_lock(void *arg)
{
    (void)arg;
    if (mproc_lock_acquire(mproc_array_get_lock(g_array), 0) != 0)
        return 1;
    kill(getpid(), SIGKILL);
    return 2;
}

/* A caller that takes the array's lock itself and meets the death repairs
 * with mproc_array_consistent, which marks the lock consistent too, so the
 * release leaves it working; an array without a lock has nothing to mark. */
START_TEST(array_consistent_also_repairs_a_lock_taken_owner_dead)
{
    ck_assert_int_eq(
        mproc_array_create(&g_array, NULL, MPROC_TYPE_UINT32, 4, NULL), 0);
    mproc_lock *l = mproc_array_get_lock(g_array);
    ck_assert_int_eq(test_wait_status(spawn(child_hold_array_lock, NULL)),
                     128 + SIGKILL);
    ck_assert_int_eq(mproc_lock_acquire(l, test_ms(5000)), MPROC_EOWNERDEAD);
    uint32_t in[4] = {1, 2, 3, 4}, out[4];
    ck_assert_int_eq(mproc_array_set_range(g_array, 0, 4, in, 0), 0);
    ck_assert_int_eq(mproc_array_consistent(g_array), 0);
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(mproc_lock_acquire(l, 0), 0); /* not unrecoverable */
    ck_assert_int_eq(mproc_lock_release(l), 0);
    ck_assert_int_eq(mproc_array_get_range(g_array, 0, 4, out, 0), 0);
    ck_assert_int_eq(memcmp(in, out, sizeof in), 0);
    mproc_array_close(g_array);
    mproc_array_opts o = MPROC_ARRAY_OPTS_INIT;
    o.lock = false;
    ck_assert_int_eq(
        mproc_array_create(&g_array, NULL, MPROC_TYPE_UINT32, 4, &o), 0);
    ck_assert_int_eq(mproc_array_consistent(g_array), MPROC_EINVAL);
    mproc_array_close(g_array);
}
END_TEST

static _Atomic int *g_held;

static int child_hold_value_lock_a_while(void *arg)
{
    (void)arg;
    if (mproc_lock_acquire(mproc_value_get_lock(g_value), 0) != 0)
        return 1;
    atomic_store(g_held, 1);
    while (atomic_load(g_held) != 2)
        usleep(1000);
    return mproc_lock_release(mproc_value_get_lock(g_value)) == 0 ? 0 : 2;
}

/* get/set of a locked Value wait for its lock at most timeout_ms. */
START_TEST(value_get_and_set_time_out_while_its_lock_is_held)
{
    g_held = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(g_held, MAP_FAILED);
    ck_assert_int_eq(mproc_value_create(&g_value, NULL, MPROC_TYPE_INT64, NULL),
                     0);
    pid_t p = spawn(child_hold_value_lock_a_while, NULL);
    int64_t until = test_now_ms() + test_ms(5000);
    while (atomic_load(g_held) != 1 && test_now_ms() < until)
        usleep(1000);
    ck_assert_int_eq(atomic_load(g_held), 1);
    int64_t v = 5;
    ck_assert_int_eq(mproc_value_set(g_value, &v, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_value_get(g_value, &v, 100), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 95);
    ck_assert_int_eq(v, 5); /* nothing copied */
    ck_assert_int_eq(mproc_value_get(g_value, &v, -2), MPROC_EINVAL);
    int64_t buf[1];
    ck_assert_int_eq(mproc_array_get_range(g_value, 0, 1, buf, 0),
                     MPROC_ETIMEDOUT);
    atomic_store(g_held, 2);
    ck_assert_int_eq(mproc_value_set(g_value, &v, test_ms(5000)), 0);
    ck_assert_int_eq(test_wait_status(p), 0);
    ck_assert_int_eq(mproc_value_get(g_value, &v, 0), 0);
    ck_assert_int_eq(v, 5);
    mproc_value_close(g_value);
    munmap(g_held, 4096);
}
END_TEST

/* A named Array whose shared descriptor is rewritten after open (corrupted
 * or malicious) keeps the shape it was opened with: nothing read from
 * shared memory indexes memory. Layout (docs/shared-memory.md): type at 0,
 * count at 8, elem_size at 16. */
START_TEST(array_descriptor_rewritten_after_open_changes_nothing)
{
    char name[64];
    test_shm_name(name, sizeof name, "array");
    mproc_array *a, *b;
    ck_assert_int_eq(mproc_array_create(&a, name, MPROC_TYPE_INT32, 4, NULL),
                     0);
    ck_assert_int_eq(mproc_array_open(&b, name, NULL), 0);
    mproc__region r;
    ck_assert_int_eq(mproc__region_open(&r, name, MPROC__KIND_ANY, NULL), 0);
    char *d = r.payload;
    uint32_t bytes = MPROC_TYPE_BYTES;
    uint64_t huge = (uint64_t)1 << 40, big = 65536;
    memcpy(d, &bytes, 4);
    memcpy(d + 8, &huge, 8);
    memcpy(d + 16, &big, 8);
    int32_t v = 7;
    char buf[65536];
    for (int k = 0; k < 2; k++) {
        mproc_array *x = k == 0 ? a : b;
        ck_assert_uint_eq(mproc_array_count(x), 4);
        ck_assert_uint_eq(mproc_array_elem_size(x), 4);
        ck_assert_int_eq(mproc_array_type(x), MPROC_TYPE_INT32);
        ck_assert_int_eq(mproc_array_get(x, 1000000, buf, 0), MPROC_ERANGE);
        ck_assert_int_eq(mproc_array_set(x, 4, &v, 0), MPROC_ERANGE);
        ck_assert_int_eq(mproc_array_set(x, 3, &v, 0), 0);
        ck_assert_int_eq(mproc_array_add(x, 3, &v, NULL), 0);
    }
    int32_t got = 0;
    ck_assert_int_eq(mproc_array_get(a, 3, &got, 0), 0);
    ck_assert_int_eq(got, 14);
    mproc__region_close(&r);
    mproc_array_close(b);
    mproc_array_close(a);
    ck_assert_int_eq(mproc_array_unlink(name), 0);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("shm");
    TEST_ADD(s, shm_named_block_is_attached_by_name);
    TEST_ADD(s, shm_anonymous_block_is_shared_with_forked_child);
    TEST_ADD(s, shm_create_refuses_an_existing_name);
    TEST_ADD(s, shm_bad_input_is_rejected);
    TEST_ADD(s, shm_named_block_has_mode_0600);
    TEST_ADD(s, shm_open_refuses_another_kind);
    TEST_ADD(s, shm_open_refuses_a_foreign_file);
    TEST_ADD(s, shm_open_gives_up_on_an_unfinished_object);
    TEST_ADD(s, shm_open_waits_for_a_creator_finishing);
    TEST_ADD(s, shm_open_refuses_another_version);
    TEST_ADD(s, shm_open_refuses_a_truncated_object);
    TEST_ADD(s, region_list_finds_forgotten_mproc_names);
    TEST_ADD(s, region_create_failure_leaves_no_name);
    TEST_ADD(s, shm_creator_killed_half_way_leaves_no_name);
    TEST_ADD(s, shm_creator_killed_half_way_leaves_a_stale_temporary_name);
    TEST_ADD(s, region_temporary_names_are_reserved);
    TEST_ADD(s, value_gets_and_sets_every_type);
    TEST_ADD(s, value_and_array_bad_input_is_rejected);
    TEST_ADD(s, typed_calls_work_on_their_type_and_refuse_every_other);
    TEST_ADD(s, array_ranges_and_atomics);
    TEST_ADD(s, value_counts_exactly_from_four_processes);
    TEST_ADD(s, named_value_is_opened_by_name);
    TEST_ADD(s, value_owner_death_is_reported_to_every_caller_until_consistent);
    TEST_ADD(s, array_consistent_also_repairs_a_lock_taken_owner_dead);
    TEST_ADD(s, array_descriptor_rewritten_after_open_changes_nothing);
    TEST_ADD(s, value_get_and_set_time_out_while_its_lock_is_held);
    return s;
}
