/*
 * A lock whose holder is killed, and recovered. A child takes a named lock,
 * starts changing two numbers that must stay equal, and is killed with
 * SIGKILL half-way. The parent's next acquire says MPROC_EOWNERDEAD
 * (Python's Lock would stay locked for ever); it repairs the numbers,
 * marks the lock consistent, and goes on.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "/mproc-example-lock-%d", (int)getpid());
    mproc_lock *lock;
    mproc_shm *mem;
    int rc = mproc_lock_create(&lock, name, NULL);
    if (rc == 0)
        rc = mproc_shm_create(&mem, NULL, sizeof(long[2]), NULL);
    if (rc != 0) {
        fprintf(stderr, "lock_owner_killed: %s\n", mproc_strerror(rc));
        return 1;
    }
    volatile long *pair = mproc_shm_addr(mem);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return 1;

    pid_t child = fork();
    if (child == 0) {
        mproc_lock *mine; /* an unrelated process would do just this */
        if (mproc_lock_open(&mine, name, NULL) != 0 ||
            mproc_lock_acquire(mine, 1000) != 0)
            _exit(1);
        pair[0] = 42; /* ... and dies before pair[1] = 42 */
        if (write(pipefd[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    if (read(pipefd[0], &c, 1) != 1)
        return 1;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("holder %d killed while holding the lock\n", (int)child);

    rc = mproc_lock_acquire(lock, 5000);
    printf("acquire: %s (%s)\n", mproc_errname(rc), mproc_strerror(rc));
    if (rc != MPROC_EOWNERDEAD)
        return 1;
    printf("state left behind: %ld != %ld, repairing\n", pair[0], pair[1]);
    pair[1] = pair[0];
    mproc_lock_consistent(lock);
    mproc_lock_release(lock);

    rc = mproc_lock_acquire(lock, 0);
    printf("next acquire: %s\n", mproc_errname(rc));
    mproc_lock_release(lock);
    mproc_shm_close(mem);
    mproc_lock_close(lock);
    mproc_lock_unlink(name);
    return rc == 0 ? 0 : 1;
}
