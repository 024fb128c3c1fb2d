/* Logging: fields formatted like Python's logging, level filtering, sinks,
 * long records, pipes, and whole records from many processes at once. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

/* A logger writing to a fresh pipe; *rd is the read end. */
static mproc_log *pipe_logger(const char *format, int level, int *rd)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = format;
    o.level = level;
    o.name = "testlog";
    mproc_log *lg = NULL;
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    mproc_log_sink_opts so = MPROC_LOG_SINK_OPTS_INIT;
    so.close_fd = true;
    ck_assert_int_eq(mproc_log_add_fd(lg, p[1], &so), 0);
    *rd = p[0];
    return lg;
}

/* Destroys the logger (closing the write end) and reads what it wrote. */
static size_t drain(mproc_log *lg, int rd, char *buf, size_t n)
{
    mproc_log_destroy(lg);
    size_t len = test_read_to_eof(rd, buf, n);
    close(rd);
    return len;
}

START_TEST(log_formats_every_python_field)
{
    int rd;
    mproc_log *lg = pipe_logger(
        "%(name)s|%(levelname)s|%(levelno)d|%(message)s|%(process)d|"
        "%(processName)s|%(thread)d|%(filename)s|%(lineno)d|%(funcName)s|"
        "%(pathname)s|%(module)s|%%|%(msecs)03d|%(created)f|%(asctime)s|"
        "%(relativeCreated)d",
        MPROC_LOG_DEBUG, &rd);
    time_t before = time(NULL);
    int line = __LINE__ + 1;
    ck_assert_int_eq(mproc_log_info(lg, "hello %d", 42), 0);
    char buf[2048];
    drain(lg, rd, buf, sizeof buf);

    char expect[1024];
    snprintf(expect, sizeof expect,
             "testlog|INFO|20|hello "
             "42|%d|MainProcess|%ld|test_log.c|%d|%s|%s|test_log|%%|",
             (int)getpid(), (long)syscall(SYS_gettid), line, __func__,
             __FILE__);
    ck_assert_msg(strncmp(buf, expect, strlen(expect)) == 0, "got %s want %s",
                  buf, expect);
    const char *rest = buf + strlen(expect);
    int msecs, relative;
    double created;
    int y, mo, d, h, mi, s, ams;
    int consumed = 0;
    ck_assert_int_eq(sscanf(rest, "%3d|%lf|%4d-%2d-%2d %2d:%2d:%2d,%3d|%d%n",
                            &msecs, &created, &y, &mo, &d, &h, &mi, &s, &ams,
                            &relative, &consumed),
                     10);
    ck_assert_str_eq(rest + consumed, "\n");
    ck_assert_int_eq(msecs, ams);
    ck_assert(rest[3] == '|'); /* %03d always gives three digits */
    ck_assert(created >= (double)before - 1 &&
              created <= (double)time(NULL) + 1);
    ck_assert_int_ge(relative, 0);
    ck_assert_int_lt(relative, 10000);
    /* The asctime is the local time of created. */
    time_t t = (time_t)created;
    struct tm tm;
    localtime_r(&t, &tm);
    ck_assert_int_eq(y, tm.tm_year + 1900);
    ck_assert_int_eq(mo, tm.tm_mon + 1);
    ck_assert_int_eq(d, tm.tm_mday);
    ck_assert_int_eq(h, tm.tm_hour);
    ck_assert_int_eq(mi, tm.tm_min);
    ck_assert_int_eq(s, tm.tm_sec);
}
END_TEST

START_TEST(log_pads_fields_like_python)
{
    int rd;
    mproc_log *lg =
        pipe_logger("[%(levelname)-8s][%(levelno)5d][%(levelname).3s]"
                    "[%(lineno)x][%(process)s][%(created).3f]"
                    "[%(message)6s]",
                    MPROC_LOG_DEBUG, &rd);
    int line = __LINE__ + 1;
    ck_assert_int_eq(mproc_log_warning(lg, "%s", "ab"), 0);
    char buf[512];
    drain(lg, rd, buf, sizeof buf);
    char expect[256];
    snprintf(expect, sizeof expect, "[WARNING ][   30][WAR][%x][%d][", line,
             (int)getpid());
    ck_assert_msg(strncmp(buf, expect, strlen(expect)) == 0, "got %s", buf);
    const char *created = buf + strlen(expect);
    const char *dot = strchr(created, '.');
    ck_assert_ptr_nonnull(dot);
    ck_assert_str_eq(dot + 4, "][    ab]\n");
}
END_TEST

