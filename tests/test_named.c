/* Named objects of every kind against hostile users and names: whose files
 * open accepts, modes create refuses, names planted in /dev/shm, damaged
 * objects, what the list tells about creators, and generated names. The
 * "other user" is a forked child that drops to uid/gid 65534 (needs root;
 * skipped otherwise). Forked helpers only _exit. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/region.h"
#include "mproc.h"
#include "testlib.h"

#define NOBODY TEST_NOBODY
/* The exit code of a child that could not become NOBODY. */
#define CANNOT_DROP 99

/* ------------------------------------------------- every kind, one table */

/* One named kind behind a common shape, so every test covers them all. */
typedef struct kind_ops {
    const char *what;
    int (*create)(void **out, const char *name, unsigned mode);
    int (*open)(void **out, const char *name, const mproc_access *access);
    void (*close)(void *h);
    int (*unlink)(const char *name);
    const char *(*name)(void *h);
} kind_ops;

/* mproc_<obj>'s handle calls behind that shape: <obj>_open_ (opening with
 * the call OPEN on opts `o` that carry the access asked for), <obj>_close_
 * and <obj>_name_. */
#define HANDLE_OPS(obj, INIT, OPEN)                                            \
    static int obj##_open_(void **out, const char *name,                       \
                           const mproc_access *a)                              \
    {                                                                          \
        mproc_##obj##_opts o = INIT;                                           \
        o.access = *a;                                                         \
        return OPEN;                                                           \
    }                                                                          \
    static void obj##_close_(void *h)                                          \
    {                                                                          \
        mproc_##obj##_close(h);                                                \
    }                                                                          \
    static const char *obj##_name_(void *h)                                    \
    {                                                                          \
        return mproc_##obj##_name(h);                                          \
    }

/* A create call fn(out, name, mode) that makes an mproc_<obj> with the
 * call CREATE on opts `o` that carry the mode. */
#define CREATE_OP(fn, obj, INIT, CREATE)                                       \
    static int fn(void **out, const char *name, unsigned mode)                 \
    {                                                                          \
        mproc_##obj##_opts o = INIT;                                           \
        o.mode = mode;                                                         \
        return CREATE;                                                         \
    }

HANDLE_OPS(shm, MPROC_SHM_OPTS_INIT,
           mproc_shm_open((mproc_shm **)out, name, &o))
CREATE_OP(shm_create_, shm, MPROC_SHM_OPTS_INIT,
          mproc_shm_create((mproc_shm **)out, name, 100, &o))
HANDLE_OPS(array, MPROC_ARRAY_OPTS_INIT,
           mproc_array_open((mproc_array **)out, name, &o))
CREATE_OP(array_create_, array, MPROC_ARRAY_OPTS_INIT,
          mproc_array_create((mproc_array **)out, name, MPROC_TYPE_INT32, 8,
                             &o))
HANDLE_OPS(value, MPROC_VALUE_OPTS_INIT,
           mproc_value_open((mproc_value **)out, name, &o))
CREATE_OP(value_create_, value, MPROC_VALUE_OPTS_INIT,
          mproc_value_create((mproc_value **)out, name, MPROC_TYPE_INT64, &o))
HANDLE_OPS(lock, MPROC_LOCK_OPTS_INIT,
           mproc_lock_open((mproc_lock **)out, name, &o))
CREATE_OP(lock_create_, lock, MPROC_LOCK_OPTS_INIT,
          mproc_lock_create((mproc_lock **)out, name, &o))
CREATE_OP(rlock_create_, lock, MPROC_LOCK_OPTS_INIT,
          (o.recursive = true, mproc_lock_create((mproc_lock **)out, name, &o)))
HANDLE_OPS(semaphore, MPROC_SEMAPHORE_OPTS_INIT,
           mproc_semaphore_open((mproc_semaphore **)out, name, &o))
CREATE_OP(semaphore_create_, semaphore, MPROC_SEMAPHORE_OPTS_INIT,
          mproc_semaphore_create((mproc_semaphore **)out, name, 1, &o))
CREATE_OP(bsemaphore_create_, semaphore, MPROC_SEMAPHORE_OPTS_INIT,
          (o.bounded = true,
           mproc_semaphore_create((mproc_semaphore **)out, name, 1, &o)))
HANDLE_OPS(event, MPROC_EVENT_OPTS_INIT,
           mproc_event_open((mproc_event **)out, name, &o))
