/* Processes under load: many threads starting, killing and joining children
 * at once, children killed at random points of their failure report, and
 * workers that inherit only their own pipe while other threads make more. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

#define THREADS 4

static int child_returns_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

static int child_fails_after(void *arg)
{
    useconds_t us = (useconds_t)(intptr_t)arg;
    if (us > 0)
        usleep(us);
    mproc_fail(MPROC_EBROKEN, "failed after %u us", (unsigned)us);
    return 0;
}

struct worker {
    int rounds;
    unsigned seed;
    int errors; /* checks that failed, counted (threads never ck_assert) */
};

/* Runs fn in THREADS threads, each with its own rounds and seed (from
 * seed_off and seed_mul), and checks that none counted an error. */
static void run_threads(void *(*fn)(void *), int rounds, unsigned seed_off,
                        unsigned seed_mul)
{
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].rounds = rounds;
        w[i].seed = ((unsigned)i + seed_off) * seed_mul;
        w[i].errors = 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, fn, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].errors, 0);
    }
}

/* Starts children with known results, joins them, checks each result. */
static void *start_join_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        int want = (int)(rand_r(&w->seed) % 4); /* 0..3 */
        mproc_process *p = NULL;
        if (mproc_process_start(&p, child_returns_arg, (void *)(intptr_t)want,
                                NULL) != 0) {
            w->errors++;
            continue;
        }
        int code = -1;
        if (mproc_process_join(p, test_ms(5000)) != 0 ||
            mproc_process_exitcode(p, &code) != 0 || code != want)
            w->errors++;
        const mproc_failure *f = mproc_process_error(p);
        if ((want == 0) != (f == NULL))
            w->errors++;
        if (f != NULL && (f->error != want || !f->from_child))
            w->errors++;
        mproc_process_destroy(p);
    }
    return NULL;
}

START_TEST(threads_start_and_join_children_concurrently)
{
    run_threads(start_join_worker, 150, 1, 7919u);
}
END_TEST

/* Kills children at random moments around their mproc_fail(): every join
 * returns promptly and gives either the child's whole record or a kill. */
static void *kill_race_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        intptr_t us = (intptr_t)(rand_r(&w->seed) % 3000);
        useconds_t before_kill = (useconds_t)(rand_r(&w->seed) % 3000);
        mproc_process *p = NULL;
        if (mproc_process_start(&p, child_fails_after, (void *)us, NULL) != 0) {
            w->errors++;
            continue;
        }
        usleep(before_kill);
        if (mproc_process_kill(p) != 0)
            w->errors++;
        int code = 0;
        if (mproc_process_join(p, test_ms(5000)) != 0 ||
            mproc_process_exitcode(p, &code) != 0)
            w->errors++;
        const mproc_failure *f = mproc_process_error(p);
        if (f == NULL || (code != 1 && code != -SIGKILL))
            w->errors++;
        else if (code == 1 && (!f->from_child || f->error != MPROC_EBROKEN ||
                               strncmp(f->message, "failed after", 12) != 0))
            w->errors++;
        else if (code == -SIGKILL && f->signal != SIGKILL)
            w->errors++;
        else if (f->from_child && f->error != MPROC_EBROKEN)
            w->errors++; /* a record, when there is one, is whole */
        mproc_process_destroy(p);
    }
    return NULL;
}

START_TEST(children_killed_around_their_failure_report_never_hang_a_join)
{
    run_threads(kill_race_worker, 100, 3, 104729u);
}
END_TEST

/* A worker that must see its pipe's EOF: it gets one message, then EOF once
 * its starter closes the send end, whatever other threads' pipes existed
 * when it was forked. */
static int child_reads_one_then_eof(void *arg)
{
    mproc_conn *r = arg;
    char buf[8];
    size_t len;
    if (mproc_conn_recv(r, buf, sizeof buf, &len, 30000) != 0)
        return 10;
    return mproc_conn_recv(r, buf, sizeof buf, &len, 30000) == MPROC_ECLOSED
               ? 0
               : 11;
}

static void *inherit_only_worker(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        mproc_conn *r, *s;
        int rc = rand_r(&w->seed) % 2 ? mproc_pipe(&r, &s, false, NULL)
                                      : mproc_pipe_kernel(&r, &s, false);
        if (rc != 0) {
            w->errors++;
            continue;
        }
        mproc_process_opts o = MPROC_PROCESS_OPTS_INIT;
        o.inherit_only = true;
        o.keep = &r;
        o.n_keep = 1;
        mproc_process *p = NULL;
        rc = mproc_process_start(&p, child_reads_one_then_eof, r, &o);
        mproc_conn_close(r);
        if (rc != 0) {
            mproc_conn_close(s);
            w->errors++;
            continue;
        }
        if (mproc_conn_send(s, "m", 1, test_ms(5000)) != 0)
            w->errors++;
        mproc_conn_close(s);
        int code = -1;
        if (mproc_process_join(p, test_ms(10000)) != 0 ||
            mproc_process_exitcode(p, &code) != 0 || code != 0) {
            w->errors++;
            mproc_process_kill(p);
            mproc_process_join(p, MPROC_FOREVER);
        }
        mproc_process_destroy(p);
    }
    return NULL;
}

/* Threads start workers with inherit_only while the others make and close
 * their pipes: each worker sees EOF as soon as its own starter closes. */
START_TEST(inherit_only_workers_see_eof_while_other_threads_make_pipes)
{
    run_threads(inherit_only_worker, 60, 1, 104729u);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("process_stress");
    TEST_ADD(s, threads_start_and_join_children_concurrently);
    TEST_ADD(s, children_killed_around_their_failure_report_never_hang_a_join);
    TEST_ADD(s, inherit_only_workers_see_eof_while_other_threads_make_pipes);
    return s;
}