START_TEST(log_names_nonstandard_levels_like_python)
{
    int rd;
    mproc_log *lg =
        pipe_logger("%(levelname)s %(levelno)d %(message)s", 1, &rd);
    ck_assert_int_eq(mproc_log_write(lg, 25, "x"), 0);
    ck_assert_int_eq(mproc_log_write(lg, MPROC_LOG_CRITICAL, "y"), 0);
    ck_assert_int_eq(mproc_log_write(lg, MPROC_LOG_DEBUG, "z"), 0);
    ck_assert_int_eq(mproc_log_write(lg, MPROC_LOG_ERROR, "w"), 0);
    char buf[512];
    drain(lg, rd, buf, sizeof buf);
    ck_assert_str_eq(buf, "Level 25 25 x\nCRITICAL 50 y\nDEBUG 10 z\n"
                          "ERROR 40 w\n");
}
END_TEST

START_TEST(log_write_without_location_says_unknown)
{
    int rd;
    mproc_log *lg =
        pipe_logger("%(filename)s:%(module)s:%(lineno)d:%(funcName)s",
                    MPROC_LOG_DEBUG, &rd);
    ck_assert_int_eq(mproc_log_write(lg, MPROC_LOG_INFO, "m"), 0);
    ck_assert_int_eq(
        mproc_log_write_at(lg, MPROC_LOG_INFO, "a/b/c.c", 7, "fn", "m"), 0);
    char buf[512];
    drain(lg, rd, buf, sizeof buf);
    ck_assert_str_eq(buf, "(unknown file):(unknown module):0:(unknown "
                          "function)\nc.c:c:7:fn\n");
}
END_TEST

START_TEST(log_datefmt_replaces_asctime)
{
    int rd;
    mproc_log *lg = pipe_logger("%(message)s", MPROC_LOG_DEBUG, &rd);
    ck_assert_int_eq(
        mproc_log_set_format(lg, "<%(asctime)s> %(message)s", "%Y/%m"), 0);
    ck_assert_int_eq(mproc_log_info(lg, "m"), 0);
    char buf[512];
    drain(lg, rd, buf, sizeof buf);
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char expect[64];
    snprintf(expect, sizeof expect, "<%04d/%02d> m\n", tm.tm_year + 1900,
             tm.tm_mon + 1);
    ck_assert_str_eq(buf, expect);
}
END_TEST