CREATE_OP(event_create_, event, MPROC_EVENT_OPTS_INIT,
          mproc_event_create((mproc_event **)out, name, &o))
HANDLE_OPS(condition, MPROC_CONDITION_OPTS_INIT,
           mproc_condition_open((mproc_condition **)out, name, NULL, &o))
CREATE_OP(condition_create_, condition, MPROC_CONDITION_OPTS_INIT,
          mproc_condition_create((mproc_condition **)out, name, NULL, &o))
HANDLE_OPS(barrier, MPROC_BARRIER_OPTS_INIT,
           mproc_barrier_open((mproc_barrier **)out, name, &o))
CREATE_OP(barrier_create_, barrier, MPROC_BARRIER_OPTS_INIT,
          mproc_barrier_create((mproc_barrier **)out, name, 2, &o))

HANDLE_OPS(queue, MPROC_QUEUE_OPTS_INIT,
           mproc_queue_open((mproc_queue **)out, name, &o))
CREATE_OP(queue_create_, queue, MPROC_QUEUE_OPTS_INIT,
          (o.capacity = 4096,
           mproc_queue_create((mproc_queue **)out, name, &o)))
CREATE_OP(jqueue_create_, queue, MPROC_QUEUE_OPTS_INIT,
          (o.capacity = 4096, o.joinable = true,
           mproc_queue_create((mproc_queue **)out, name, &o)))

#define KIND(what, create, obj)                                                \
    {                                                                          \
        what, create, obj##_open_, obj##_close_, mproc_##obj##_unlink,         \
            obj##_name_                                                        \
    }

static const kind_ops kinds[] = {
    KIND("shm", shm_create_, shm),
    KIND("array", array_create_, array),
    KIND("value", value_create_, value),
    KIND("lock", lock_create_, lock),
    KIND("rlock", rlock_create_, lock),
    KIND("sem", semaphore_create_, semaphore),
    KIND("bsem", bsemaphore_create_, semaphore),
    KIND("event", event_create_, event),
    KIND("cond", condition_create_, condition),
    KIND("barrier", barrier_create_, barrier),
    KIND("queue", queue_create_, queue),
    KIND("jqueue", jqueue_create_, queue),
};
#define N_KINDS (sizeof kinds / sizeof kinds[0])

static const mproc_access no_access = MPROC_ACCESS_INIT;

/* The test name of kind k with a suffix: "/mproc-t<pid>-<what>-<kind>". */
static const char *kind_name(char *buf, size_t n, size_t k, const char *what)
{
    char w[64];
    snprintf(w, sizeof w, "%s-%s", what, kinds[k].what);
    return test_shm_name(buf, n, w);
}

/* Opens kind k's name with access and closes it again: open's result. */
static int try_open(size_t k, const char *name, const mproc_access *a)
{
    void *h = NULL;
    int rc = kinds[k].open(&h, name, a);
    if (rc == 0)
        kinds[k].close(h);
    return rc;
}

/* Creates kind k's object under name with mode and closes the handle,
 * leaving the name. */
static void make(size_t k, const char *name, unsigned mode)
{
    void *h;
    ck_assert_msg(kinds[k].create(&h, name, mode) == 0, "%s %s %o",
                  kinds[k].what, name, mode);
    kinds[k].close(h);
}

/* ------------------------------------------------------------ other users */

/* Starts fn(arg) in a child as uid and gid NOBODY (the child exits with
 * CANNOT_DROP when it cannot become that user); returns its pid. */
static pid_t start_as_nobody(int (*fn)(void *), void *arg)
{
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        if (!test_become_nobody())
            _exit(CANNOT_DROP);
        _exit(fn(arg));
    }
    return p;
}

/* Runs fn(arg) as NOBODY: its exit code, or CANNOT_DROP. */
static int as_nobody(int (*fn)(void *), void *arg)
{
    return test_wait_status(start_as_nobody(fn, arg));
}

/* True when this process can play another user; else the case is skipped. */
static int can_be_nobody(void)
{
    if (geteuid() != 0) {
        test_skip("needs root to act as another user");
        return 0;
    }
    return 1;
}

static char g_what[32];
static unsigned g_mode;

/* Child: creates one object of every kind, named after g_what, with
 * g_mode, and leaves them for the parent. */
