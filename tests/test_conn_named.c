/* Connections between unrelated processes: FIFOs, the listener and client
 * over a Unix socket path, and passing ends between processes. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

#define NOBODY TEST_NOBODY

/* In a forked child: becomes uid and gid NOBODY with no supplementary
 * groups. False when it could not. */
/* Lets other users reach the names in this run's directory (the one that
 * holds path; search permission only), or no longer. */
static void share_test_dir(const char *path, bool on)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    ck_assert_int_eq(chmod(dir, on ? 0711 : 0700), 0);
}

/* ----- FIFOs ----- */

START_TEST(fifo_create_makes_a_0600_fifo)
{
    char path[256];
    test_path(path, sizeof path, "fifo");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISFIFO(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0); /* already a FIFO */
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
    ck_assert_int_eq(lstat(path, &st), -1);
    ck_assert_int_eq(mproc_fifo_unlink(path), MPROC_ENOENT);
    ck_assert_int_eq(mproc_fifo_create(path, 0640), 0);
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
    ck_assert_int_eq(mproc_fifo_create(NULL, 0), MPROC_EINVAL);
    ck_assert_int_eq(mproc_fifo_create(path, 01777), MPROC_EINVAL);
}
END_TEST

START_TEST(fifo_create_refuses_a_fifo_not_ours_or_wider_than_asked)
{
    char path[256];
    test_path(path, sizeof path, "wide");
    /* A FIFO left with a wider mode than the caller asks for. */
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    ck_assert_int_eq(chmod(path, 0666), 0);
    ck_assert_int_eq(mproc_fifo_create(path, 0600), MPROC_EEXIST);
    ck_assert_int_eq(mproc_fifo_create(path, 0), MPROC_EEXIST);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0666); /* nothing changed */
    ck_assert_int_eq(mproc_fifo_create(path, 0666), 0);
    ck_assert_int_eq(chmod(path, 0600), 0);
    ck_assert_int_eq(mproc_fifo_create(path, 0640), 0); /* narrower is fine */
    /* Another user's FIFO (only root can make one here). */
    if (geteuid() == 0) {
        ck_assert_int_eq(chown(path, 65534, 65534), 0);
        ck_assert_int_eq(mproc_fifo_create(path, 0600), MPROC_EEXIST);
        ck_assert_int_eq(mproc_fifo_create(path, 0666), MPROC_EEXIST);
    } else {
        fprintf(stderr, "note: not root, another user's FIFO not tried\n");
    }
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_refuses_a_path_that_is_something_else)
{
    char dir[256], file[256];
    test_path(dir, sizeof dir, "dir");
    test_path(file, sizeof file, "file");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(mproc_fifo_create(dir, 0), MPROC_EEXIST);
    ck_assert_int_eq(mproc_fifo_create(file, 0), MPROC_EEXIST);
    /* Unlink and open give the same answer for the same path. */
    ck_assert_int_eq(mproc_fifo_unlink(file), MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_fifo_unlink(dir), MPROC_EBADOBJ);
    mproc_conn *c = NULL;
    ck_assert_int_eq(mproc_fifo_open(&c, dir, MPROC_FIFO_READ, NULL, 0),
                     MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_fifo_open(&c, dir, MPROC_FIFO_WRITE, NULL, 0),
                     MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_fifo_open(&c, file, MPROC_FIFO_READ, NULL, 0),
                     MPROC_EBADOBJ);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(mproc_fifo_open(&c, file, 7, NULL, 0), MPROC_EINVAL);
    char none[256];
    test_path(none, sizeof none, "none");
    ck_assert_int_eq(mproc_fifo_open(&c, none, MPROC_FIFO_READ, NULL, 0),
                     MPROC_ENOENT);
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0); /* untouched */
    ck_assert(S_ISDIR(((void)stat(dir, &st), st.st_mode)));
    unlink(file);
    rmdir(dir);
}
END_TEST

