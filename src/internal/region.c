/*
 * Regions: anonymous or named shared mappings with a self-describing
 * header. Creation publishes the header last; opening checks it, waiting a
 * bounded time for a creator that is still filling it in.
 */
#include "internal/region.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mproc/error.h"
#include "os/os.h"

_Static_assert(sizeof(mproc__region_hdr) == MPROC__REGION_HDR,
               "region header is 64 bytes");

int mproc__region_name_check(const char *name)
{
    if (name == NULL || name[0] != '/' || name[1] == '\0')
        return MPROC_EINVAL;
    size_t n = strlen(name);
    if (n >= NAME_MAX)
        return MPROC_ENAMETOOLONG;
    if (strchr(name + 1, '/') != NULL)
        return MPROC_EINVAL;
    return 0;
}

static char *dup_name(const char *name)
{
    size_t n = strlen(name) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, name, n);
    return p;
}

int mproc__region_create(mproc__region *r, const char *name, uint32_t kind,
                         size_t payload_size, unsigned mode)
{
    if (r == NULL || payload_size == 0 || kind == MPROC__KIND_ANY ||
        kind > MPROC__KIND_MAX)
        return MPROC_EINVAL;
    if (payload_size > (size_t)INT64_MAX - MPROC__REGION_HDR)
        return MPROC_ENOMEM;
    if (name != NULL) {
        int rc = mproc__region_name_check(name);
        if (rc < 0)
            return rc;
    }
    if (mode == 0)
        mode = 0600;
    size_t total = MPROC__REGION_HDR + payload_size;
    int saved = errno;
    int rc = 0;
    int fd = -1;
    char *copy = NULL;
    void *m = MAP_FAILED;

    if (name != NULL) {
        copy = dup_name(name);
        if (copy == NULL) {
            rc = MPROC_ENOMEM;
            goto out;
        }
        fd =
            shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, (mode_t)mode);
        if (fd < 0) {
            rc = -errno;
            goto out;
        }
        /* shm_open applies the umask; the mode asked for is the mode. */
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
    atomic_store_explicit(&h->ready, 0, memory_order_relaxed);
    r->hdr = h;
    r->payload = (char *)m + MPROC__REGION_HDR;
    r->payload_size = payload_size;
    r->map_size = total;
    r->name = copy;
    copy = NULL;
out:
    if (rc < 0 && fd >= 0 && name != NULL)
        shm_unlink(name);
    mproc__os_close(fd);
    free(copy);
    errno = saved;
    return rc;
}

void mproc__region_publish(mproc__region *r)
{
    atomic_store_explicit(&r->hdr->ready, MPROC__REGION_READY,
                          memory_order_release);
}

void mproc__region_abandon(mproc__region *r)
{
    if (r == NULL || r->hdr == NULL)
        return;
    int saved = errno;
    if (r->name != NULL)
        shm_unlink(r->name);
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

int mproc__region_open(mproc__region *r, const char *name, uint32_t kind)
{
    if (r == NULL)
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
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    int64_t until = mproc__os_monotonic_ns() +
                    (int64_t)MPROC__REGION_OPEN_WAIT_MS * 1000000;
    for (;;) {
        struct stat st;
        if (fstat(fd, &st) < 0) {
            rc = -errno;
            goto out;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = MPROC_EBADOBJ;
            goto out;
        }
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
                    break;
                }
            }
        }
        if (mproc__os_monotonic_ns() >= until) {
            rc = MPROC_EBADOBJ;
            goto out;
        }
        nap_ms(2);
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
    r->payload = (char *)m + h->payload_offset;
    r->payload_size = (size_t)h->payload_size;
    r->map_size = len;
    r->name = copy;
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
    free(r->name);
    r->hdr = NULL;
    r->payload = NULL;
    r->name = NULL;
    errno = saved;
}

/* Reads a header by name without waiting. */
static int peek(const char *name, mproc__region_hdr *h, uint64_t *file_size)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof *h ||
             pread(fd, h, sizeof *h, 0) != (ssize_t)sizeof *h)
        rc = MPROC_EBADOBJ;
    else
        *file_size = (uint64_t)st.st_size;
    mproc__os_close(fd);
    return rc;
}

int mproc__region_unlink(const char *name, uint32_t kind)
{
    int rc = mproc__region_name_check(name);
    if (rc < 0)
        return rc;
    int saved = errno;
    mproc__region_hdr h;
    uint64_t fsize = 0;
    rc = peek(name, &h, &fsize);
    if (rc == 0) {
        if (h.magic != MPROC__REGION_MAGIC)
            rc = MPROC_EBADOBJ;
        else if (kind != MPROC__KIND_ANY)
            rc = check_hdr(&h, kind, fsize);
    }
    if (rc == 0 && shm_unlink(name) < 0)
        rc = -errno;
    errno = saved;
    return rc;
}

int mproc__region_list(int (*fn)(const char *name, uint32_t kind,
                                 uint32_t version, uint64_t size, void *arg),
                       void *arg)
{
    if (fn == NULL)
        return MPROC_EINVAL;
    int saved = errno;
    DIR *d = opendir("/dev/shm");
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
        mproc__region_hdr h;
        uint64_t fsize;
        if (peek(name, &h, &fsize) != 0 || h.magic != MPROC__REGION_MAGIC)
            continue;
        rc = fn(name, h.kind, h.version, h.size, arg);
    }
    closedir(d);
    errno = saved;
    return rc;
}
