/* Processes under load: many threads starting, killing and joining children
 * at once, and children killed at random points of their failure report. */
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
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].rounds = 150;
        w[i].seed = (unsigned)(i + 1) * 7919u;
        w[i].errors = 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, start_join_worker, &w[i]),
                         0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].errors, 0);
    }
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
    pthread_t t[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i].rounds = 100;
        w[i].seed = (unsigned)(i + 3) * 104729u;
        w[i].errors = 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, kill_race_worker, &w[i]),
                         0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(w[i].errors, 0);
    }
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("process_stress");
    TEST_ADD(s, threads_start_and_join_children_concurrently);
    TEST_ADD(s, children_killed_around_their_failure_report_never_hang_a_join);
    return s;
}