START_TEST(fifo_open_refuses_a_symlink_even_to_a_fifo)
{
    char path[256], link[256];
    test_path(path, sizeof path, "real");
    test_path(link, sizeof link, "link");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    ck_assert_int_eq(symlink(path, link), 0);
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    uid_t me = geteuid();
    o.access.uids = &me;
    o.access.n_uids = 1;
    o.access.shared_write = true;
    mproc_conn *c = NULL;
    ck_assert_int_eq(mproc_fifo_open(&c, link, MPROC_FIFO_READ, NULL, 0),
                     MPROC_EBADOBJ);
    ck_assert_int_eq(mproc_fifo_open(&c, link, MPROC_FIFO_READ, &o, 0),
                     MPROC_EBADOBJ);
    ck_assert_ptr_null(c);
    /* The FIFO itself opens, and then a writer through the link would not
     * wait for a reader: it is refused at once all the same. */
    mproc_conn *r;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0), 0);
    ck_assert_int_eq(mproc_fifo_open(&c, link, MPROC_FIFO_WRITE, &o, 1000),
                     MPROC_EBADOBJ);
    ck_assert_ptr_null(c);
    mproc_conn_close(r);
    ck_assert_int_eq(mproc_fifo_unlink(link), MPROC_EBADOBJ);
    struct stat st;
    ck_assert_int_eq(lstat(link, &st), 0); /* nothing removed */
    ck_assert_int_eq(unlink(link), 0);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_open_refuses_a_fifo_others_may_write_unless_shared_write)
{
    char path[256];
    test_path(path, sizeof path, "wide");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_conn *r = NULL, *w = NULL;
    static const mode_t wide[] = {0620, 0602, 0666, 0622};
    /* The bits mproc never sets refuse a FIFO even with shared_write. */
    mproc_fifo_opts all = MPROC_FIFO_OPTS_INIT;
    all.access.shared_write = true;
    static const mode_t odd[] = {04600, 02600, 01600};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        ck_assert_int_eq(chmod(path, odd[i]), 0);
        ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &all, 0),
                         MPROC_EDENIED);
    }
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++) {
        ck_assert_int_eq(chmod(path, wide[i]), 0);
        ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0),
                         MPROC_EDENIED);
        ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 0),
                         MPROC_EDENIED);
    }
    ck_assert_ptr_null(r);
    ck_assert_ptr_null(w);
    /* Said so, both ends open and carry messages. */
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    o.access.shared_write = true;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0), 0);
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, &o, 1000), 0);
    ck_assert_int_eq(mproc_conn_send(w, "x", 1, 1000), 0);
    char buf[4];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
    mproc_conn_close(w);
    mproc_conn_close(r);
    /* Others reading is not others writing: 0644 opens by default. */
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0), 0);
    mproc_conn_close(r);
    o.access.n_uids = 1; /* a count without its array */
    r = NULL;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0),
                     MPROC_EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

/* In a child that became NOBODY: opens path (owned by root) by the given
 * access rules, sends one message when it is a write end. 0 or the
 * mproc_fifo_open result as a small number. */
static int nobody_opens(const char *path, unsigned how, bool list_uid,
                        bool list_gid, bool shared)
{
    if (!test_become_nobody())
        return 9;
    uid_t root = 0;
    gid_t root_group = 0;
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    if (list_uid) {
        o.access.uids = &root;
        o.access.n_uids = 1;
    }
    if (list_gid) {
        o.access.gids = &root_group;
        o.access.n_gids = 1;
    }
    o.access.shared_write = shared;
    mproc_conn *c;
    int rc = mproc_fifo_open(&c, path, how, &o, 10000);
    if (rc == MPROC_EDENIED)
        return 2;
    if (rc != 0)
        return 3;
    if (how == MPROC_FIFO_WRITE && mproc_conn_send(c, "nobody", 6, 10000) != 0)
        return 4;
    mproc_conn_close(c);
    return 0;
}

static int nobody_opens_status(const char *path, unsigned how, bool list_uid,
                               bool list_gid, bool shared)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(nobody_opens(path, how, list_uid, list_gid, shared));
    return test_wait_status(pid);
}

