/*
 * Regions: anonymous or named shared mappings with a self-describing
 * header. A named region is built in an unnamed file (or under a temporary
 * name nobody can predict) and linked to its real name once complete, so
 * openers never see it half-made; opening checks who owns the file, then
 * the header (and still waits a bounded time for files made by other
 * means).
 */
#include "internal/region.h"

#include "internal/access.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mproc/error.h"
#include "os/os.h"
#include "os/task.h"

/* Where shm_open keeps its names (glibc: the tmpfs at /dev/shm). */
#define SHM_DIR "/dev/shm"
#define PATH_LEN (sizeof SHM_DIR + NAME_MAX + 1)
#define TEMPLATE_LEN (sizeof MPROC__REGION_TEMPLATE - 1)
/* Names a template or a temporary name tries before giving up: with 62^6
 * names per template, running out means the names are nearly all taken. */
#define NAME_TRIES 64

static bool no_tmpfile; /* test hook */

_Static_assert(sizeof(mproc__region_hdr) == MPROC__REGION_HDR,
               "region header is 64 bytes");

void mproc__region_test_no_tmpfile(bool on)
{
    no_tmpfile = on;
}

int mproc__region_name_check(const char *name)
{
    if (name == NULL || name[0] != '/' || name[1] == '\0')
        return MPROC_EINVAL;
    size_t n = strlen(name);
    if (n >= NAME_MAX)
        return MPROC_ENAMETOOLONG;
    if (strchr(name + 1, '/') != NULL || strcmp(name, "/.") == 0 ||
        strcmp(name, "/..") == 0)
        return MPROC_EINVAL;
    return 0;
}

static void shm_path(char *buf, const char *name)
{
    snprintf(buf, PATH_LEN, SHM_DIR "%s", name);
}

/* Random letters and digits into buf[0..n). Without the kernel's random
 * bytes the clock and a counter still make them unique in this process,
 * though no longer unpredictable. */