START_TEST(log_set_format_takes_effect_for_later_records)
{
    int rd;
    mproc_log *lg = pipe_logger("A %(message)s", MPROC_LOG_DEBUG, &rd);
    ck_assert_int_eq(mproc_log_info(lg, "1"), 0);
    ck_assert_int_eq(
        mproc_log_set_format(lg, "B %(message)s %% %(name)s", NULL), 0);
    ck_assert_int_eq(mproc_log_info(lg, "2"), 0);
    /* A bad format changes nothing. */
    ck_assert_int_eq(mproc_log_set_format(lg, "C %(bogus)s", NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_info(lg, "3"), 0);
    char buf[512];
    drain(lg, rd, buf, sizeof buf);
    ck_assert_str_eq(buf, "A 1\nB 2 % testlog\nB 3 % testlog\n");
}
END_TEST

START_TEST(log_rejects_bad_formats_when_set)
{
    static const char *bad[] = {
        "%(nosuch)s",   "%(message)d", "%(levelno)f",   "%(created)s",
        "100%",         "%d",          "%(message",     "%(message)",
        "%(message)*s", "%(msecs)q",   "%(name)12345s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mproc_log_opts o = MPROC_LOG_OPTS_INIT;
        o.format = bad[i];
        mproc_log *lg = (mproc_log *)&o; /* must stay untouched */
        ck_assert_msg(mproc_log_create(&lg, &o) == MPROC_EINVAL, "%s", bad[i]);
        ck_assert_ptr_eq(lg, (mproc_log *)&o);
    }
    char big[MPROC_LOG_FORMAT_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = big;
    mproc_log *lg = NULL;
    ck_assert_int_eq(mproc_log_create(&lg, &o), MPROC_EINVAL);
    ck_assert_ptr_null(lg);
    /* These are fine: "%%" alone, an empty format, every flag. */
    static const char *good[] = {"%%", "", "%(message)-#0+ 5.2s",
                                 "%(levelno)o%(thread)X%(msecs)e%(created)G"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        o.format = good[i];
        ck_assert_msg(mproc_log_create(&lg, &o) == 0, "%s", good[i]);
        mproc_log_destroy(lg);
    }
}
END_TEST

START_TEST(log_drops_records_below_the_threshold)
{
    int rd;
    mproc_log *lg =
        pipe_logger("%(levelname)s %(message)s", MPROC_LOG_WARNING, &rd);
    ck_assert(!mproc_log_is_enabled(lg, MPROC_LOG_INFO));
    ck_assert(mproc_log_is_enabled(lg, MPROC_LOG_WARNING));
    ck_assert(mproc_log_is_enabled(lg, MPROC_LOG_CRITICAL));
    ck_assert_int_eq(mproc_log_info(lg, "no"), 0);
    ck_assert_int_eq(mproc_log_debug(lg, "no"), 0);
    ck_assert_int_eq(mproc_log_warning(lg, "w"), 0);
    ck_assert_int_eq(mproc_log_error(lg, "e"), 0);
    ck_assert_int_eq(mproc_log_set_level(lg, MPROC_LOG_DEBUG), 0);
    ck_assert_int_eq(mproc_log_level(lg), MPROC_LOG_DEBUG);
    ck_assert(mproc_log_is_enabled(lg, MPROC_LOG_DEBUG));
    ck_assert_int_eq(mproc_log_debug(lg, "d"), 0);
    ck_assert_int_eq(mproc_log_set_level(lg, MPROC_LOG_OFF), 0);
    ck_assert(!mproc_log_is_enabled(lg, MPROC_LOG_CRITICAL));
    ck_assert_int_eq(mproc_log_critical(lg, "no"), 0);
    ck_assert_int_eq(mproc_log_set_level(lg, MPROC_LOG_NOTSET), 0);
    ck_assert(mproc_log_is_enabled(lg, 1));
    ck_assert_int_eq(mproc_log_write(lg, 1, "one"), 0);
    char buf[512];
    drain(lg, rd, buf, sizeof buf);
    ck_assert_str_eq(buf, "WARNING w\nERROR e\nDEBUG d\nLevel 1 one\n");
}
END_TEST

START_TEST(log_sink_level_filters_per_sink)
{
    int rd_all, rd_err;
    mproc_log *lg = pipe_logger("%(message)s", MPROC_LOG_DEBUG, &rd_all);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    mproc_log_sink_opts so = MPROC_LOG_SINK_OPTS_INIT;
    so.level = MPROC_LOG_ERROR;
    ck_assert_int_eq(mproc_log_add_fd(lg, p[1], &so), 0);
    rd_err = p[0];
    ck_assert_int_eq(mproc_log_info(lg, "i"), 0);
    ck_assert_int_eq(mproc_log_error(lg, "e"), 0);
    mproc_log_destroy(lg);
    close(p[1]); /* borrowed: still open after destroy, the caller closes */
    char buf[256];
    test_read_to_eof(rd_all, buf, sizeof buf);
    ck_assert_str_eq(buf, "i\ne\n");
    test_read_to_eof(rd_err, buf, sizeof buf);
    ck_assert_str_eq(buf, "e\n");
    close(rd_all);
    close(rd_err);
}
END_TEST

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    *len = test_read_to_eof(fd, buf, (size_t)st.st_size + 1);
    close(fd);
    return buf;
}

START_TEST(log_file_sink_appends_and_creates_0600)
{
    char path[256];
    test_path(path, sizeof path, "app.log");
    FILE *fp = fopen(path, "w");
    fputs("old\n", fp);
    fclose(fp);
    chmod(path, 0644);

    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = "%(levelname)s:%(message)s";
    o.level = MPROC_LOG_DEBUG;
    for (int round = 0; round < 2; round++) {
        mproc_log *lg;
        ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
        ck_assert_int_eq(mproc_log_add_file(lg, path, NULL), 0);
        ck_assert_int_eq(mproc_log_info(lg, "round %d", round), 0);
        mproc_log_destroy(lg);
    }
    size_t len;
    char *text = slurp(path, &len);
    ck_assert_str_eq(text, "old\nINFO:round 0\nINFO:round 1\n");
    free(text);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0644); /* an existing file keeps it */

    /* truncate empties it first; a new file gets 0600. */
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    mproc_log_sink_opts so = MPROC_LOG_SINK_OPTS_INIT;
    so.truncate = true;
    ck_assert_int_eq(mproc_log_add_file(lg, path, &so), 0);
    char path2[256];
    test_path(path2, sizeof path2, "new.log");
    ck_assert_int_eq(mproc_log_add_file(lg, path2, NULL), 0);
    ck_assert_int_eq(mproc_log_error(lg, "fresh"), 0);
    mproc_log_destroy(lg);
    text = slurp(path, &len);
    ck_assert_str_eq(text, "ERROR:fresh\n");
    free(text);
    text = slurp(path2, &len);
    ck_assert_str_eq(text, "ERROR:fresh\n");
    free(text);
    ck_assert_int_eq(stat(path2, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    unlink(path);
    unlink(path2);
}
END_TEST

#define NPROC 8
#define NREC 10000

/* The payload of record seq of child c: its length and letters vary so a
 * torn or merged line cannot pass. */
static void payload(int c, int seq, char *buf)
{
    int n = 10 + (seq * 7 + c) % 90;
    for (int i = 0; i < n; i++)
        buf[i] = (char)('a' + (seq + c + i) % 26);
    buf[n] = '\0';
}

START_TEST(log_keeps_records_from_8_processes_whole)
{
    char path[256];
    test_path(path, sizeof path, "many.log");
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = "%(asctime)s %(process)d %(levelname)s %(message)s";
    o.level = MPROC_LOG_INFO;
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    ck_assert_int_eq(mproc_log_add_file(lg, path, NULL), 0);

    pid_t pids[NPROC];
    for (int c = 0; c < NPROC; c++) {
        pids[c] = fork();
        ck_assert_int_ge(pids[c], 0);
        if (pids[c] == 0) {
            char pl[128];
            for (int seq = 0; seq < NREC; seq++) {
                payload(c, seq, pl);
                if (mproc_log_info(lg, "c=%d seq=%d %s", c, seq, pl) != 0)
                    _exit(1);
            }
            _exit(0);
        }
    }
    for (int c = 0; c < NPROC; c++)
        ck_assert_int_eq(test_wait_status(pids[c]), 0);
    mproc_log_destroy(lg);

    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    static unsigned char seen[NPROC][NREC];
    memset(seen, 0, sizeof seen);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lines = 0;
    /* Checked with plain ifs: a Check assertion per line costs more than
     * the whole logging run. The first bad line is reported. */
    long bad = 0;
    char first_bad[256] = "";
    while ((n = getline(&line, &cap, fp)) > 0) {
        lines++;
        int pid = 0, c = -1, seq = -1, off = 0;
        char date[16], clock[16], pl[128], want[128];
        int got = sscanf(line, "%15s %15s %d INFO c=%d seq=%d %127s%n", date,
                         clock, &pid, &c, &seq, pl, &off);
        bool ok = line[n - 1] == '\n' && got == 6 && off == n - 1 && c >= 0 &&
                  c < NPROC && seq >= 0 && seq < NREC && pid == pids[c];
        if (ok) {
            payload(c, seq, want);
            ok = strcmp(pl, want) == 0 && !seen[c][seq];
            seen[c][seq] = 1;
        }
        if (!ok && bad++ == 0)
            snprintf(first_bad, sizeof first_bad, "line %ld: %s", lines, line);
    }
    free(line);
    fclose(fp);
    ck_assert_msg(bad == 0, "%ld bad lines, first %s", bad, first_bad);
    ck_assert_int_eq(lines, (long)NPROC * NREC);
    unlink(path);
}
END_TEST

struct thread_arg {
    mproc_log *lg;
    int id;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int i = 0; i < 2000; i++)
        if (mproc_log_info(a->lg, "t=%d i=%d %s", a->id, i,
                           "................................") != 0)
            return p;
    return NULL;
}

START_TEST(log_keeps_records_from_threads_whole)
{
    char path[256];
    test_path(path, sizeof path, "threads.log");
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = "%(thread)d %(message)s";
    o.level = MPROC_LOG_INFO;
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    ck_assert_int_eq(mproc_log_add_file(lg, path, NULL), 0);
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){lg, i};
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &args[i]),
                         0);
    }
    /* Reconfiguring while they write is safe. */
    ck_assert_int_eq(mproc_log_set_format(lg, "%(thread)d %(message)s", NULL),
                     0);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        ck_assert_ptr_null(r);
    }
    mproc_log_destroy(lg);
    FILE *fp = fopen(path, "r");
    char line[256];
    int count[4] = {0};
    while (fgets(line, sizeof line, fp) != NULL) {
        int tid, t, i, off = 0;
        ck_assert_int_eq(sscanf(line, "%d t=%d i=%d %*s%n", &tid, &t, &i, &off),
                         3);
        ck_assert_str_eq(line + off, "\n");
        ck_assert(t >= 0 && t < 4);
        ck_assert_int_eq(i, count[t]); /* one thread's records keep order */
        count[t]++;
    }
    fclose(fp);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(count[i], 2000);
    unlink(path);
}
END_TEST