START_TEST(fifo_open_refuses_another_users_fifo_unless_listed)
{
    if (geteuid() != 0) {
        test_skip("not root: no second uid to try");
        return;
    }
    char path[256];
    test_path(path, sizeof path, "theirs");
    /* The FIFO belongs to another user. */
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    ck_assert_int_eq(chown(path, NOBODY, NOBODY), 0);
    mproc_conn *r = NULL;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0),
                     MPROC_EDENIED);
    ck_assert_ptr_null(r);
    uid_t uid = NOBODY;
    gid_t gid = NOBODY;
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    o.access.uids = &uid;
    o.access.n_uids = 1;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0), 0);
    mproc_conn_close(r);
    o = (mproc_fifo_opts)MPROC_FIFO_OPTS_INIT;
    o.access.gids = &gid;
    o.access.n_gids = 1;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0), 0);
    mproc_conn_close(r);
    ck_assert_int_eq(chown(path, 0, 0), 0);
    /* The opener is another user (root's FIFO, readable by all). */
    share_test_dir(path, true);
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(
        nobody_opens_status(path, MPROC_FIFO_READ, false, false, false), 2);
    ck_assert_int_eq(
        nobody_opens_status(path, MPROC_FIFO_READ, true, false, false), 0);
    ck_assert_int_eq(
        nobody_opens_status(path, MPROC_FIFO_READ, false, true, false), 0);
    /* Writable by all, for writers of several users: a listed owner is not
     * enough, shared_write must say so too. */
    ck_assert_int_eq(chmod(path, 0622), 0);
    o = (mproc_fifo_opts)MPROC_FIFO_OPTS_INIT;
    o.access.shared_write = true;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0), 0);
    ck_assert_int_eq(
        nobody_opens_status(path, MPROC_FIFO_WRITE, true, false, false), 2);
    ck_assert_int_eq(
        nobody_opens_status(path, MPROC_FIFO_WRITE, true, false, true), 0);
    char buf[8];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
    ck_assert_mem_eq(buf, "nobody", 6);
    mproc_conn_close(r);
    share_test_dir(path, false);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_writer_open_times_out_without_a_reader)
{
    char path[256];
    test_path(path, sizeof path, "lonely");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_conn *c = NULL;
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_fifo_open(&c, path, MPROC_FIFO_WRITE, NULL, 80),
                     MPROC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_ge(took, 75);
    ck_assert_int_lt(took, test_ms(2000));
    ck_assert_int_eq(mproc_fifo_open(&c, path, MPROC_FIFO_WRITE, NULL, 0),
                     MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_fifo_open(&c, path, MPROC_FIFO_WRITE, NULL, -2),
                     MPROC_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

/* A reader that opens 50 ms after its writer started to wait. */
static int late_reader(const char *path)
{
    usleep(50 * 1000);
    mproc_conn *r;
    if (mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0) != 0)
        return 2;
    char buf[8];
    size_t n;
    int rc = mproc_conn_recv(r, buf, sizeof buf, &n, 10000);
    mproc_conn_close(r);
    return rc == 0 && n == 4 ? 0 : 3;
}

START_TEST(fifo_writer_open_goes_through_soon_after_a_late_reader)
{
    char path[256];
    test_path(path, sizeof path, "late");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(late_reader(path));
    /* The writer opens first and retries until the reader is there:
     * often enough (every 20 ms at most) to follow it closely. */
    int64_t t0 = test_now_ms();
    mproc_conn *w;
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 10000),
                     0);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_eq(mproc_conn_send(w, "late", 4, 10000), 0);
    mproc_conn_close(w);
    ck_assert_int_eq(test_wait_status(pid), 0);
    ck_assert_int_ge(took, 45);
    ck_assert_int_lt(took, test_ms(700));
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_reader_waits_for_a_first_writer)
{
    char path[256];
    test_path(path, sizeof path, "early");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_conn *r;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0), 0);
    char buf[16];
    size_t n;
    /* No writer yet: waiting, not end of file. */
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 50),
                     MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_conn_poll(r, 20), MPROC_ETIMEDOUT);
    mproc_wait_item it = MPROC_WAIT_CONN(r);
    ck_assert_int_eq(mproc_wait(&it, 1, 20), MPROC_ETIMEDOUT);
    mproc_conn *w;
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 1000),
                     0);
    ck_assert_int_eq(mproc_conn_send(w, "late", 4, 0), 0);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
    ck_assert_mem_eq(buf, "late", 4);
    mproc_conn_close(w);
    /* The writer left: now it is end of file. */
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000),
                     MPROC_ECLOSED);
    ck_assert_int_eq(mproc_wait(&it, 1, 1000), 1);
    mproc_conn_close(r);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

static int fifo_writer(const char *path, unsigned char fill, int count,
                       size_t size, bool single)
{
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    o.single_writer = single;
    mproc_conn *w;
    if (mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, &o, 10000) != 0)
        return 2;
    unsigned char *b = malloc(size);
    memset(b, fill, size);
    for (int i = 0; i < count; i++)
        if (mproc_conn_send(w, b, size, 10000) != 0)
            return 3;
    free(b);
    mproc_conn_close(w);
    return 0;
}