static int child_create_all(void *arg)
{
    (void)arg;
    char name[96];
    for (size_t k = 0; k < N_KINDS; k++) {
        void *h;
        if (kinds[k].create(&h, kind_name(name, sizeof name, k, g_what),
                            g_mode) != 0)
            return 10 + (int)k;
        kinds[k].close(h);
    }
    return 0;
}

static void unlink_all(const char *what)
{
    char name[96];
    for (size_t k = 0; k < N_KINDS; k++)
        ck_assert_int_eq(kinds[k].unlink(kind_name(name, sizeof name, k, what)),
                         0);
}

/* Another user's objects (mode 0600, which root can open anyway) are
 * refused by default, also to root, and accepted once their owner or their
 * group is listed. */
START_TEST(named_open_refuses_another_users_objects)
{
    if (!can_be_nobody())
        return;
    snprintf(g_what, sizeof g_what, "other");
    g_mode = 0;
    int st = as_nobody(child_create_all, NULL);
    if (st == CANNOT_DROP) {
        test_skip("cannot switch to uid 65534 here");
        return;
    }
    ck_assert_int_eq(st, 0);
    uid_t uid = NOBODY, other_uid = 12345;
    gid_t gid = NOBODY, other_gid = 12345;
    mproc_access by_uid = {&uid, 1, NULL, 0, false};
    mproc_access by_gid = {NULL, 0, &gid, 1, false};
    mproc_access others = {&other_uid, 1, &other_gid, 1, false};
    mproc_access bad = {NULL, 1, NULL, 0, false};
    char name[96];
    for (size_t k = 0; k < N_KINDS; k++) {
        kind_name(name, sizeof name, k, "other");
        ck_assert_msg(try_open(k, name, &no_access) == MPROC_EDENIED, "%s",
                      kinds[k].what);
        ck_assert_int_eq(try_open(k, name, &others), MPROC_EDENIED);
        ck_assert_int_eq(try_open(k, name, &bad), MPROC_EINVAL);
        ck_assert_msg(try_open(k, name, &by_uid) == 0, "%s", kinds[k].what);
        ck_assert_int_eq(try_open(k, name, &by_gid), 0);
    }
    unlink_all("other");
}
END_TEST

/* The bug this guards against: a root process opened a lock and a value
 * that an unprivileged user had made with mode 0666; the user truncated
 * the file and the root process died of SIGBUS at its next access. Now the
 * open is refused, so there is no mapping to fault. */
static int child_make_and_truncate(void *arg)
{
    int *fds = arg; /* [0]: read "truncate now"; [1]: write "made" */
    char lname[96], vname[96], c = 0;
    mproc_lock_opts lo = MPROC_LOCK_OPTS_INIT;
    mproc_value_opts vo = MPROC_VALUE_OPTS_INIT;
    lo.mode = vo.mode = 0666;
    mproc_lock *l;
    mproc_value *v;
    if (mproc_lock_create(&l, test_shm_name(lname, sizeof lname, "victim-l"),
                          &lo) != 0 ||
        mproc_value_create(&v, test_shm_name(vname, sizeof vname, "victim-v"),
                           MPROC_TYPE_INT64, &vo) != 0)
        return 1;
    if (write(fds[1], &c, 1) != 1 || read(fds[0], &c, 1) != 1)
        return 2;
    int fl = shm_open(lname, O_RDWR, 0), fv = shm_open(vname, O_RDWR, 0);
    if (fl < 0 || fv < 0 || ftruncate(fl, 0) != 0 || ftruncate(fv, 0) != 0)
        return 3;
    close(fl);
    close(fv);
    mproc_lock_close(l);
    mproc_value_close(v);
    return 0;
}