static void random_chars(char *buf, size_t n)
{
    static const char set[] = "abcdefghijklmnopqrstuvwxyz"
                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static _Atomic uint64_t counter;
    unsigned char b[32];
    if (n > sizeof b)
        n = sizeof b;
    if (mproc__os_random(b, n) < 0) {
        uint64_t x = (uint64_t)mproc__os_monotonic_ns() ^
                     (atomic_fetch_add(&counter, 1) << 40) ^
                     ((uint64_t)getpid() << 20);
        for (size_t i = 0; i < n; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = set[b[i] % (sizeof set - 1)];
}

static bool is_template(const char *name)
{
    size_t n = strlen(name);
    return n > TEMPLATE_LEN &&
           strcmp(name + n - TEMPLATE_LEN, MPROC__REGION_TEMPLATE) == 0;
}

/* The creator's pid when name is a temporary name "<prefix><pid>-...",
 * else 0. */
static pid_t tmp_creator(const char *name)
{
    size_t k = sizeof MPROC__REGION_TMP_PREFIX - 1;
    if (strncmp(name, MPROC__REGION_TMP_PREFIX, k) != 0)
        return 0;
    const char *p = name + k;
    long pid = 0;
    if (*p < '0' || *p > '9')
        return 0;
    while (*p >= '0' && *p <= '9' && pid <= INT_MAX)
        pid = pid * 10 + (*p++ - '0');
    if (*p != '-' || pid <= 0 || pid > INT_MAX)
        return 0;
    return (pid_t)pid;
}

/* A temporary name whose creator is gone: a creation killed half way. */
static bool tmp_stale(pid_t creator)
{
    return creator > 0 && !mproc__os_task_alive(creator, 0);
}

static char *dup_name(const char *name)
{
    size_t n = strlen(name) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, name, n);
    return p;
}

/* The calling process's start time, which tells it from a later process
 * with the same pid; 0 when unknown. */
static uint64_t process_start(void)
{
    pid_t tid = mproc__os_self_tid();
    pid_t pid = mproc__os_self_pid();
    if (tid == pid)
        return mproc__os_self_start(); /* cached */
    uint64_t st = 0;
    return mproc__os_task_start(pid, &st) == 0 ? st : 0;
}

/* Makes the file a named region is built in: an unnamed one (*tmp stays
 * NULL), or one under a fresh temporary name (*tmp, malloc'ed). Returns the
 * fd or -errno. */
static int make_file(unsigned mode, char **tmp)
{
    int fd = no_tmpfile ? -EOPNOTSUPP : mproc__os_tmpfile(SHM_DIR, mode);
    if (fd != -EOPNOTSUPP)
        return fd;
    char *t = malloc(NAME_MAX);
    if (t == NULL)
        return MPROC_ENOMEM;
    /* The pid tells a lister whether the creation may still finish; the
     * random part keeps anyone from taking the name in advance. */
    int n =
        snprintf(t, NAME_MAX, MPROC__REGION_TMP_PREFIX "%d-", (int)getpid());
    fd = MPROC_EEXIST;
    for (int i = 0; i < NAME_TRIES && fd == MPROC_EEXIST; i++) {
        random_chars(t + n, 16);
        t[n + 16] = '\0';
        fd = shm_open(t, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, (mode_t)mode);
        if (fd < 0)
            fd = -errno;
    }
    if (fd < 0) {
        free(t);
        /* Not the caller's name that exists: say so differently. */
        return fd == MPROC_EEXIST ? MPROC_EAGAIN : fd;
    }
    *tmp = t;
    return fd;
}

int mproc__region_create(mproc__region *r, const char *name, uint32_t kind,
                         size_t payload_size, unsigned mode)
{
    if (r == NULL || payload_size == 0 || kind == MPROC__KIND_ANY ||
        kind > MPROC__KIND_MAX || mode > 0777)
        return MPROC_EINVAL;
    if (payload_size > (size_t)INT64_MAX - MPROC__REGION_HDR)
        return MPROC_ENOMEM;
    bool templ = false;
    if (name != NULL) {
        int rc = mproc__region_name_check(name);
        if (rc < 0)
            return rc;
        if (strncmp(name, MPROC__REGION_TMP_PREFIX,
                    sizeof MPROC__REGION_TMP_PREFIX - 1) == 0)
            return MPROC_EINVAL;
        templ = is_template(name);
    }
    if (mode == 0)
        mode = 0600;
    size_t total = MPROC__REGION_HDR + payload_size;
    int saved = errno;
    int rc = 0;
    int fd = -1;
    char *copy = NULL;
    char *tmp = NULL;
    void *m = MAP_FAILED;

    if (name != NULL) {
        /* Fail early when the name is taken; publish's link decides. */
        char path[PATH_LEN];
        struct stat st;
        shm_path(path, name);
        if (!templ && lstat(path, &st) == 0) {
            rc = MPROC_EEXIST;
            goto out;
        }
        copy = dup_name(name);
        if (copy == NULL) {
            rc = MPROC_ENOMEM;
            goto out;
        }
        fd = make_file(mode, &tmp);
        if (fd < 0) {
            rc = fd;
            goto out;
        }
        /* The umask narrowed the mode; the mode asked for is the mode. */
        if (fchmod(fd, (mode_t)mode) < 0 || ftruncate(fd, (off_t)total) < 0) {
            rc = -errno;
            goto out;
        }
        /* Reserve the pages now so a full /dev/shm is an error here, not
         * a SIGBUS later. */
        int e = posix_fallocate(fd, 0, (off_t)total);
        if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {
            rc = -e;
            goto out;
        }
        m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    } else {
        m = mmap(NULL, total, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    if (m == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    mproc__region_hdr *h = m;
    h->magic = MPROC__REGION_MAGIC;
    h->version = MPROC__REGION_VERSION;
    h->kind = kind;
    h->flags = 0;
    h->size = total;
    h->payload_offset = MPROC__REGION_HDR;
    h->payload_size = payload_size;
    h->creator_pid = (uint32_t)mproc__os_self_pid();
    h->reserved = 0;
    h->creator_start = process_start();
    atomic_store_explicit(&h->ready, 0, memory_order_relaxed);
    r->hdr = h;
    r->payload = (char *)m + MPROC__REGION_HDR;
    r->payload_size = payload_size;
    r->map_size = total;
    r->name = copy;
    r->tmp_name = tmp;
    r->templ = templ;
    /* An unnamed file is named through its fd at publish. */
    r->fd = tmp == NULL ? fd : -1;
    if (tmp == NULL)
        fd = -1;
    copy = NULL;
    tmp = NULL;
out:
    if (rc < 0 && tmp != NULL)
        shm_unlink(tmp);
    mproc__os_close(fd);
    free(copy);
    free(tmp);
    errno = saved;
    return rc;
}

/* Links the file being published to r->name: 0 or -errno. */
static int link_to_name(mproc__region *r)
{
    char to[PATH_LEN];
    shm_path(to, r->name);
    if (r->fd >= 0)
        return mproc__os_link_fd(r->fd, to);
    char from[PATH_LEN];
    shm_path(from, r->tmp_name);
    return linkat(AT_FDCWD, from, AT_FDCWD, to, 0) < 0 ? -errno : 0;
}

int mproc__region_publish(mproc__region *r)
{
    atomic_store_explicit(&r->hdr->ready, MPROC__REGION_READY,
                          memory_order_release);
    if (r->fd < 0 && r->tmp_name == NULL)
        return 0;
    int saved = errno;
    int rc;
    size_t n = strlen(r->name);
    /* Atomic, and refuses an existing name (a creator that won a race). */
    for (int i = 0;; i++) {
        if (r->templ)
            random_chars(r->name + n - TEMPLATE_LEN, TEMPLATE_LEN);
        rc = link_to_name(r);
        if (rc != MPROC_EEXIST || !r->templ || i + 1 >= NAME_TRIES)
            break;
    }
    if (rc == 0) {
        if (r->tmp_name != NULL)
            shm_unlink(r->tmp_name);
        free(r->tmp_name);
        r->tmp_name = NULL;
        mproc__os_close(r->fd);
        r->fd = -1;
        r->templ = false;
    }
    errno = saved;
    return rc;
}

void mproc__region_abandon(mproc__region *r)
{
    if (r == NULL || r->hdr == NULL)
        return;
    int saved = errno;
    if (r->tmp_name != NULL)
        shm_unlink(r->tmp_name);
    errno = saved;
    mproc__region_close(r);
}

static void nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Checks a header against the kind asked for. */
static int check_hdr(const mproc__region_hdr *h, uint32_t kind,
                     uint64_t file_size)
{
    if (h->magic != MPROC__REGION_MAGIC)
        return MPROC_EBADOBJ;
    if (h->version != MPROC__REGION_VERSION)
        return MPROC_EVERSION;
    if (kind != MPROC__KIND_ANY && h->kind != kind)
        return MPROC_EBADOBJ;
    if (h->size > file_size || h->payload_offset < MPROC__REGION_HDR ||
        h->payload_offset > h->size ||
        h->payload_size > h->size - h->payload_offset)
        return MPROC_EBADOBJ;
    return 0;
}

/* shm_open's errors that mean "something else is under this name", for a
 * name already checked: a symlink (glibc opens with O_NOFOLLOW: ELOOP) or
 * a directory (EISDIR, which glibc reports as EINVAL). */
static int open_error(int e)
{
    return e == ELOOP || e == EISDIR || e == EINVAL ? MPROC_EBADOBJ : -e;
}

int mproc__region_open_sized(mproc__region *r, const char *name, uint32_t kind,
                             size_t min_payload, const mproc_access *access)
{
    int rc = mproc__region_open(r, name, kind, access);
    if (rc == 0 && r->payload_size < min_payload) {
        mproc__region_close(r);
        rc = MPROC_EBADOBJ;
    }
    return rc;
}

int mproc__region_open(mproc__region *r, const char *name, uint32_t kind,
                       const mproc_access *access)
{
    static const mproc_access defaults = MPROC_ACCESS_INIT;
    if (access == NULL)
        access = &defaults;
    if (r == NULL || !mproc__access_valid(access))
        return MPROC_EINVAL;
    int rc = mproc__region_name_check(name);
    if (rc < 0)
        return rc;
    int saved = errno;
    char *copy = dup_name(name);
    if (copy == NULL)
        return MPROC_ENOMEM;
    void *m = MAP_FAILED;
    size_t len = 0;
    mproc__region_hdr seen; /* the header as checked */
    /* O_NONBLOCK: a FIFO planted under the name must not hang us. */
    int fd = shm_open(name, O_RDWR | O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0) {
        rc = open_error(errno);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = MPROC_EBADOBJ;
        goto out;
    }
    /* Before anything is mapped: a mapping is what a writer could make
     * fault. The owner of an open file cannot change (but by root). */
    rc = mproc__access_check_file(&st, access);
    if (rc < 0)
        goto out;
    int64_t until = mproc__os_monotonic_ns() +
                    (int64_t)MPROC__REGION_OPEN_WAIT_MS * 1000000;
    for (;;) {
        if (st.st_size >= (off_t)MPROC__REGION_HDR) {
            mproc__region_hdr h;
            ssize_t n = pread(fd, &h, sizeof h, 0);
            if (n == (ssize_t)sizeof h) {
                uint32_t ready = atomic_load(&h.ready);
                /* A creator writes the magic right after sizing the file;
                 * anything else non-zero is somebody else's file. */
                if (h.magic != 0 && h.magic != MPROC__REGION_MAGIC) {
                    rc = MPROC_EBADOBJ;
                    goto out;
                }
                if (h.magic == MPROC__REGION_MAGIC &&
                    ready == MPROC__REGION_READY) {
                    rc = check_hdr(&h, kind, (uint64_t)st.st_size);
                    if (rc < 0)
                        goto out;
                    len = (size_t)h.size;
                    seen = h;
                    break;
                }
            }
        }
        if (mproc__os_monotonic_ns() >= until) {
            rc = MPROC_EBADOBJ;
            goto out;
        }
        nap_ms(2);
        if (fstat(fd, &st) < 0) {
            rc = -errno;
            goto out;
        }
    }
    m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    mproc__region_hdr *h = m;
    /* Pairs with the creator's release store: the payload is complete. */
    if (atomic_load_explicit(&h->ready, memory_order_acquire) !=
            MPROC__REGION_READY ||
        check_hdr(h, kind, len) < 0) {
        munmap(m, len);
        rc = MPROC_EBADOBJ;
        goto out;
    }
    r->hdr = h;
    /* From the copy that was checked: the mapped header is writable by
     * every opener, and what is used to index must not change after. */
    r->payload = (char *)m + seen.payload_offset;
    r->payload_size = (size_t)seen.payload_size;
    r->map_size = len;
    r->name = copy;
    r->tmp_name = NULL;
    r->fd = -1;
    r->templ = false;
    copy = NULL;
out:
    mproc__os_close(fd);
    free(copy);
    errno = saved;
    return rc;
}

void mproc__region_close(mproc__region *r)
{
    if (r == NULL || r->hdr == NULL)
        return;
    int saved = errno;
    munmap(r->hdr, r->map_size);
    mproc__os_close(r->fd);
    free(r->name);
    free(r->tmp_name);
    r->hdr = NULL;
    r->payload = NULL;
    r->name = NULL;
    r->tmp_name = NULL;
    r->fd = -1;
    errno = saved;
}

/* Reads what there is of a header by name, without waiting: the bytes read
 * (the rest of *h zeroed) or -errno; MPROC_EBADOBJ for a symlink, a
 * directory or another kind of file. */
static ssize_t peek(const char *name, mproc__region_hdr *h, struct stat *st)
{
    memset(h, 0, sizeof *h);
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0)
        return open_error(errno);
    ssize_t rc;
    if (fstat(fd, st) < 0)
        rc = -errno;
    else if (!S_ISREG(st->st_mode))
        rc = MPROC_EBADOBJ;
    else if ((rc = pread(fd, h, sizeof *h, 0)) < 0)
        rc = -errno;
    mproc__os_close(fd);
    return rc;
}

/* The bytes of a header that hold the magic and the version, the kind. */
#define HAS_VERSION (offsetof(mproc__region_hdr, version) + 4)
#define HAS_KIND (offsetof(mproc__region_hdr, kind) + 4)

int mproc__region_unlink(const char *name, uint32_t kind)
{
    int rc = mproc__region_name_check(name);
    if (rc < 0)
        return rc;
    int saved = errno;
    pid_t creator = tmp_creator(name);
    if (creator > 0) {
        /* A creation killed half way leaves this, whatever it holds. */
        rc = tmp_stale(creator) ? 0 : MPROC_EBUSY;
        if (rc == 0 && shm_unlink(name) < 0)
            rc = -errno;
        errno = saved;
        return rc;
    }
    mproc__region_hdr h;
    struct stat st;
    ssize_t n = peek(name, &h, &st);
    if (n < 0)
        rc = (int)n;
    else if (n < (ssize_t)sizeof h.magic || h.magic != MPROC__REGION_MAGIC)
        rc = MPROC_EBADOBJ;
    else if (kind != MPROC__KIND_ANY) {
        /* Only what says which object it is: a damaged one (truncated,
         * sizes scribbled) is still removed by its kind's unlink. */
        if (n < (ssize_t)HAS_KIND)
            rc = MPROC_EBADOBJ;
        else if (h.version != MPROC__REGION_VERSION)
            rc = MPROC_EVERSION;
        else if (h.kind != kind)
            rc = MPROC_EBADOBJ;
    }
    if (rc == 0 && shm_unlink(name) < 0)
        rc = -errno;
    errno = saved;
    return rc;
}

/* Fills info for a name whose header carries the magic (n bytes read). */
static void describe(mproc__region_info *info, const mproc__region_hdr *h,
                     ssize_t n, const struct stat *st)
{
    info->file_size = (uint64_t)st->st_size;
    info->owner = st->st_uid;
    info->version = n >= (ssize_t)HAS_VERSION ? h->version : 0;
    info->kind = n >= (ssize_t)HAS_KIND ? h->kind : MPROC__KIND_ANY;
    info->size = h->size;
    info->creator = 0;
    info->creator_alive = -1;
    info->state =
        n < (ssize_t)sizeof *h ? MPROC__REGION_DAMAGED : MPROC__REGION_OK;
    if (info->version != MPROC__REGION_VERSION)
        return; /* another layout: nothing more can be read */
    if (h->ready != MPROC__REGION_READY ||
        check_hdr(h, MPROC__KIND_ANY, info->file_size) < 0)
        info->state = MPROC__REGION_DAMAGED;
    pid_t pid = (pid_t)h->creator_pid;
    if (pid > 0) {
        info->creator = pid;
        info->creator_alive = mproc__os_task_alive(pid, h->creator_start);
    }
}

int mproc__region_list(int (*fn)(const mproc__region_info *info, void *arg),
                       void *arg)
{
    if (fn == NULL)
        return MPROC_EINVAL;
    int saved = errno;
    DIR *d = opendir(SHM_DIR);
    if (d == NULL) {
        int rc = -errno;
        errno = saved;
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    char name[NAME_MAX + 2];
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= NAME_MAX)
            continue;
        name[0] = '/';
        strcpy(name + 1, e->d_name);
        mproc__region_info info = {.name = name, .creator_alive = -1};
        pid_t creator = tmp_creator(name);
        if (creator > 0) {
            /* Another process's creation under way, or a stale one. */
            char path[PATH_LEN];
            struct stat st;
            shm_path(path, name);
            if (!tmp_stale(creator) || lstat(path, &st) != 0)
                continue;
            info.kind = MPROC__KIND_ANY;
            info.size = info.file_size = (uint64_t)st.st_size;
            info.owner = st.st_uid;
            info.creator = creator;
            info.creator_alive = 0;
            info.state = MPROC__REGION_UNFINISHED;
            rc = fn(&info, arg);
            continue;
        }
        mproc__region_hdr h;
        struct stat st;
        ssize_t n = peek(name, &h, &st);
        if (n < (ssize_t)sizeof h.magic || h.magic != MPROC__REGION_MAGIC)
            continue;
        describe(&info, &h, n, &st);
        rc = fn(&info, arg);
    }
    closedir(d);
    errno = saved;
    return rc;
}