START_TEST(fifo_reader_waiting_for_writers_outlasts_the_last_one)
{
    char path[256];
    test_path(path, sizeof path, "server");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    o.wait_for_writers = true;
    mproc_conn *r;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0), 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fifo_writer(path, 0x11, 1, 10, false));
    unsigned char buf[16];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 10000), 0);
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_eq(buf[0], 0x11);
    ck_assert_int_eq(test_wait_status(pid), 0);
    /* The last writer is gone: the reader waits its timeout instead of
     * reporting end of file at once. */
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 300),
                     MPROC_ETIMEDOUT);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_ge(took, 290);
    ck_assert_int_lt(took, test_ms(3000));
    ck_assert_int_eq(mproc_conn_poll(r, 20), MPROC_ETIMEDOUT);
    mproc_wait_item it = MPROC_WAIT_CONN(r);
    ck_assert_int_eq(mproc_wait(&it, 1, 20), MPROC_ETIMEDOUT);
    /* A later writer is heard. */
    pid = fork();
    if (pid == 0)
        _exit(fifo_writer(path, 0x22, 1, 12, false));
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 10000), 0);
    ck_assert_uint_eq(n, 12);
    ck_assert_uint_eq(buf[11], 0x22);
    ck_assert_int_eq(test_wait_status(pid), 0);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 0),
                     MPROC_ETIMEDOUT);
    mproc_conn_close(r);
    /* The held write end went with the reader: a writer finds none. */
    mproc_conn *w;
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 0),
                     MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_carries_messages_between_unrelated_processes)
{
    char path[256];
    test_path(path, sizeof path, "fifo");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    /* The child knows only the path. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(fifo_writer(path, 0x5a, 20, 100000, true));
    mproc_conn *r;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 1000), 0);
    unsigned char *b = malloc(100000);
    for (int i = 0; i < 20; i++) {
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, b, 100000, &n, 10000), 0);
        ck_assert_uint_eq(n, 100000);
        ck_assert_uint_eq(b[0], 0x5a);
        ck_assert_uint_eq(b[n - 1], 0x5a);
    }
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, b, 100000, &n, 10000), MPROC_ECLOSED);
    ck_assert_int_eq(test_wait_status(pid), 0);
    free(b);
    mproc_conn_close(r);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_messages_from_several_writers_never_interleave)
{
    char path[256];
    test_path(path, sizeof path, "shared");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_conn *r;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0), 0);
    /* A writer that may share the FIFO refuses what it cannot send whole. */
    mproc_conn *w;
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 1000),
                     0);
    static unsigned char big[MPROC_FIFO_ATOMIC_MAX + 1];
    ck_assert_int_eq(mproc_conn_send(w, big, sizeof big, 0), MPROC_EMSGSIZE);
    ck_assert_int_eq(mproc_conn_send(w, big, MPROC_FIFO_ATOMIC_MAX, 0), 0);
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, big, sizeof big, &n, 0), 0);
    ck_assert_uint_eq(n, MPROC_FIFO_ATOMIC_MAX);
    pid_t pids[3];
    for (int k = 0; k < 3; k++) {
        pids[k] = fork();
        if (pids[k] == 0)
            _exit(fifo_writer(path, (unsigned char)(k + 1), 300,
                              MPROC_FIFO_ATOMIC_MAX, false));
    }
    mproc_conn_close(w);
    int seen[4] = {0};
    for (int i = 0; i < 900; i++) {
        ck_assert_int_eq(mproc_conn_recv(r, big, sizeof big, &n, 10000), 0);
        ck_assert_uint_eq(n, MPROC_FIFO_ATOMIC_MAX);
        unsigned char f = big[0];
        ck_assert(f >= 1 && f <= 3);
        for (size_t j = 0; j < n; j++)
            if (big[j] != f)
                ck_abort_msg("message %d mixes writers at byte %zu", i, j);
        seen[f]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(test_wait_status(pids[k]), 0);
    ck_assert_int_eq(seen[1], 300);
    ck_assert_int_eq(seen[2], 300);
    ck_assert_int_eq(seen[3], 300);
    ck_assert_int_eq(mproc_conn_recv(r, big, sizeof big, &n, 1000),
                     MPROC_ECLOSED);
    mproc_conn_close(r);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_batch_for_several_writers_keeps_atomic_groups)
{
    char path[256];
    test_path(path, sizeof path, "batch");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0), 0);
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, 1000),
                     0);
    static unsigned char data[10][1000];
    mproc_conn_msg m[10];
    for (int i = 0; i < 10; i++) {
        memset(data[i], i, sizeof data[i]);
        m[i].data = data[i];
        m[i].len = sizeof data[i];
    }
    size_t sent = 99;
    ck_assert_int_eq(mproc_conn_send_batch(w, m, 10, &sent, 1000), 0);
    ck_assert_uint_eq(sent, 10);
    unsigned char buf[1000];
    for (int i = 0; i < 10; i++) {
        size_t n;
        ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 1000), 0);
        ck_assert_uint_eq(n, 1000);
        ck_assert_uint_eq(buf[0], i);
        ck_assert_uint_eq(buf[999], i);
    }
    static unsigned char big[MPROC_FIFO_ATOMIC_MAX + 1];
    m[3].data = big;
    m[3].len = sizeof big;
    ck_assert_int_eq(mproc_conn_send_batch(w, m, 10, &sent, 1000),
                     MPROC_EMSGSIZE);
    ck_assert_uint_eq(sent, 0); /* checked before anything is sent */
    mproc_conn_close(w);
    mproc_conn_close(r);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(passed_fifo_write_end_keeps_the_several_writers_rule)
{
    char path[256];
    test_path(path, sizeof path, "fifopass");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_conn *r, *w, *a, *b, *w2;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, NULL, 0), 0);
    ck_assert_int_eq(
        mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, NULL, test_ms(1000)), 0);
    ck_assert_int_eq(mproc_pipe(&a, &b, true, NULL), 0);
    ck_assert_int_eq(mproc_conn_send_conn(a, w, 0), 0);
    ck_assert_int_eq(mproc_conn_recv_conn(b, &w2, test_ms(1000)), 0);
    static char big[MPROC_FIFO_ATOMIC_MAX + 1];
    ck_assert_int_eq(mproc_conn_send(w2, big, sizeof big, 0), MPROC_EMSGSIZE);
    ck_assert_int_eq(mproc_conn_send(w2, big, sizeof big - 1, 0), 0);
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, big, sizeof big, &n, test_ms(1000)), 0);
    ck_assert_uint_eq(n, MPROC_FIFO_ATOMIC_MAX);
    mproc_conn_close(w2);
    mproc_conn_close(w);
    mproc_conn_close(r);
    mproc_conn_close(a);
    mproc_conn_close(b);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

