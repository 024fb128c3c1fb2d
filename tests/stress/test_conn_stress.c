/* Connections under kill -9: a sender killed at random points never makes
 * the receiver hang or accept a torn message; what it did receive is whole
 * and in order, and the end is reported as MPROC_ECLOSED or MPROC_EPROTO. */
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

#define ROUNDS 30
#define MAX_MSG (256 * 1024)

/* Message i: 8-byte sequence number, then bytes derived from it. */
static size_t msg_len(uint64_t i)
{
    /* Mostly small, sometimes larger than the pipe and the read buffer. */
    uint64_t h = i * 2654435761u;
    return (h % 7 == 0) ? 8 + (size_t)(h % MAX_MSG) : 8 + (size_t)(h % 200);
}

static void msg_fill(unsigned char *b, size_t len, uint64_t i)
{
    memcpy(b, &i, 8);
    for (size_t k = 8; k < len; k++)
        b[k] = (unsigned char)(k * 31u + i);
}

static int msg_ok(const unsigned char *b, size_t len, uint64_t i)
{
    uint64_t got;
    if (len != msg_len(i))
        return 0;
    memcpy(&got, b, 8);
    if (got != i)
        return 0;
    for (size_t k = 8; k < len; k++)
        if (b[k] != (unsigned char)(k * 31u + i))
            return 0;
    return 1;
}

static mproc_conn *g_send;

static int child_sends_forever(void *arg)
{
    (void)arg;
    unsigned char *b = malloc(MAX_MSG + 8);
    if (b == NULL)
        return 2;
    for (uint64_t i = 0;; i++) {
        size_t len = msg_len(i);
        msg_fill(b, len, i);
        if (mproc_conn_send(g_send, b, len, test_ms(20000)) != 0)
            return 3;
    }
}

static void kill_sender_at_random_points(bool duplex)
{
    srand((unsigned)getpid());
    unsigned char *b = malloc(MAX_MSG + 8);
    ck_assert_ptr_nonnull(b);
    int closed = 0, proto = 0;
    for (int round = 0; round < ROUNDS; round++) {
        mproc_conn *r, *w;
        ck_assert_int_eq(mproc_pipe(&r, &w, duplex), 0);
        g_send = w;
        mproc_process *p;
        ck_assert_int_eq(
            mproc_process_start(&p, child_sends_forever, NULL, NULL), 0);
        mproc_conn_close(w);
        /* Receive for a random while, then kill the sender wherever it is. */
        int64_t until = test_now_ms() + rand() % 20;
        uint64_t next = 0;
        size_t len;
        int rc = 0;
        while (test_now_ms() < until) {
            rc = mproc_conn_recv(r, b, MAX_MSG + 8, &len, test_ms(5000));
            ck_assert_msg(rc == 0, "round %d: recv %s before the kill", round,
                          mproc_errname(rc));
            ck_assert_msg(msg_ok(b, len, next), "round %d: message %llu torn",
                          round, (unsigned long long)next);
            next++;
        }
        ck_assert_int_eq(mproc_process_kill(p), 0);
        ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
        int code = 0;
        ck_assert_int_eq(mproc_process_exitcode(p, &code), 0);
        ck_assert_int_eq(code, -SIGKILL);
        mproc_process_destroy(p);
        /* Drain: whole messages in order, then a clear end, never a hang. */
        for (;;) {
            rc = mproc_conn_recv(r, b, MAX_MSG + 8, &len, test_ms(5000));
            if (rc != 0)
                break;
            ck_assert_msg(msg_ok(b, len, next), "round %d: message %llu torn",
                          round, (unsigned long long)next);
            next++;
        }
        ck_assert_msg(rc == MPROC_ECLOSED || rc == MPROC_EPROTO,
                      "round %d: end reported as %s", round, mproc_errname(rc));
        closed += rc == MPROC_ECLOSED;
        proto += rc == MPROC_EPROTO;
        mproc_conn_close(r);
    }
    free(b);
    /* Which ending a round sees depends on where the kill landed. */
    fprintf(stderr, "%s: %d rounds ended MPROC_ECLOSED, %d MPROC_EPROTO\n",
            duplex ? "duplex" : "pipe", closed, proto);
}

START_TEST(pipe_sender_killed_at_random_points_never_tears_or_hangs)
{
    kill_sender_at_random_points(false);
}
END_TEST

START_TEST(duplex_sender_killed_at_random_points_never_tears_or_hangs)
{
    kill_sender_at_random_points(true);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("conn_stress");
    TEST_ADD(s, pipe_sender_killed_at_random_points_never_tears_or_hangs);
    TEST_ADD(s, duplex_sender_killed_at_random_points_never_tears_or_hangs);
    return s;
}
