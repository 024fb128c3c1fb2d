/* The mproc command against real objects: listing and removing names. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "testlib.h"

/* Runs the tool with args; returns its exit code and its stdout in out. */
static int run_tool(const char *args, char *out, size_t n)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", MPROC_TOOL_PATH, args);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t len = fread(out, 1, n - 1, f);
    out[len] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(tool_lists_and_unlinks_mproc_objects)
{
    char shm_name[64], lock_name[64], out[8192], args[256];
    test_shm_name(shm_name, sizeof shm_name, "tool-shm");
    test_shm_name(lock_name, sizeof lock_name, "tool-lock");
    mproc_shm *shm;
    mproc_lock *lock;
    ck_assert_int_eq(mproc_shm_create(&shm, shm_name, 1000, NULL), 0);
    ck_assert_int_eq(mproc_lock_create(&lock, lock_name, NULL), 0);
    mproc_shm_close(shm);
    mproc_lock_close(lock);

    ck_assert_int_eq(run_tool("shm list", out, sizeof out), 0);
    char *line = strstr(out, shm_name);
    ck_assert_msg(line != NULL, "%s not listed in:\n%s", shm_name, out);
    ck_assert_ptr_nonnull(strstr(line, "shm"));
    line = strstr(out, lock_name);
    ck_assert_msg(line != NULL, "%s not listed in:\n%s", lock_name, out);
    ck_assert_ptr_nonnull(strstr(line, "lock"));

    snprintf(args, sizeof args, "shm unlink %s %s", shm_name, lock_name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_int_eq(mproc_shm_open(&shm, shm_name, NULL), MPROC_ENOENT);
    ck_assert_int_eq(run_tool("shm list", out, sizeof out), 0);
    ck_assert_ptr_null(strstr(out, shm_name));
    ck_assert_ptr_null(strstr(out, lock_name));
}
END_TEST

START_TEST(tool_refuses_to_unlink_a_foreign_name)
{
    char name[64], out[4096], args[256];
    test_shm_name(name, sizeof name, "tool-foreign");
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "not mproc, just bytes of another program", 40),
                     40);
    close(fd);
    snprintf(args, sizeof args, "shm unlink %s", name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "MPROC_EBADOBJ"));
    /* Still there: the tool removes only mproc objects. */
    fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(run_tool("shm list", out, sizeof out), 0);
    ck_assert_ptr_null(strstr(out, name));
    shm_unlink(name);
}
END_TEST

/* The line of `shm list` that names name (up to its newline), or NULL. */
static const char *list_line(const char *out, const char *name, char *line,
                             size_t n)
{
    const char *p = out;
    size_t len = strlen(name);
    while ((p = strstr(p, name)) != NULL) {
        if ((p == out || p[-1] == '\n') && p[len] == ' ')
            break;
        p += len;
    }
    if (p == NULL)
        return NULL;
    const char *end = strchr(p, '\n');
    size_t k = end != NULL ? (size_t)(end - p) : strlen(p);
    snprintf(line, n, "%.*s", (int)k, p);
    return line;
}

/* `shm list` starts with a header row and tells each object's creator pid
 * and whether it still runs: the orphan of a process that is gone stands
 * out from the objects of a live one. */
START_TEST(tool_list_shows_each_creator_and_whether_it_runs)
{
    char mine[64], orphan[64], out[8192], line[512], pid[32];
    test_shm_name(mine, sizeof mine, "tool-mine");
    test_shm_name(orphan, sizeof orphan, "tool-orphan");
    mproc_lock *lock;
    ck_assert_int_eq(mproc_lock_create(&lock, mine, NULL), 0);
    pid_t p = fork();
    ck_assert_int_ge(p, 0);
    if (p == 0) {
        mproc_event *e;
        _exit(mproc_event_create(&e, orphan, NULL) == 0 ? 0 : 1);
    }
    int st;
    ck_assert_int_eq(waitpid(p, &st, 0), p);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    ck_assert_int_eq(run_tool("shm list", out, sizeof out), 0);
    ck_assert_msg(strncmp(out, "NAME ", 5) == 0, "no header row:\n%s", out);
    ck_assert_ptr_nonnull(strstr(out, "PID"));
    ck_assert_ptr_nonnull(strstr(out, "CREATOR"));
    ck_assert_msg(list_line(out, mine, line, sizeof line) != NULL, "%s", out);
    snprintf(pid, sizeof pid, " %d ", (int)getpid());
    ck_assert_msg(strstr(line, pid) != NULL, "%s", line);
    ck_assert_msg(strstr(line, " alive ") != NULL, "%s", line);
    ck_assert_msg(strstr(line, " ok") != NULL, "%s", line);
    ck_assert_msg(list_line(out, orphan, line, sizeof line) != NULL, "%s", out);
    snprintf(pid, sizeof pid, " %d ", (int)p);
    ck_assert_msg(strstr(line, pid) != NULL, "%s", line);
    ck_assert_msg(strstr(line, " gone ") != NULL, "%s", line);

    mproc_lock_close(lock);
    ck_assert_int_eq(mproc_lock_unlink(mine), 0);
    ck_assert_int_eq(mproc_event_unlink(orphan), 0);
}
END_TEST

/* A truncated object (its header whole) is listed as damaged, and
 * `shm unlink` removes it. */
START_TEST(tool_lists_and_unlinks_a_damaged_object)
{
    char name[64], out[8192], line[512], args[256];
    test_shm_name(name, sizeof name, "tool-damaged");
    mproc_shm *shm;
    ck_assert_int_eq(mproc_shm_create(&shm, name, 4096, NULL), 0);
    mproc_shm_close(shm);
    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 100), 0);
    close(fd);
    ck_assert_int_eq(run_tool("shm list", out, sizeof out), 0);
    ck_assert_msg(list_line(out, name, line, sizeof line) != NULL, "%s", out);
    ck_assert_msg(strstr(line, " damaged") != NULL, "%s", line);
    snprintf(args, sizeof args, "shm unlink %s", name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_int_eq(shm_open(name, O_RDONLY | O_CLOEXEC, 0), -1);
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("tool");
    TEST_ADD(s, tool_lists_and_unlinks_mproc_objects);
    TEST_ADD(s, tool_refuses_to_unlink_a_foreign_name);
    TEST_ADD(s, tool_list_shows_each_creator_and_whether_it_runs);
    TEST_ADD(s, tool_lists_and_unlinks_a_damaged_object);
    return s;
}