START_TEST(fifo_bytes_mode_is_a_plain_stream)
{
    char path[256];
    test_path(path, sizeof path, "bytes");
    ck_assert_int_eq(mproc_fifo_create(path, 0), 0);
    mproc_fifo_opts o = MPROC_FIFO_OPTS_INIT;
    o.bytes = true;
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_fifo_open(&r, path, MPROC_FIFO_READ, &o, 0), 0);
    ck_assert_int_eq(mproc_fifo_open(&w, path, MPROC_FIFO_WRITE, &o, 1000), 0);
    ck_assert_int_eq(mproc_conn_write(w, "abc", 3, NULL, 0), 0);
    ck_assert_int_eq(mproc_conn_write(w, "def", 3, NULL, 0), 0);
    char buf[8];
    size_t n;
    ck_assert_int_eq(mproc_conn_read(r, buf, sizeof buf, &n, 1000), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(buf, "abcdef", 6);
    mproc_conn_close(w);
    ck_assert_int_eq(mproc_conn_read(r, buf, sizeof buf, &n, 1000),
                     MPROC_ECLOSED);
    mproc_conn_close(r);
    ck_assert_int_eq(mproc_fifo_unlink(path), 0);
}
END_TEST

/* ----- listener and client ----- */

static int client_hello(const char *path)
{
    mproc_conn *c;
    if (mproc_client_open(&c, path, 10000) != 0)
        return 2;
    int rc = mproc_conn_send(c, "hello", 5, 10000);
    if (rc == MPROC_ECLOSED) { /* refused before it could send */
        mproc_conn_close(c);
        return 4;
    }
    if (rc != 0)
        return 3;
    char buf[8];
    size_t n;
    rc = mproc_conn_recv(c, buf, sizeof buf, &n, 10000);
    mproc_conn_close(c);
    if (rc == MPROC_ECLOSED || rc == MPROC_ECONNRESET)
        return 4;
    return rc == 0 && n == 2 && memcmp(buf, "hi", 2) == 0 ? 0 : 5;
}

/* The listener's side of client_hello: takes "hello", answers "hi". */
static void answer_hello(mproc_conn *c)
{
    char buf[8];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(c, buf, sizeof buf, &n, 10000), 0);
    ck_assert_uint_eq(n, 5);
    ck_assert_mem_eq(buf, "hello", 5);
    ck_assert_int_eq(mproc_conn_send(c, "hi", 2, 10000), 0);
}