START_TEST(named_root_survives_another_user_truncating_its_objects)
{
    if (!can_be_nobody())
        return;
    int go[2], made[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(made), 0);
    int fds[2] = {go[0], made[1]};
    pid_t p = start_as_nobody(child_make_and_truncate, fds);
    char c;
    if (read(made[0], &c, 1) != 1) {
        int st = test_wait_status(p);
        if (st == CANNOT_DROP) {
            test_skip("cannot switch to uid 65534 here");
            return;
        }
        ck_abort_msg("the other user's child failed: %d", st);
    }
    char lname[96], vname[96];
    test_shm_name(lname, sizeof lname, "victim-l");
    test_shm_name(vname, sizeof vname, "victim-v");
    mproc_lock *l = NULL;
    mproc_value *v = NULL;
    int rl = mproc_lock_open(&l, lname, NULL);
    int rv = mproc_value_open(&v, vname, NULL);
    ck_assert_int_eq(write(go[1], "t", 1), 1);
    ck_assert_int_eq(test_wait_status(p), 0);
    /* Had either opened, these would now die of SIGBUS. */
    if (rl == 0)
        mproc_lock_acquire(l, 0);
    int64_t x = 0;
    if (rv == 0)
        mproc_value_get(v, &x, 0);
    ck_assert_int_eq(rl, MPROC_EDENIED);
    ck_assert_int_eq(rv, MPROC_EDENIED);
    /* Truncated below the header: nothing says it is mproc's any more. */
    ck_assert_int_eq(mproc_lock_unlink(lname), MPROC_EBADOBJ);
    ck_assert_int_eq(shm_unlink(lname), 0);
    ck_assert_int_eq(shm_unlink(vname), 0);
    close(go[0]);
    close(go[1]);
    close(made[0]);
    close(made[1]);
}
END_TEST

/* Open refuses a file that group or others may write, even the caller's
 * own, unless told shared_write; create makes such a mode as asked. */
START_TEST(named_open_refuses_group_or_other_writable_objects)
{
    static const unsigned modes[] = {0620, 0602, 0666};
    mproc_access shared = MPROC_ACCESS_INIT;
    shared.shared_write = true;
    char name[96], path[128];
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        for (size_t k = 0; k < N_KINDS; k++) {
            kind_name(name, sizeof name, k, "wide");
            make(k, name, modes[m]);
            struct stat st;
            snprintf(path, sizeof path, "/dev/shm%s", name);
            ck_assert_int_eq(stat(path, &st), 0);
            ck_assert_uint_eq(st.st_mode & 07777, modes[m]);
            ck_assert_msg(try_open(k, name, &no_access) == MPROC_EDENIED,
                          "%s %o", kinds[k].what, modes[m]);
            ck_assert_int_eq(try_open(k, name, &shared), 0);
            ck_assert_int_eq(kinds[k].unlink(name), 0);
        }
    /* Read for others is no risk to an opener. */
    kind_name(name, sizeof name, 0, "readable");
    make(0, name, 0644);
    ck_assert_int_eq(try_open(0, name, &no_access), 0);
    ck_assert_int_eq(kinds[0].unlink(name), 0);
}
END_TEST

/* lock_create with mode 04755 made a setuid file in /dev/shm: every create
 * refuses bits above 0777, leaving no name, and open refuses such a file. */
START_TEST(named_create_refuses_mode_bits_above_0777)
{
    static const unsigned modes[] = {04755, 02700, 01600, 010000};
    char name[96], path[128];
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        for (size_t k = 0; k < N_KINDS; k++) {
            kind_name(name, sizeof name, k, "suid");
            void *h = NULL;
            ck_assert_msg(kinds[k].create(&h, name, modes[m]) == MPROC_EINVAL,
                          "%s %o", kinds[k].what, modes[m]);
            snprintf(path, sizeof path, "/dev/shm%s", name);
            ck_assert_int_eq(access(path, F_OK), -1);
        }
    for (size_t k = 0; k < N_KINDS; k++) {
        kind_name(name, sizeof name, k, "suid");
        make(k, name, 0600);
        snprintf(path, sizeof path, "/dev/shm%s", name);
        ck_assert_int_eq(chmod(path, 04600), 0);
        ck_assert_int_eq(try_open(k, name, &no_access), MPROC_EDENIED);
        ck_assert_int_eq(kinds[k].unlink(name), 0);
    }
}
END_TEST

/* -------------------------------------------------------- hostile names */

static char g_plant[64];

/* Child: plants the temporary names "<g_plant><n>" for n in 0..63. */
static int child_plant(void *arg)
{
    (void)arg;
    char name[96];
    for (int n = 0; n < 64; n++) {
        snprintf(name, sizeof name, "%s%d", g_plant, n);
        int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        if (fd < 0)
            return 1;
        close(fd);
    }
    return 0;
}

static void unplant(void)
{
    char name[96];
    for (int n = 0; n < 64; n++) {
        snprintf(name, sizeof name, "%s%d", g_plant, n);
        shm_unlink(name);
    }
}

/* Creation built under "/mproc-tmp-<pid>-<n>" and gave up after 16 tries:
 * another user who planted those names made create report MPROC_EEXIST for
 * a name that did not exist. */