START_TEST(log_truncates_long_records_with_a_mark)
{
    size_t big = 3 * MPROC_LOG_RECORD_MAX;
    char *msg = malloc(big + 1);
    memset(msg, 'x', big);
    msg[big] = '\0';
    char path[256];
    test_path(path, sizeof path, "long.log");
    mproc_log *lg;
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = "%(levelname)s %(message)s";
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    ck_assert_int_eq(mproc_log_add_file(lg, path, NULL), 0);
    ck_assert_int_eq(mproc_log_error(lg, "%s", msg), 0); /* truncated */
    msg[5000] = '\0';
    ck_assert_int_eq(mproc_log_error(lg, "%s", msg), 0); /* heap, whole */
    ck_assert_int_eq(mproc_log_error(lg, "%s", "short"), 0);
    mproc_log_destroy(lg);
    free(msg);

    size_t len;
    char *text = slurp(path, &len);
    size_t mark = strlen(MPROC_LOG_TRUNCATED_MARK);
    size_t first = MPROC_LOG_RECORD_MAX;
    ck_assert_uint_eq(len, first + 6 + 5000 + 1 + 12);
    ck_assert(strncmp(text, "ERROR xxx", 9) == 0);
    ck_assert(memcmp(text + first - mark, MPROC_LOG_TRUNCATED_MARK, mark) == 0);
    ck_assert(memchr(text, '\n', first - 1) == NULL); /* one line */
    ck_assert(strncmp(text + first, "ERROR xxx", 9) == 0);
    ck_assert(text[first + 6 + 5000] == '\n');
    ck_assert_str_eq(text + first + 6 + 5000 + 1, "ERROR short\n");
    free(text);
    unlink(path);
}
END_TEST