START_TEST(listener_accepts_a_client_and_learns_its_credentials)
{
    char path[256];
    test_path(path, sizeof path, "sock");
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, path, NULL), 0);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    mproc_conn *c = NULL;
    ck_assert_int_eq(mproc_listener_accept(l, &c, NULL, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_listener_accept(l, &c, NULL, 30), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_listener_accept(l, &c, NULL, -9), MPROC_EINVAL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(client_hello(path));
    mproc_peer peer;
    ck_assert_int_eq(mproc_listener_accept(l, &c, &peer, 10000), 0);
    ck_assert_int_eq(peer.pid, pid);
    ck_assert_int_eq(peer.uid, geteuid());
    ck_assert_int_eq(peer.gid, getegid());
    answer_hello(c);
    ck_assert_int_eq(test_wait_status(pid), 0);
    mproc_conn_close(c);
    /* The path is taken while the listener lives. */
    mproc_listener *l2;
    ck_assert_int_eq(mproc_listener_open(&l2, path, NULL), MPROC_EADDRINUSE);
    mproc_listener_close(l);
    ck_assert_int_eq(lstat(path, &st), -1); /* close removed it */
    mproc_listener_close(NULL);
}
END_TEST

START_TEST(listener_path_survives_a_child_closing_its_copy)
{
    char path[256];
    test_path(path, sizeof path, "sockfork");
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, path, NULL), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        mproc_listener_close(l); /* the child's inherited copy */
        _exit(0);
    }
    ck_assert_int_eq(test_wait_status(pid), 0);
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0); /* still there */
    mproc_conn *c, *s2;
    ck_assert_int_eq(mproc_client_open(&c, path, 1000), 0);
    ck_assert_int_eq(mproc_listener_accept(l, &s2, NULL, 1000), 0);
    mproc_conn_close(c);
    mproc_conn_close(s2);
    mproc_listener_close(l);
    ck_assert_int_eq(lstat(path, &st), -1); /* the owner's close removes it */
}
END_TEST

START_TEST(listener_accepts_another_uid_only_when_its_access_lists_it)
{
    if (geteuid() != 0) {
        test_skip("not root: cannot connect as another uid");
        return;
    }
    char path[256];
    test_path(path, sizeof path, "strict");
    share_test_dir(path, true);
    uid_t uid = NOBODY;
    gid_t gid = NOBODY;
    for (int round = 0; round < 3; round++) {
        mproc_listener_opts o = MPROC_LISTENER_OPTS_INIT;
        o.mode = 0666;
        if (round == 1) {
            o.access.uids = &uid;
            o.access.n_uids = 1;
        } else if (round == 2) {
            o.access.gids = &gid;
            o.access.n_gids = 1;
        }
        mproc_listener *l;
        ck_assert_int_eq(mproc_listener_open(&l, path, &o), 0);
        pid_t pid = fork();
        if (pid == 0)
            _exit(test_become_nobody() ? client_hello(path) : 9);
        mproc_conn *c = NULL;
        mproc_peer peer = {0, 0, 0};
        int rc = mproc_listener_accept(l, &c, &peer, 10000);
        ck_assert_int_eq(peer.pid, pid);
        ck_assert_int_eq(peer.uid, NOBODY);
        ck_assert_int_eq(peer.gid, NOBODY);
        if (round == 0) {
            ck_assert_int_eq(rc, MPROC_EDENIED);
            ck_assert_ptr_null(c);
            /* The refused client saw its connection closed. */
            ck_assert_int_eq(test_wait_status(pid), 4);
        } else {
            ck_assert_int_eq(rc, 0);
            answer_hello(c);
            ck_assert_int_eq(test_wait_status(pid), 0);
            mproc_conn_close(c);
        }
        /* The listener's own uid is accepted whatever the lists say. */
        mproc_conn *mine;
        ck_assert_int_eq(mproc_client_open(&mine, path, 1000), 0);
        ck_assert_int_eq(mproc_listener_accept(l, &c, NULL, 1000), 0);
        mproc_conn_close(c);
        mproc_conn_close(mine);
        ck_assert_int_eq(mproc_listener_accept(l, &c, NULL, 0),
                         MPROC_ETIMEDOUT);
        mproc_listener_close(l);
    }
    share_test_dir(path, false);
    mproc_listener_opts bad = MPROC_LISTENER_OPTS_INIT;
    bad.access.n_gids = 1;
    mproc_listener *l = NULL;
    ck_assert_int_eq(mproc_listener_open(&l, path, &bad), MPROC_EINVAL);
    ck_assert_ptr_null(l);
}
END_TEST