START_TEST(named_create_ignores_squatted_temporary_names)
{
    snprintf(g_plant, sizeof g_plant, MPROC__REGION_TMP_PREFIX "%d-",
             (int)getpid());
    int st = geteuid() == 0 ? as_nobody(child_plant, NULL) : -1;
    if (st != 0)
        st = child_plant(NULL); /* not root: plant them ourselves */
    int rc[2][N_KINDS];
    char name[96];
    for (int fallback = 0; fallback < 2; fallback++) {
        mproc__region_test_no_tmpfile(fallback != 0);
        for (size_t k = 0; k < N_KINDS; k++) {
            void *h;
            rc[fallback][k] = kinds[k].create(
                &h, kind_name(name, sizeof name, k, "squat"), 0);
            if (rc[fallback][k] == 0) {
                kinds[k].close(h);
                kinds[k].unlink(name);
            }
        }
    }
    mproc__region_test_no_tmpfile(false);
    unplant();
    ck_assert_int_eq(st, 0);
    for (int fallback = 0; fallback < 2; fallback++)
        for (size_t k = 0; k < N_KINDS; k++)
            ck_assert_msg(rc[fallback][k] == 0, "%s%s: %s", kinds[k].what,
                          fallback ? " (temporary name)" : "",
                          mproc_errname(rc[fallback][k]));
}
END_TEST

/* "/." and "/.." name /dev/shm and its parent: invalid names everywhere. */
START_TEST(named_dot_names_are_invalid)
{
    static const char *const dots[] = {"/.", "/.."};
    for (size_t d = 0; d < 2; d++)
        for (size_t k = 0; k < N_KINDS; k++) {
            void *h = NULL;
            ck_assert_msg(kinds[k].create(&h, dots[d], 0) == MPROC_EINVAL,
                          "%s %s", kinds[k].what, dots[d]);
            ck_assert_int_eq(try_open(k, dots[d], &no_access), MPROC_EINVAL);
            ck_assert_int_eq(kinds[k].unlink(dots[d]), MPROC_EINVAL);
        }
}
END_TEST

/* A symlink, a directory or a FIFO planted under a name is not an object:
 * open and unlink say MPROC_EBADOBJ (quickly, never following, waiting or
 * removing), create says the name exists. */
START_TEST(named_planted_symlink_directory_or_fifo_is_not_an_object)
{
    char target[96], name[96], path[128], tpath[128];
    test_shm_name(target, sizeof target, "target");
    mproc_lock *real;
    ck_assert_int_eq(mproc_lock_create(&real, target, NULL), 0);
    snprintf(tpath, sizeof tpath, "/dev/shm%s", target);
    for (int what = 0; what < 3; what++) {
        test_shm_name(name, sizeof name, "planted");
        snprintf(path, sizeof path, "/dev/shm%s", name);
        if (what == 0)
            ck_assert_int_eq(symlink(tpath, path), 0);
        else if (what == 1)
            ck_assert_int_eq(mkdir(path, 0700), 0);
        else
            ck_assert_int_eq(mkfifo(path, 0600), 0);
        for (size_t k = 0; k < N_KINDS; k++) {
            int64_t t0 = test_now_ms();
            ck_assert_msg(try_open(k, name, &no_access) == MPROC_EBADOBJ,
                          "%s %d", kinds[k].what, what);
            ck_assert_int_lt(test_now_ms() - t0, test_ms(2000));
            ck_assert_int_eq(kinds[k].unlink(name), MPROC_EBADOBJ);
            void *h = NULL;
            ck_assert_int_eq(kinds[k].create(&h, name, 0), MPROC_EEXIST);
        }
        struct stat st;
        ck_assert_int_eq(lstat(path, &st), 0); /* still there */
        ck_assert_int_eq(what == 1 ? rmdir(path) : unlink(path), 0);
    }
    /* The symlink's target was neither opened through it nor removed. */
    mproc_lock_close(real);
    ck_assert_int_eq(mproc_lock_unlink(target), 0);
}
END_TEST

/* The header of a shm block, as another process sees it in the file. */
static mproc__region_hdr *header_of(mproc_shm *m)
{
    return (mproc__region_hdr *)((char *)mproc_shm_addr(m) - MPROC__REGION_HDR);
}

struct seen {
    const char *name;
    int n;
    mproc__region_info info;
};