START_TEST(log_truncates_exactly_at_the_record_limit)
{
    char path[256];
    test_path(path, sizeof path, "edge.log");
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = "%(message)s";
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    ck_assert_int_eq(mproc_log_add_file(lg, path, NULL), 0);
    size_t max = MPROC_LOG_RECORD_MAX;
    char *msg = malloc(max + 1);
    memset(msg, 'y', max);
    msg[max] = '\0';
    ck_assert_int_eq(mproc_log_error(lg, "%s", msg), 0); /* max + 1: cut */
    msg[max - 1] = '\0';
    ck_assert_int_eq(mproc_log_error(lg, "%s", msg), 0); /* max: whole */
    mproc_log_destroy(lg);
    free(msg);
    size_t len;
    char *text = slurp(path, &len);
    ck_assert_uint_eq(len, 2 * max);
    size_t mark = strlen(MPROC_LOG_TRUNCATED_MARK);
    ck_assert(memcmp(text + max - mark, MPROC_LOG_TRUNCATED_MARK, mark) == 0);
    ck_assert(text[max - mark - 1] == 'y');
    ck_assert(text[2 * max - 2] == 'y' && text[2 * max - 1] == '\n');
    ck_assert(memchr(text + max, '\n', max - 1) == NULL);
    free(text);
    unlink(path);
}
END_TEST

START_TEST(log_grows_records_past_the_stack_buffer)
{
    int rd;
    mproc_log *lg = pipe_logger("%(levelname)3000s|%(message)-3000s|%(lineno)d",
                                MPROC_LOG_DEBUG, &rd);
    int line = __LINE__ + 1;
    ck_assert_int_eq(mproc_log_info(lg, "m"), 0);
    static char buf[16384];
    size_t len = drain(lg, rd, buf, sizeof buf);
    char tail[32];
    int tn = snprintf(tail, sizeof tail, "|%d\n", line);
    ck_assert_uint_eq(len, 3000 + 1 + 3000 + (size_t)tn);
    ck_assert(strncmp(buf + 2996, "INFO|m ", 7) == 0);
    ck_assert(buf[2995] == ' ' && buf[6000] == ' ');
    ck_assert_str_eq(buf + 6001, tail);
}
END_TEST