/* A listener that opens 50 ms after its client started to wait. */
static int late_listener(const char *path)
{
    usleep(50 * 1000);
    mproc_listener *l;
    if (mproc_listener_open(&l, path, NULL) != 0)
        return 2;
    mproc_conn *c;
    int rc = mproc_listener_accept(l, &c, NULL, 10000);
    if (rc == 0) {
        char buf[8];
        size_t n;
        rc = mproc_conn_recv(c, buf, sizeof buf, &n, 10000);
        mproc_conn_close(c);
    }
    mproc_listener_close(l);
    return rc == 0 ? 0 : 3;
}

START_TEST(client_open_goes_through_soon_after_a_late_listener)
{
    char path[256];
    test_path(path, sizeof path, "latesock");
    pid_t pid = fork();
    if (pid == 0)
        _exit(late_listener(path));
    /* The client retries until the listener is there: often enough (every
     * 20 ms at most) to follow it closely. */
    int64_t t0 = test_now_ms();
    mproc_conn *c;
    ck_assert_int_eq(mproc_client_open(&c, path, 10000), 0);
    int64_t took = test_now_ms() - t0;
    ck_assert_int_eq(mproc_conn_send(c, "late", 4, 10000), 0);
    ck_assert_int_eq(test_wait_status(pid), 0);
    mproc_conn_close(c);
    ck_assert_int_ge(took, 45);
    ck_assert_int_lt(took, test_ms(700));
}
END_TEST

START_TEST(client_open_times_out_when_no_listener_is_reached)
{
    char path[256];
    test_path(path, sizeof path, "nobody");
    mproc_conn *c = NULL;
    /* No listener reached by the deadline is a timeout, whatever the
     * reason: the path does not exist yet ... */
    ck_assert_int_eq(mproc_client_open(&c, path, 0), MPROC_ETIMEDOUT);
    int64_t t0 = test_now_ms();
    ck_assert_int_eq(mproc_client_open(&c, path, 60), MPROC_ETIMEDOUT);
    ck_assert_int_ge(test_now_ms() - t0, 55);
    ck_assert_ptr_null(c);
    /* ... or nobody listens on the socket file left there. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(path), sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    ck_assert_int_eq(mproc_client_open(&c, path, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_client_open(&c, path, 60), MPROC_ETIMEDOUT);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(unlink(path), 0);
    char longp[200];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    ck_assert_int_eq(mproc_client_open(&c, longp, 0), MPROC_ENAMETOOLONG);
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, longp, NULL), MPROC_ENAMETOOLONG);
    ck_assert_int_eq(mproc_listener_open(&l, NULL, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_client_open(NULL, path, 0), MPROC_EINVAL);
}
END_TEST

/* An abstract name unique to this run: "@mproc-t<pid>-<what>". */
static const char *abstract_name(char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "@mproc-t%d-%s", (int)getpid(), what);
    return buf;
}

START_TEST(listener_on_an_abstract_name_makes_no_file)
{
    char name[64];
    abstract_name(name, sizeof name, "abs");
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, name, NULL), 0);
    struct stat st;
    ck_assert_int_eq(lstat(name, &st), -1); /* no file, here or anywhere */
    mproc_listener *l2;
    ck_assert_int_eq(mproc_listener_open(&l2, name, NULL), MPROC_EADDRINUSE);
    /* A client elsewhere in the file system reaches it by name alone. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(chdir("/") == 0 ? client_hello(name) : 9);
    mproc_conn *c;
    mproc_peer peer;
    ck_assert_int_eq(mproc_listener_accept(l, &c, &peer, 10000), 0);
    ck_assert_int_eq(peer.pid, pid);
    answer_hello(c);
    ck_assert_int_eq(test_wait_status(pid), 0);
    mproc_conn_close(c);
    /* No file mode guards it: only the credentials check does. */
    if (geteuid() == 0) {
        pid = fork();
        if (pid == 0)
            _exit(test_become_nobody() ? client_hello(name) : 9);
        ck_assert_int_eq(mproc_listener_accept(l, &c, &peer, 10000),
                         MPROC_EDENIED);
        ck_assert_int_eq(peer.uid, NOBODY);
        ck_assert_int_eq(test_wait_status(pid), 4);
    }
    /* Close removes nothing, and frees the name. */
    mproc_listener_close(l);
    ck_assert_int_eq(mproc_client_open(&c, name, 0), MPROC_ETIMEDOUT);
    ck_assert_int_eq(mproc_listener_open(&l, name, NULL), 0);
    mproc_listener_close(l);
    /* The name's bounds: the '@' stands for the leading NUL byte. */
    char longest[110];
    memset(longest, 'a', sizeof longest);
    longest[0] = '@';
    longest[108] = '\0'; /* 107 bytes of name */
    ck_assert_int_eq(mproc_listener_open(&l, longest, NULL), 0);
    mproc_listener_close(l);
    longest[108] = 'a';
    longest[109] = '\0';
    ck_assert_int_eq(mproc_listener_open(&l, longest, NULL),
                     MPROC_ENAMETOOLONG);
    ck_assert_int_eq(mproc_listener_open(&l, "@", NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_client_open(&c, "@", 0), MPROC_EINVAL);
}
END_TEST

