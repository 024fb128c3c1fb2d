/*
 * Connections between unrelated processes (FIFOs, a listener and client on
 * a Unix socket path with peer credentials) and mproc_wait over many
 * connections and fds. Opening either kind never waits without bound: the
 * waits that the kernel would make unbounded (a FIFO writer's open, a full
 * listen backlog) are turned into non-blocking tries up to a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal/access.h"
#include "internal/conn.h"
#include "internal/ring.h"
#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/registry.h"
#include "mproc/conn.h"
#include "os/os.h"

/* Sleeps for the next retry: *step ms (doubling up to 20), never past d. */
static void backoff(int *step, const mproc__deadline *d)
{
    int64_t left = mproc__deadline_left_ns(d);
    int64_t ns = (int64_t)*step * 1000000;
    if (ns > left)
        ns = left;
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    nanosleep(&ts, NULL);
    if (*step < 20)
        *step *= 2;
}

static int clear_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* ----- FIFOs ----- */

int mproc_fifo_create(const char *path, unsigned mode)
{
    if (path == NULL || mode > 0777)
        return MPROC_EINVAL;
    if (mode == 0)
        mode = 0600;
    if (mkfifo(path, (mode_t)mode) == 0) {
        /* mkfifo applies the umask; the caller asked for this mode. */
        if (chmod(path, (mode_t)mode) < 0) {
            int rc = -errno;
            unlink(path);
            return rc;
        }
        return 0;
    }
    int rc = -errno;
    if (rc != MPROC_EEXIST)
        return rc;
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    /* An existing FIFO is only accepted when it is ours and no wider than
     * asked: one another user made (or left open to others) could be read
     * or written by them. */
    if (!S_ISFIFO(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 07777 & ~(mode_t)mode) != 0)
        return MPROC_EEXIST;
    return 0;
}

/* ----- access rules (mproc/named.h) ----- */

/* What a FIFO path names (by lstat or fstat): MPROC_EBADOBJ for anything
 * that is not a FIFO (a directory, a symlink, a file), as for every named
 * object; then the access rules. */
static int fifo_check(const struct stat *st, const mproc_access *a)
{
    if (!S_ISFIFO(st->st_mode))
        return MPROC_EBADOBJ;
    return a != NULL ? mproc__access_check_file(st, a) : 0;
}

/* open(2) of a FIFO path that must not be a symlink (O_NOFOLLOW), retrying
 * EINTR: the fd, or -errno (MPROC_EBADOBJ for a symlink). */
static int open_fifo(const char *path, int flags)
{
    int fd;
    do
        fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno == ELOOP ? MPROC_EBADOBJ : -errno;
    return fd;
}

int mproc_fifo_unlink(const char *path)
{
    if (path == NULL)
        return MPROC_EINVAL;
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    int rc = fifo_check(&st, NULL);
    if (rc < 0)
        return rc;
    if (unlink(path) < 0)
        return -errno;
    return 0;
}

/* Opens a write end of the FIFO a reader has open (rst: the reader's
 * fstat), for the reader to hold: the FIFO then always has a writer, so the
 * reader never sees EOF and waits for the next writer instead. The path is
 * opened again and must still name the same FIFO. */