/* Children write 3000-byte records (under PIPE_BUF) to one pipe at once. */
START_TEST(log_record_to_pipe_arrives_whole)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.format = "%(process)d %(message)s";
    o.level = MPROC_LOG_INFO;
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(&lg, &o), 0);
    ck_assert_int_eq(mproc_log_add_fd(lg, p[1], NULL), 0);
    enum { KIDS = 4, RECS = 200, BODY = 3000 };
    pid_t pids[KIDS];
    for (int c = 0; c < KIDS; c++) {
        pids[c] = fork();
        ck_assert_int_ge(pids[c], 0);
        if (pids[c] == 0) {
            close(p[0]);
            static char body[BODY + 1];
            memset(body, 'a' + c, BODY);
            for (int i = 0; i < RECS; i++)
                if (mproc_log_info(lg, "%d %s", i, body) != 0)
                    _exit(1);
            _exit(0);
        }
    }
    mproc_log_destroy(lg);
    close(p[1]);
    FILE *fp = fdopen(p[0], "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int count[KIDS] = {0};
    while ((n = getline(&line, &cap, fp)) > 0) {
        int pid, i, off = 0;
        ck_assert_int_eq(sscanf(line, "%d %d %n", &pid, &i, &off), 2);
        int c = -1;
        for (int k = 0; k < KIDS; k++)
            if (pids[k] == pid)
                c = k;
        ck_assert_int_ge(c, 0);
        ck_assert_int_eq(i, count[c]);
        count[c]++;
        ck_assert_int_eq(n - off, BODY + 1);
        int bad = 0;
        for (int k = 0; k < BODY; k++)
            bad += line[off + k] != 'a' + c;
        ck_assert_int_eq(bad, 0);
    }
    free(line);
    fclose(fp);
    for (int c = 0; c < KIDS; c++) {
        ck_assert_int_eq(test_wait_status(pids[c]), 0);
        ck_assert_int_eq(count[c], RECS);
    }
}
END_TEST

START_TEST(log_pipe_without_reader_is_epipe_not_sigpipe)
{
    int rd;
    mproc_log *lg = pipe_logger("%(message)s", MPROC_LOG_DEBUG, &rd);
    close(rd);
    /* SIGPIPE's default action would kill this process. */
    ck_assert_int_eq(mproc_log_error(lg, "nobody reads"), MPROC_EPIPE);
    ck_assert_int_eq(mproc_log_error(lg, "still nobody"), MPROC_EPIPE);
    sigset_t pending;
    sigpending(&pending);
    ck_assert(!sigismember(&pending, SIGPIPE));
    mproc_log_destroy(lg);
}
END_TEST