/* The child connects, receives a pipe's write end, and sends on it. */
static int child_uses_passed_end(const char *path)
{
    mproc_conn *c, *w;
    if (mproc_client_open(&c, path, 10000) != 0)
        return 2;
    if (mproc_conn_recv_conn(c, &w, 10000) != 0)
        return 3;
    int rc = mproc_conn_send(w, "through", 7, 10000);
    mproc_conn_close(w);
    mproc_conn_close(c);
    return rc == 0 ? 0 : 4;
}

START_TEST(connection_end_passes_to_another_process)
{
    char path[256];
    test_path(path, sizeof path, "pass");
    mproc_listener *l;
    ck_assert_int_eq(mproc_listener_open(&l, path, NULL), 0);
    mproc_conn *r, *w;
    ck_assert_int_eq(mproc_pipe(&r, &w, false, NULL), 0);
    pid_t pid = fork();
    if (pid == 0) {
        mproc_conn_close(r);
        mproc_conn_close(w);
        _exit(child_uses_passed_end(path));
    }
    mproc_conn *c;
    ck_assert_int_eq(mproc_listener_accept(l, &c, NULL, 10000), 0);
    ck_assert_int_eq(mproc_conn_send_conn(c, w, 10000), 0);
    mproc_conn_close(w);
    char buf[16];
    size_t n;
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 10000), 0);
    ck_assert_mem_eq(buf, "through", 7);
    ck_assert_int_eq(mproc_conn_recv(r, buf, sizeof buf, &n, 10000),
                     MPROC_ECLOSED);
    ck_assert_int_eq(test_wait_status(pid), 0);
    mproc_conn_close(c);
    mproc_conn_close(r);
    mproc_listener_close(l);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("conn_named");
    TEST_ADD(s, fifo_create_makes_a_0600_fifo);
    TEST_ADD(s, fifo_create_refuses_a_fifo_not_ours_or_wider_than_asked);
    TEST_ADD(s, fifo_refuses_a_path_that_is_something_else);
    TEST_ADD(s, fifo_open_refuses_a_symlink_even_to_a_fifo);
    TEST_ADD(s, fifo_open_refuses_a_fifo_others_may_write_unless_shared_write);
    TEST_ADD(s, fifo_open_refuses_another_users_fifo_unless_listed);
    TEST_ADD(s, fifo_writer_open_times_out_without_a_reader);
    TEST_ADD(s, fifo_writer_open_goes_through_soon_after_a_late_reader);
    TEST_ADD(s, fifo_reader_waits_for_a_first_writer);
    TEST_ADD(s, fifo_reader_waiting_for_writers_outlasts_the_last_one);
    TEST_ADD(s, fifo_carries_messages_between_unrelated_processes);
    TEST_ADD(s, fifo_messages_from_several_writers_never_interleave);
    TEST_ADD(s, fifo_batch_for_several_writers_keeps_atomic_groups);
    TEST_ADD(s, passed_fifo_write_end_keeps_the_several_writers_rule);
    TEST_ADD(s, fifo_bytes_mode_is_a_plain_stream);
    TEST_ADD(s, listener_accepts_a_client_and_learns_its_credentials);
    TEST_ADD(s, listener_path_survives_a_child_closing_its_copy);
    TEST_ADD(s, listener_accepts_another_uid_only_when_its_access_lists_it);
    TEST_ADD(s, listener_on_an_abstract_name_makes_no_file);
    TEST_ADD(s, client_open_goes_through_soon_after_a_late_listener);
    TEST_ADD(s, client_open_times_out_when_no_listener_is_reached);
    TEST_ADD(s, connection_end_passes_to_another_process);
    return s;
}
