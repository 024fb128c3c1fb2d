/*
 * A Barrier of 3: three processes do three phases of work and wait for each
 * other between phases; the last to arrive runs the barrier's action,
 * which here prints the phase that just ended.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

#define PARTIES 3
#define PHASES 3

static int phase_done(void *arg)
{
    int *phase = arg; /* each process's own copy: counts its own phases */
    printf("  all %d arrived: phase %d done\n", PARTIES, *phase);
    fflush(stdout);
    return 0;
}

static int phase;

static int worker(mproc_barrier *b, int id)
{
    for (phase = 1; phase <= PHASES; phase++) {
        printf("worker %d: phase %d working\n", id, phase);
        fflush(stdout);
        nanosleep(&(struct timespec){0, id * 20000000L}, NULL);
        uint32_t index;
        int rc = mproc_barrier_wait(b, 5000, &index);
        if (rc != 0) {
            fprintf(stderr, "barrier: %s\n", mproc_strerror(rc));
            return 1;
        }
    }
    return 0;
}

int main(void)
{
    mproc_barrier *b;
    mproc_barrier_opts opts = MPROC_BARRIER_OPTS_INIT;
    opts.action = phase_done;
    opts.action_arg = &phase;
    int rc = mproc_barrier_create(&b, NULL, PARTIES, &opts);
    if (rc != 0) {
        fprintf(stderr, "barrier: %s\n", mproc_strerror(rc));
        return 1;
    }
    pid_t pids[PARTIES - 1];
    for (int i = 0; i < PARTIES - 1; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(worker(b, i + 1));
    }
    int failed = worker(b, 0);
    for (int i = 0; i < PARTIES - 1; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    mproc_barrier_close(b);
    return failed;
}