START_TEST(log_reports_write_failures_and_tries_every_sink)
{
    int rd;
    mproc_log *lg = pipe_logger("%(message)s", MPROC_LOG_DEBUG, &rd);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
    ck_assert_int_eq(mproc_log_add_fd(lg, p[1], NULL), 0);
    /* Fill the non-blocking pipe: the next record cannot be written. */
    char chunk[4096];
    memset(chunk, 'z', sizeof chunk);
    while (write(p[1], chunk, sizeof chunk) > 0)
        ;
    /* A healthy sink after the failing one must still get the record. */
    int q[2];
    ck_assert_int_eq(pipe2(q, O_CLOEXEC), 0);
    ck_assert_int_eq(mproc_log_add_fd(lg, q[1], NULL), 0);
    ck_assert_int_eq(mproc_log_error(lg, "r1"), MPROC_EAGAIN);
    /* The sinks before and after the full one both got it. */
    mproc_log_destroy(lg);
    char buf[64];
    test_read_to_eof(rd, buf, sizeof buf);
    ck_assert_str_eq(buf, "r1\n");
    close(q[1]);
    test_read_to_eof(q[0], buf, sizeof buf);
    ck_assert_str_eq(buf, "r1\n");
    close(rd);
    close(q[0]);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(log_rejects_bad_inputs)
{
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(NULL, NULL), MPROC_EINVAL);
    mproc_log_opts o = MPROC_LOG_OPTS_INIT;
    o.level = -1;
    ck_assert_int_eq(mproc_log_create(&lg, &o), MPROC_EINVAL);
    o.level = MPROC_LOG_OFF + 1;
    ck_assert_int_eq(mproc_log_create(&lg, &o), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_create(&lg, NULL), 0);
    ck_assert_int_eq(mproc_log_level(lg), MPROC_LOG_WARNING);

    /* NULL logger everywhere. */
    ck_assert_int_eq(mproc_log_write(NULL, MPROC_LOG_ERROR, "x"), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_error(NULL, "x"), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_set_level(NULL, 10), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_level(NULL), MPROC_EINVAL);
    ck_assert(!mproc_log_is_enabled(NULL, MPROC_LOG_CRITICAL));
    ck_assert_int_eq(mproc_log_set_format(NULL, "%(message)s", NULL),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_add_file(NULL, "/tmp/x", NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_add_fd(NULL, 2, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_add_stderr(NULL, NULL), MPROC_EINVAL);
    mproc_log_destroy(NULL);

    /* Bad levels and formats; nothing changes. */
    ck_assert_int_eq(mproc_log_write(lg, 0, "x"), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_write(lg, 100, "x"), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_write(lg, -5, "x"), MPROC_EINVAL);
    ck_assert(!mproc_log_is_enabled(lg, 100));
    ck_assert_int_eq(mproc_log_set_level(lg, 101), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_set_level(lg, -1), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_level(lg), MPROC_LOG_WARNING);
    ck_assert_int_eq(mproc_log_set_format(lg, NULL, NULL), MPROC_EINVAL);
    char longdate[300];
    memset(longdate, 'Y', sizeof longdate - 1);
    longdate[sizeof longdate - 1] = '\0';
    ck_assert_int_eq(mproc_log_set_format(lg, "%(asctime)s", longdate),
                     MPROC_EINVAL);
    const char *nofmt = NULL;
    ck_assert_int_eq(
        mproc_log_write_at(lg, MPROC_LOG_ERROR, NULL, 0, NULL, nofmt, 0),
        MPROC_EINVAL);

    /* Bad sinks. */
    ck_assert_int_eq(mproc_log_add_file(lg, NULL, NULL), MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_add_fd(lg, -1, NULL), MPROC_EINVAL);
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    ck_assert_int_eq(mproc_log_add_fd(lg, p[1], NULL), MPROC_EBADF);
    ck_assert_int_eq(mproc_log_add_fd(lg, p[0], NULL), MPROC_EBADF); /* ro */
    mproc_log_sink_opts so = MPROC_LOG_SINK_OPTS_INIT;
    so.level = 500;
    ck_assert_int_eq(mproc_log_add_stderr(lg, &so), MPROC_EINVAL);
    so = (mproc_log_sink_opts)MPROC_LOG_SINK_OPTS_INIT;
    so.mode = 010000;
    ck_assert_int_eq(mproc_log_add_file(lg, "/nonexistent-dir/x", &so),
                     MPROC_EINVAL);
    ck_assert_int_eq(mproc_log_add_file(lg, "/nonexistent-dir/x", NULL),
                     MPROC_ENOENT);
    for (int i = 0; i < MPROC_LOG_SINKS_MAX; i++)
        ck_assert_int_eq(mproc_log_add_stderr(lg, NULL), 0);
    ck_assert_int_eq(mproc_log_add_stderr(lg, NULL), MPROC_ENOSPC);
    close(p[0]);
    mproc_log_destroy(lg);
}
END_TEST

START_TEST(log_destroy_closes_only_what_it_owns)
{
    int a[2], b[2];
    ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
    mproc_log *lg;
    ck_assert_int_eq(mproc_log_create(&lg, NULL), 0);
    mproc_log_sink_opts so = MPROC_LOG_SINK_OPTS_INIT;
    so.close_fd = true;
    ck_assert_int_eq(mproc_log_add_fd(lg, a[1], &so), 0);
    ck_assert_int_eq(mproc_log_add_fd(lg, b[1], NULL), 0);
    ck_assert_int_eq(mproc_log_add_stderr(lg, &so), 0); /* never owned */
    mproc_log_destroy(lg);
    ck_assert_int_eq(fcntl(a[1], F_GETFD), -1);
    ck_assert_int_ge(fcntl(b[1], F_GETFD), 0);
    ck_assert_int_ge(fcntl(STDERR_FILENO, F_GETFD), 0);
    close(a[0]);
    close(b[0]);
    close(b[1]);
}
END_TEST

START_TEST(log_keeps_the_callers_errno)
{
    int rd;
    mproc_log *lg = pipe_logger("%(message)s", MPROC_LOG_DEBUG, &rd);
    errno = ERANGE;
    ck_assert_int_eq(mproc_log_error(lg, "x"), 0);
    ck_assert_int_eq(errno, ERANGE);
    close(rd);
    errno = ENOENT;
    ck_assert_int_eq(mproc_log_error(lg, "x"), MPROC_EPIPE);
    ck_assert_int_eq(errno, ENOENT);
    mproc_log_destroy(lg);
}
END_TEST

START_TEST(log_to_stderr_uses_multiprocessing_format)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);

    mproc_log *lg = mproc_log_default();
    ck_assert_ptr_nonnull(lg);
    ck_assert_ptr_eq(lg, mproc_log_default());
    ck_assert_int_eq(mproc_log_level(lg), MPROC_LOG_WARNING);
    ck_assert_int_eq(mproc_log_error(lg, "before"), 0); /* no sink yet */
    ck_assert_int_eq(mproc_log_to_stderr(MPROC_LOG_OFF + 1), MPROC_EINVAL);
    /* A stderr sink added by hand counts: no second one, ever. */
    ck_assert_int_eq(mproc_log_add_stderr(lg, NULL), 0);
    ck_assert_int_eq(mproc_log_to_stderr(MPROC_LOG_INFO), 0);
    ck_assert_int_eq(mproc_log_to_stderr(MPROC_LOG_INFO), 0); /* no 2nd sink */
    ck_assert_int_eq(mproc_log_info(lg, "hello %s", "world"), 0);
    ck_assert_int_eq(mproc_log_debug(lg, "hidden"), 0);
    mproc_log_destroy(lg); /* ignored */
    ck_assert_int_eq(mproc_log_warning(mproc_log_default(), "still"), 0);

    ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    char buf[256];
    test_read_to_eof(p[0], buf, sizeof buf);
    close(p[0]);
    ck_assert_str_eq(buf, "[INFO/MainProcess] hello world\n"
                          "[WARNING/MainProcess] still\n");
}
END_TEST

