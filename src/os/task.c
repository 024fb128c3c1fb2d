/*
 * Thread identity and liveness from /proc, with a per-thread cache that a
 * forked child notices without any fork handler: a process-wide word in a
 * MADV_WIPEONFORK page reads 0 in a new child, which makes every cached
 * identity stale.
 */
#include "os/task.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The generation page: word 0 holds the pid of the process that last
 * stamped it; a forked child sees 0 and stamps its own pid. */
_Atomic(_Atomic uint32_t *) mproc__os_gen_page;
#define gen_page mproc__os_gen_page

MPROC__OS_TLS mproc__os_self_cache mproc__os_self;
#define cached_gen mproc__os_self.gen
#define cached_tid mproc__os_self.tid
#define cached_pid mproc__os_self.pid
#define cached_start mproc__os_self.start

static _Atomic uint32_t *generation_word(void)
{
    _Atomic uint32_t *p = atomic_load_explicit(&gen_page, memory_order_acquire);
    if (p != NULL)
        return p;
    long pg = sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (madvise(m, (size_t)pg, MADV_WIPEONFORK) != 0) {
        munmap(m, (size_t)pg);
        return NULL;
    }
    _Atomic(uint32_t) *expected = NULL;
    if (!atomic_compare_exchange_strong(&gen_page, &expected,
                                        (_Atomic uint32_t *)m)) {
        munmap(m, (size_t)pg);
        return expected;
    }
    return (_Atomic uint32_t *)m;
}

void mproc__os_self_refresh(void)
{
    int saved = errno;
    pid_t pid = getpid();
    _Atomic uint32_t *g = generation_word();
    uint32_t gen = 0;
    if (g != NULL) {
        gen = atomic_load(g);
        if (gen == 0) {
            uint32_t zero = 0;
            atomic_compare_exchange_strong(g, &zero, (uint32_t)pid);
            gen = atomic_load(g);
        }
    }
    cached_pid = pid;
    cached_tid = (pid_t)syscall(SYS_gettid);
    cached_start = 0;
    uint64_t st;
    if (mproc__os_task_start(cached_tid, &st) == 0)
        cached_start = st;
    /* Without a generation page (mmap failed) nothing is cached. */
    cached_gen = gen;
    errno = saved;
}

static void ensure(void)
{
    mproc__os_self_ensure();
}

pid_t mproc__os_self_tid(void)
{
    ensure();
    return cached_tid;
}

pid_t mproc__os_self_pid(void)
{
    ensure();
    return cached_pid;
}

uint64_t mproc__os_self_start(void)
{
    ensure();
    return cached_start;
}

void mproc__os_self_ident(pid_t *tid, uint64_t *start)
{
    ensure();
    *tid = cached_tid;
    *start = cached_start;
}

/* Reads /proc/<tid>/stat: state (field 3) and starttime (field 22). */
static int read_stat(pid_t tid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -ESRCH;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip to the last
     * ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return -EIO;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -EIO;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

int mproc__os_task_start(pid_t tid, uint64_t *start)
{
    char state;
    uint64_t st;
    int saved = errno;
    int rc = read_stat(tid, &state, &st);
    errno = saved;
    if (rc == -ENOENT)
        return -ESRCH;
    if (rc < 0)
        return rc;
    if (state == 'Z' || state == 'X' || state == 'x')
        return -ESRCH;
    *start = st;
    return 0;
}

int mproc__os_task_alive(pid_t tid, uint64_t start)
{
    if (tid <= 0)
        return 0;
    uint64_t st;
    int rc = mproc__os_task_start(tid, &st);
    if (rc == -ESRCH)
        return 0;
    if (rc < 0) {
        /* /proc unreadable (hidepid, not mounted): fall back to a signal
         * probe, which cannot tell a zombie from a live process. */
        int saved = errno;
        int r = kill(tid, 0);
        int e = errno;
        errno = saved;
        return r == 0 || e != ESRCH;
    }
    if (start != 0 && st != start)
        return 0;
    return 1;
}

bool mproc__os_holder_gone(const _Atomic uint32_t *id_word, uint32_t id,
                           pid_t tid, const _Atomic uint64_t *start_word,
                           uint64_t start)
{
    if (mproc__os_task_alive(tid, start))
        return false;
    return start == 0 ||
           (atomic_load(start_word) == start && atomic_load(id_word) == id);
}