static int hold_writer(const char *path, const struct stat *rst, int *out)
{
    int fd = open_fifo(path, O_WRONLY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : 0;
    if (rc == 0 && (st.st_dev != rst->st_dev || st.st_ino != rst->st_ino))
        rc = MPROC_EBADOBJ; /* the path was replaced meanwhile */
    if (rc < 0) {
        mproc__os_close(fd);
        return rc;
    }
    *out = fd;
    return 0;
}

int mproc_fifo_open(mproc_conn **out, const char *path, unsigned how,
                    const mproc_fifo_opts *opts, int64_t timeout_ms)
{
    mproc_fifo_opts def = MPROC_FIFO_OPTS_INIT;
    if (opts == NULL)
        opts = &def;
    if (path == NULL || out == NULL ||
        (how != MPROC_FIFO_READ && how != MPROC_FIFO_WRITE))
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc == 0)
        rc = mproc__access_valid(&opts->access) ? 0 : MPROC_EINVAL;
    if (rc < 0)
        return rc;
    /* Look before opening: opening some other special file could block or
     * have effects of its own, and opening a FIFO another user may write
     * lets that user's waiting writer in. */
    struct stat st;
    if (lstat(path, &st) < 0)
        return -errno;
    rc = fifo_check(&st, &opts->access);
    if (rc < 0)
        return rc;
    int flags = (how == MPROC_FIFO_READ ? O_RDONLY : O_WRONLY) | O_NONBLOCK;
    int fd, step = 1;
    /* ENXIO: a write end with no reader yet. Try again until the deadline;
     * the kernel's blocking open would not be bounded. */
    while ((fd = open_fifo(path, flags)) == -ENXIO) {
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        backoff(&step, &d);
    }
    if (fd < 0)
        return fd;
    /* The path may have been replaced between lstat and open. */
    if (fstat(fd, &st) < 0 || (rc = fifo_check(&st, &opts->access)) < 0 ||
        (rc = clear_nonblock(fd)) < 0) {
        if (rc == 0)
            rc = -errno;
        mproc__os_close(fd);
        return rc;
    }
    bool rd = how == MPROC_FIFO_READ;
    int hold = -1;
    mproc_conn *c;
    if (rd && opts->wait_for_writers)
        rc = hold_writer(path, &st, &hold);
    if (rc == 0)
        rc = mproc__conn_new(fd, rd ? MPROC__IO_FIFO : 0, opts->bytes, !rd, rd,
                             &c);
    if (rc < 0) {
        mproc__os_close(hold);
        mproc__os_close(fd);
        return rc;
    }
    mproc__conn_hold_writer(c, hold);
    if (!rd && !opts->bytes)
        mproc__conn_set_multi_writer(c, !opts->single_writer);
    *out = c;
    return 0;
}

/* ----- listener and client ----- */

struct mproc_listener {
    int fd;
    pid_t owner; /* the process that made the path; only it removes it */
    dev_t dev;
    ino_t ino;
    uid_t euid;          /* always allowed */
    mproc_access access; /* and these (a copy of opts.access) */
    bool abstract;       /* no file: nothing to remove */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    mproc__reg_node reg; /* in the registry of ends (internal/registry.h) */
};

static size_t listener_fds(const mproc__reg_node *n, int *out, size_t cap)
{
    if (cap > 0)
        out[0] = ((const mproc_listener *)n->obj)->fd;
    return 1;
}

/* In a child that does not keep the listener: accept then fails with
 * MPROC_EBADF, and close only frees (the child never owns the path). */
static void listener_sever(mproc__reg_node *n)
{
    mproc_listener *l = (mproc_listener *)n->obj;
    mproc__os_close(l->fd);
    l->fd = -1;
}

static const mproc__reg_ops listener_reg_ops = {listener_fds, listener_sever};

/* The socket address of path, and its length (*len). "@name" is name in
 * Linux's abstract namespace: sun_path holds a NUL byte, then name, and
 * the length says where it ends (no NUL after it). */
static int make_addr(const char *path, struct sockaddr_un *a, socklen_t *len)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t n = strlen(path);
    bool abstract = path[0] == '@';
    if (n == 0 || (abstract && n == 1))
        return MPROC_EINVAL;
    if (n >= sizeof a->sun_path + (abstract ? 1 : 0))
        return MPROC_ENAMETOOLONG;
    if (abstract) {
        memcpy(a->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        memcpy(a->sun_path, path, n + 1);
        *len = (socklen_t)sizeof *a;
    }
    return 0;
}