START_TEST(log_to_stderr_refuses_a_closed_stderr)
{
    int saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    close(STDERR_FILENO);
    int rc = mproc_log_to_stderr(MPROC_LOG_DEBUG);
    int level = mproc_log_level(mproc_log_default());
    ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    ck_assert_int_eq(rc, MPROC_EBADF);
    ck_assert_int_eq(level, MPROC_LOG_WARNING); /* unchanged */
}
END_TEST

START_TEST(log_child_writes_its_own_pid_to_inherited_sinks)
{
    int rd;
    mproc_log *lg =
        pipe_logger("%(process)d %(message)s", MPROC_LOG_DEBUG, &rd);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(mproc_log_info(lg, "child") == 0 ? 0 : 1);
    ck_assert_int_eq(test_wait_status(pid), 0);
    ck_assert_int_eq(mproc_log_info(lg, "parent"), 0);
    char buf[256];
    drain(lg, rd, buf, sizeof buf);
    char expect[128];
    snprintf(expect, sizeof expect, "%d child\n%d parent\n", (int)pid,
             (int)getpid());
    ck_assert_str_eq(buf, expect);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("log");
    TEST_ADD(s, log_formats_every_python_field);
    TEST_ADD(s, log_pads_fields_like_python);
    TEST_ADD(s, log_names_nonstandard_levels_like_python);
    TEST_ADD(s, log_write_without_location_says_unknown);
    TEST_ADD(s, log_datefmt_replaces_asctime);
    TEST_ADD(s, log_set_format_takes_effect_for_later_records);
    TEST_ADD(s, log_rejects_bad_formats_when_set);
    TEST_ADD(s, log_drops_records_below_the_threshold);
    TEST_ADD(s, log_sink_level_filters_per_sink);
    TEST_ADD(s, log_file_sink_appends_and_creates_0600);
    TEST_ADD(s, log_keeps_records_from_8_processes_whole);
    TEST_ADD(s, log_keeps_records_from_threads_whole);
    TEST_ADD(s, log_truncates_long_records_with_a_mark);
    TEST_ADD(s, log_truncates_exactly_at_the_record_limit);
    TEST_ADD(s, log_grows_records_past_the_stack_buffer);
    TEST_ADD(s, log_record_to_pipe_arrives_whole);
    TEST_ADD(s, log_pipe_without_reader_is_epipe_not_sigpipe);
    TEST_ADD(s, log_reports_write_failures_and_tries_every_sink);
    TEST_ADD(s, log_rejects_bad_inputs);
    TEST_ADD(s, log_destroy_closes_only_what_it_owns);
    TEST_ADD(s, log_keeps_the_callers_errno);
    TEST_ADD(s, log_to_stderr_uses_multiprocessing_format);
    TEST_ADD(s, log_to_stderr_refuses_a_closed_stderr);
    TEST_ADD(s, log_child_writes_its_own_pid_to_inherited_sinks);
    return s;
}
