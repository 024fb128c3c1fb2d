/* Error codes: names, messages, and the timeout convention's deadline. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal/deadline.h"
#include "mproc.h"
#include "testlib.h"

START_TEST(strerror_names_every_library_code)
{
#define X(name, value, msg)                                                    \
    ck_assert_str_eq(mproc_strerror(value), msg);                              \
    ck_assert_str_eq(mproc_errname(value), "MPROC_" #name);
    MPROC_ERRNO_MAP(X)
#undef X
}
END_TEST

/* Each text must be true wherever its code is returned: a message refused
 * by a size limit (a FIFO's atomic write), a FIFO path that is not a FIFO
 * (no mproc object at all), a refused FIFO owner, a join from a process
 * that did not start the child, a log's full sink table, a transfer cut
 * off by a timeout, the next message being of the other kind. */
START_TEST(texts_fit_every_place_their_code_is_returned)
{
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_EMSGSIZE), "limit"));
    ck_assert_ptr_null(strstr(mproc_strerror(MPROC_EBADOBJ), "mproc"));
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_EDENIED), "owner"));
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_ENOTOWNER), "own it"));
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_ENOSPC), "table"));
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_EBROKEN), "cut off"));
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_ESTATE), "message"));
    ck_assert_ptr_nonnull(strstr(mproc_strerror(MPROC_EPROTO), "cut-off"));
}
END_TEST

START_TEST(system_codes_are_negative_errno)
{
    ck_assert_int_eq(MPROC_ETIMEDOUT, -ETIMEDOUT);
    ck_assert_int_eq(MPROC_EINVAL, -EINVAL);
    ck_assert_int_eq(MPROC_ENOENT, -ENOENT);
    ck_assert_int_lt(MPROC_ECLOSED, MPROC_ERR_BASE);
    ck_assert_int_lt(MPROC_EOWNERDEAD, MPROC_ERR_BASE);
    ck_assert_int_ne(MPROC_EPROTO, -EPROTO);
}
END_TEST

START_TEST(strerror_answers_unknown_codes)
{
    ck_assert_str_eq(mproc_strerror(0), "success");
    ck_assert_str_eq(mproc_errname(0), "MPROC_OK");
    ck_assert_str_eq(mproc_strerror(12345), "unknown error");
    ck_assert_str_eq(mproc_strerror(MPROC_ERR_BASE - 999), "unknown error");
    ck_assert_str_eq(mproc_errname(MPROC_ERR_BASE - 999), "MPROC_EUNKNOWN");
    /* An errno without its own entry still gets the system's words. */
    ck_assert_str_eq(mproc_errname(-EXDEV), "EXDEV");
    ck_assert_ptr_nonnull(mproc_strerror(-EXDEV));
    ck_assert_str_ne(mproc_strerror(-EXDEV), "unknown error");
}
END_TEST

START_TEST(deadline_rejects_negative_timeouts)
{
    mproc__deadline d = {42};
    ck_assert_int_eq(mproc__deadline_init(&d, -2), MPROC_EINVAL);
    ck_assert_int_eq(d.at_ns, 42);
    ck_assert_int_eq(mproc__deadline_init(&d, MPROC_FOREVER), 0);
    ck_assert(mproc__deadline_is_forever(&d));
    ck_assert_int_eq(mproc__deadline_poll_ms(&d), -1);
    ck_assert(!mproc__deadline_expired(&d));
}
END_TEST

START_TEST(deadline_zero_is_already_expired)
{
    mproc__deadline d;
    ck_assert_int_eq(mproc__deadline_init(&d, 0), 0);
    ck_assert(mproc__deadline_expired(&d));
    ck_assert_int_eq(mproc__deadline_poll_ms(&d), 0);
}
END_TEST

START_TEST(deadline_counts_down)
{
    mproc__deadline d;
    ck_assert_int_eq(mproc__deadline_init(&d, 200), 0);
    int ms = mproc__deadline_poll_ms(&d);
    ck_assert_int_gt(ms, 0);
    ck_assert_int_le(ms, 200);
    usleep(250 * 1000);
    ck_assert(mproc__deadline_expired(&d));
    ck_assert_int_eq(mproc__deadline_init(&d, INT64_MAX), 0);
    ck_assert(!mproc__deadline_expired(&d));
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("error");
    TEST_ADD(s, strerror_names_every_library_code);
    TEST_ADD(s, texts_fit_every_place_their_code_is_returned);
    TEST_ADD(s, system_codes_are_negative_errno);
    TEST_ADD(s, strerror_answers_unknown_codes);
    TEST_ADD(s, deadline_rejects_negative_timeouts);
    TEST_ADD(s, deadline_zero_is_already_expired);
    TEST_ADD(s, deadline_counts_down);
    return s;
}