static int on_region(const mproc__region_info *info, void *arg)
{
    struct seen *s = arg;
    if (strcmp(info->name, s->name) == 0) {
        s->n++;
        s->info = *info;
        s->info.name = NULL;
    }
    return 0;
}

static struct seen listed(const char *name)
{
    struct seen s = {name, 0, {0}};
    ck_assert_int_eq(mproc__region_list(on_region, &s), 0);
    return s;
}

/* A truncated object could not be removed by its unlink and the list did
 * not show it: it is listed as damaged, and its own unlink removes it. */
START_TEST(named_truncated_object_is_listed_damaged_and_unlinked)
{
    char name[96];
    for (size_t k = 0; k < N_KINDS; k++) {
        kind_name(name, sizeof name, k, "trunc");
        make(k, name, 0);
        int fd = shm_open(name, O_RDWR, 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, MPROC__REGION_HDR + 4), 0);
        close(fd);
        struct seen s = listed(name);
        ck_assert_int_eq(s.n, 1);
        ck_assert_int_eq(s.info.state, MPROC__REGION_DAMAGED);
        ck_assert_uint_eq(s.info.file_size, MPROC__REGION_HDR + 4);
        ck_assert_msg(try_open(k, name, &no_access) == MPROC_EBADOBJ, "%s",
                      kinds[k].what);
        ck_assert_msg(kinds[k].unlink(name) == 0, "%s", kinds[k].what);
    }
    /* Of the header only the magic is left: the tool's unlink (any kind)
     * still knows it, a kind's unlink cannot tell the kind. */
    kind_name(name, sizeof name, 0, "trunc");
    make(0, name, 0);
    int fd = shm_open(name, O_RDWR, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 12), 0);
    close(fd);
    ck_assert_int_eq(listed(name).info.state, MPROC__REGION_DAMAGED);
    ck_assert_int_eq(mproc_shm_unlink(name), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc__region_unlink(name, MPROC__KIND_ANY), 0);
}
END_TEST

/* ------------------------------------------------------- creators listed */

static int child_create_and_exit(void *arg)
{
    mproc_event *e;
    return mproc_event_create(&e, arg, NULL) == 0 ? 0 : 1;
}

/* The list tells each object's creator and whether it still runs, so the
 * orphans of a crashed program stand out; an object made before creators
 * were recorded shows an unknown creator. */
START_TEST(named_list_shows_creator_and_whether_it_lives)
{
    char mine[96], orphan[96], old[96];
    test_shm_name(mine, sizeof mine, "mine");
    test_shm_name(orphan, sizeof orphan, "orphan");
    test_shm_name(old, sizeof old, "old");
    mproc_lock *l;
    ck_assert_int_eq(mproc_lock_create(&l, mine, NULL), 0);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0)
        _exit(child_create_and_exit(orphan));
    ck_assert_int_eq(test_wait_status(p), 0);
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, old, 10, NULL), 0);
    mproc__region_hdr *h = header_of(m);
    h->creator_pid = 0; /* as an older creator left it */
    h->creator_start = 0;

    struct seen s = listed(mine);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.info.state, MPROC__REGION_OK);
    ck_assert_int_eq(s.info.kind, MPROC__KIND_LOCK);
    ck_assert_int_eq(s.info.creator, getpid());
    ck_assert_int_eq(s.info.creator_alive, 1);
    ck_assert_uint_eq(s.info.owner, geteuid());
    s = listed(orphan);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.info.creator, p);
    ck_assert_int_eq(s.info.creator_alive, 0);
    s = listed(old);
    ck_assert_int_eq(s.n, 1);
    ck_assert_int_eq(s.info.creator, 0);
    ck_assert_int_eq(s.info.creator_alive, -1);
    ck_assert_int_eq(s.info.state, MPROC__REGION_OK);

    mproc_lock_close(l);
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_lock_unlink(mine), 0);
    ck_assert_int_eq(mproc_event_unlink(orphan), 0);
    ck_assert_int_eq(mproc_shm_unlink(old), 0);
}
END_TEST

/* A pid the kernel gave again to another process is not the creator: the
 * start time recorded beside it tells them apart. */