int mproc_listener_open(mproc_listener **out, const char *path,
                        const mproc_listener_opts *opts)
{
    mproc_listener_opts def = MPROC_LISTENER_OPTS_INIT;
    if (opts == NULL)
        opts = &def;
    if (path == NULL || out == NULL || opts->mode > 0777 || opts->backlog < 0 ||
        !mproc__access_valid(&opts->access))
        return MPROC_EINVAL;
    struct sockaddr_un a;
    socklen_t alen;
    int rc = make_addr(path, &a, &alen);
    if (rc < 0)
        return rc;
    mode_t mode = opts->mode != 0 ? (mode_t)opts->mode : 0600;
    mproc_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MPROC_ENOMEM;
    const mproc_access *acc = &opts->access;
    l->fd = -1;
    l->euid = geteuid();
    uid_t *uids = malloc((acc->n_uids + 1) * sizeof(uid_t));
    gid_t *gids = malloc((acc->n_gids + 1) * sizeof(gid_t));
    l->access.uids = uids;
    l->access.n_uids = acc->n_uids;
    l->access.gids = gids;
    l->access.n_gids = acc->n_gids;
    bool bound = false;
    struct stat st;
    if (uids == NULL || gids == NULL) {
        rc = MPROC_ENOMEM;
        goto fail;
    }
    if (acc->n_uids > 0)
        memcpy(uids, acc->uids, acc->n_uids * sizeof(uid_t));
    if (acc->n_gids > 0)
        memcpy(gids, acc->gids, acc->n_gids * sizeof(gid_t));
    l->abstract = path[0] == '@';
    memcpy(l->path, a.sun_path, sizeof l->path);
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0) {
        rc = -errno;
        goto fail;
    }
    /* The socket file takes the socket inode's mode at bind: set it first
     * so the path is never reachable with a wider mode, then again on the
     * path for filesystems that ignore it. An abstract name has no file
     * and no mode. */
    if ((!l->abstract && fchmod(l->fd, mode) < 0) ||
        bind(l->fd, (struct sockaddr *)&a, alen) < 0) {
        rc = -errno;
        goto fail;
    }
    bound = !l->abstract;
    if ((bound && (chmod(path, mode) < 0 || stat(path, &st) < 0)) ||
        listen(l->fd, opts->backlog > 0 ? opts->backlog : 64) < 0) {
        rc = -errno;
        goto fail;
    }
    if (bound) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    l->owner = getpid();
    mproc__reg_add(&l->reg, &listener_reg_ops, l);
    *out = l;
    return 0;
fail:
    if (bound)
        unlink(path);
    mproc__os_close(l->fd);
    free((void *)l->access.uids);
    free((void *)l->access.gids);
    free(l);
    return rc;
}

int mproc_listener_accept(mproc_listener *l, mproc_conn **out, mproc_peer *peer,
                          int64_t timeout_ms)
{
    if (l == NULL || out == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    int fd;
    for (;;) {
        fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            break;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = mproc__io_wait(l->fd, POLLIN, &d);
        if (rc < 0)
            return rc;
    }
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
        rc = -errno;
        mproc__os_close(fd);
        return rc;
    }
    if (peer != NULL) {
        peer->pid = cr.pid;
        peer->uid = cr.uid;
        peer->gid = cr.gid;
    }
    if (cr.uid != l->euid && !mproc__access_lists(&l->access, cr.uid, cr.gid)) {
        mproc__os_close(fd);
        return MPROC_EDENIED;
    }
    mproc_conn *c;
    rc = mproc__conn_new(fd, MPROC__IO_SOCK, false, true, true, &c);
    if (rc < 0) {
        mproc__os_close(fd);
        return rc;
    }
    *out = c;
    return 0;
}

int mproc_listener_fd(const mproc_listener *l)
{
    return l != NULL ? l->fd : -1;
}

void mproc_listener_close(mproc_listener *l)
{
    if (l == NULL)
        return;
    mproc__reg_remove(&l->reg);
    struct stat st;
    /* Remove the path only if it is still our socket, not one a later
     * listener put there, and only in the process that made it: a forked
     * child closing its inherited copy leaves the parent's path alone. */
    if (!l->abstract && l->owner == getpid() && stat(l->path, &st) == 0 &&
        st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
    mproc__os_close(l->fd);
    free((void *)l->access.uids);
    free((void *)l->access.gids);
    free(l);
}

int mproc_client_open(mproc_conn **out, const char *path, int64_t timeout_ms)
{
    if (path == NULL || out == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    struct sockaddr_un a;
    socklen_t alen;
    rc = make_addr(path, &a, &alen);
    if (rc < 0)
        return rc;
    int step = 1;
    for (;;) {
        /* Non-blocking connect: a full backlog gives EAGAIN instead of a
         * wait without bound. A Unix connect never returns EINPROGRESS. */
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -errno;
        if (connect(fd, (struct sockaddr *)&a, alen) == 0) {
            mproc_conn *c;
            rc = clear_nonblock(fd);
            if (rc == 0)
                rc = mproc__conn_new(fd, MPROC__IO_SOCK, false, true, true, &c);
            if (rc < 0) {
                mproc__os_close(fd);
                return rc;
            }
            *out = c;
            return 0;
        }
        rc = -errno;
        mproc__os_close(fd);
        if (rc == MPROC_EINTR)
            continue;
        if (rc != MPROC_ENOENT && rc != MPROC_ECONNREFUSED &&
            rc != MPROC_EAGAIN)
            return rc;
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        backoff(&step, &d);
    }
}

/* ----- waiting on many ----- */

int mproc_wait(mproc_wait_item *items, size_t n, int64_t timeout_ms)
{
    if ((items == NULL && n > 0) || (n == 0 && timeout_ms == MPROC_FOREVER))
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    struct pollfd stack[32];
    struct pollfd *p = stack;
    if (n > 32) {
        p = calloc(n, sizeof *p);
        if (p == NULL)
            return MPROC_ENOMEM;
    }
    bool early = false; /* something is ready without asking the kernel */
    for (size_t i = 0; i < n; i++) {
        mproc_wait_item *it = &items[i];
        it->ready = 0;
        int fd = it->conn != NULL ? mproc_conn_fd(it->conn) : it->fd;
        short ev = it->events != 0 ? it->events : MPROC_WAIT_READ;
        if (fd < 0 || (ev & ~(MPROC_WAIT_READ | MPROC_WAIT_WRITE)) != 0) {
            /* An end closed here by inherit_only has no fd any more. */
            rc = it->conn != NULL && fd < 0 ? MPROC_EBADF : MPROC_EINVAL;
            goto out;
        }
        p[i].fd = fd;
        p[i].events = (short)(((ev & MPROC_WAIT_READ) ? POLLIN : 0) |
                              ((ev & MPROC_WAIT_WRITE) ? POLLOUT : 0));
        p[i].revents = 0;
        if (it->conn != NULL && (ev & MPROC_WAIT_READ) &&
            mproc__conn_ready_buffered(it->conn)) {
            it->ready = MPROC_WAIT_READ;
            early = true;
        }
    }
    /* Ends that receive through a ring are waited for in slices: a recv
     * in another thread may take a bell rung for this wait, and a sender
     * may die between publishing and ringing. */
    bool rings = false;
    for (size_t i = 0; i < n; i++)
        if (items[i].conn != NULL && mproc__conn_ringed(items[i].conn))
            rings = true;
    int slice_ms = MPROC__RING_SLICE_MIN_MS;
    int count;
    for (;;) {
        int ms = early ? 0 : mproc__deadline_poll_ms(&d);
        if (rings && !early && (ms < 0 || ms > slice_ms))
            ms = slice_ms;
        int k = poll(p, (nfds_t)n, ms);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = -errno;
            goto out;
        }
        count = 0;
        for (size_t i = 0; i < n; i++) {
            mproc_wait_item *it = &items[i];
            short ev = it->events != 0 ? it->events : MPROC_WAIT_READ;
            short re = p[i].revents;
            if (re & POLLNVAL) {
                rc = MPROC_EBADF;
                goto out;
            }
            bool ringed = it->conn != NULL && (ev & MPROC_WAIT_READ) &&
                          mproc__conn_ringed(it->conn);
            /* A ring end's fd may hold a doorbell byte with no message
             * behind it: take it and look at the ring again. */
            if (ringed && (re & (POLLIN | POLLHUP | POLLERR)) &&
                !(it->ready & MPROC_WAIT_READ) &&
                mproc__conn_drain_doorbell(it->conn) &&
                !mproc__conn_ready_buffered(it->conn))
                re &= (short)~(POLLIN | POLLHUP | POLLERR);
            if (ringed && k == 0 && !(it->ready & MPROC_WAIT_READ)) {
                /* A slice with nothing: a dead sender, or a stolen bell. */
                mproc__conn_ring_recover(it->conn);
                if (mproc__conn_ready_buffered(it->conn))
                    it->ready |= MPROC_WAIT_READ;
            }
            if ((ev & MPROC_WAIT_READ) && (re & (POLLIN | POLLHUP | POLLERR)))
                it->ready |= MPROC_WAIT_READ;
            if ((ev & MPROC_WAIT_WRITE) && (re & (POLLOUT | POLLHUP | POLLERR)))
                it->ready |= MPROC_WAIT_WRITE;
            if (it->ready != 0)
                count++;
        }
        if (count > 0 || early || mproc__deadline_expired(&d))
            break;
        slice_ms = (int)mproc__slice_next(slice_ms, MPROC__RING_SLICE_MAX_MS);
    }
    rc = count > 0 ? count : MPROC_ETIMEDOUT;
out:
    if (rc < 0)
        for (size_t i = 0; i < n; i++)
            items[i].ready = 0;
    if (p != stack)
        free(p);
    return rc;
}