START_TEST(named_list_tells_a_reused_pid_from_the_creator)
{
    char name[96];
    test_shm_name(name, sizeof name, "reused");
    mproc_shm *m;
    ck_assert_int_eq(mproc_shm_create(&m, name, 10, NULL), 0);
    mproc__region_hdr *h = header_of(m);
    ck_assert_uint_ne(h->creator_start, 0);
    h->creator_start += 1; /* our pid, another start: a reused pid */
    struct seen s = listed(name);
    ck_assert_int_eq(s.info.creator, getpid());
    ck_assert_int_eq(s.info.creator_alive, 0);
    mproc_shm_close(m);
    ck_assert_int_eq(mproc_shm_unlink(name), 0);
}
END_TEST

/* ------------------------------------------------------- generated names */

/* A create name ending in XXXXXX is a template: two creates from one make
 * two objects with two names, each openable and unlinkable by its name. */
START_TEST(named_template_makes_distinct_openable_names)
{
    char tmpl[96];
    for (int fallback = 0; fallback < 2; fallback++) {
        mproc__region_test_no_tmpfile(fallback != 0);
        for (size_t k = 0; k < N_KINDS; k++) {
            kind_name(tmpl, sizeof tmpl, k, "tpl");
            strcat(tmpl, "-XXXXXX");
            void *a, *b;
            ck_assert_int_eq(kinds[k].create(&a, tmpl, 0), 0);
            ck_assert_int_eq(kinds[k].create(&b, tmpl, 0), 0);
            const char *na = kinds[k].name(a), *nb = kinds[k].name(b);
            ck_assert_ptr_nonnull(na);
            ck_assert_ptr_nonnull(nb);
            ck_assert_str_ne(na, nb);
            ck_assert_uint_eq(strlen(na), strlen(tmpl));
            ck_assert_int_eq(strncmp(na, tmpl, strlen(tmpl) - 6), 0);
            ck_assert_ptr_null(strstr(na, "XXXXXX"));
            ck_assert_int_eq(try_open(k, na, &no_access), 0);
            ck_assert_int_eq(try_open(k, nb, &no_access), 0);
            /* The template itself names nothing. */
            ck_assert_int_eq(try_open(k, tmpl, &no_access), MPROC_ENOENT);
            ck_assert_int_eq(kinds[k].unlink(na), 0);
            ck_assert_int_eq(kinds[k].unlink(nb), 0);
            kinds[k].close(a);
            kinds[k].close(b);
        }
    }
    mproc__region_test_no_tmpfile(false);
}
END_TEST

/* The name getters: the name given, NULL when anonymous, for an embedded
 * lock, and for NULL. */
START_TEST(named_name_getters_answer_every_handle)
{
    char name[96];
    for (size_t k = 0; k < N_KINDS; k++) {
        kind_name(name, sizeof name, k, "getter");
        void *h;
        ck_assert_int_eq(kinds[k].create(&h, name, 0), 0);
        ck_assert_str_eq(kinds[k].name(h), name);
        kinds[k].close(h);
        ck_assert_int_eq(kinds[k].open(&h, name, &no_access), 0);
        ck_assert_str_eq(kinds[k].name(h), name);
        kinds[k].close(h);
        ck_assert_int_eq(kinds[k].unlink(name), 0);
        ck_assert_int_eq(kinds[k].create(&h, NULL, 0), 0);
        ck_assert_ptr_null(kinds[k].name(h));
        kinds[k].close(h);
        ck_assert_ptr_null(kinds[k].name(NULL));
    }
    mproc_value *v;
    ck_assert_int_eq(mproc_value_create(&v, NULL, MPROC_TYPE_INT32, NULL), 0);
    ck_assert_ptr_null(mproc_lock_name(mproc_value_get_lock(v)));
    mproc_value_close(v);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("named");
    TEST_ADD(s, named_open_refuses_another_users_objects);
    TEST_ADD(s, named_root_survives_another_user_truncating_its_objects);
    TEST_ADD(s, named_open_refuses_group_or_other_writable_objects);
    TEST_ADD(s, named_create_refuses_mode_bits_above_0777);
    TEST_ADD(s, named_create_ignores_squatted_temporary_names);
    TEST_ADD(s, named_dot_names_are_invalid);
    TEST_ADD(s, named_planted_symlink_directory_or_fifo_is_not_an_object);
    TEST_ADD(s, named_truncated_object_is_listed_damaged_and_unlinked);
    TEST_ADD(s, named_list_shows_creator_and_whether_it_lives);
    TEST_ADD(s, named_list_tells_a_reused_pid_from_the_creator);
    TEST_ADD(s, named_template_makes_distinct_openable_names);
    TEST_ADD(s, named_name_getters_answer_every_handle);
    return s;
}
