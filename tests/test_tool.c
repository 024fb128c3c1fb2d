/* The mproc command against real objects (listing and removing names), and
 * its help, version and run, through its exit codes and output. */
#include <fcntl.h>
#include <stdarg.h>
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

/* Runs the tool with the NULL-terminated arguments after its name, its
 * stdout into out and its stderr into err (through files, so neither can
 * fill up while the other is read); returns its exit code, 128+N when
 * signal N killed it. */
static int tool_exec(char *out, size_t n, char *err, size_t m, ...)
{
    char opath[256], epath[256];
    test_path(opath, sizeof opath, "tool-stdout");
    test_path(epath, sizeof epath, "tool-stderr");
    char *argv[16] = {MPROC_TOOL_PATH};
    va_list ap;
    va_start(ap, m);
    size_t argc = 1;
    while ((argv[argc] = va_arg(ap, char *)) != NULL)
        ck_assert_uint_lt(++argc, sizeof argv / sizeof argv[0]);
    va_end(ap);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(99);
        execv(MPROC_TOOL_PATH, argv);
        _exit(98);
    }
    int status = test_wait_status(pid);
    const char *paths[] = {opath, epath};
    char *bufs[] = {out, err};
    size_t sizes[] = {n, m};
    for (int i = 0; i < 2; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        test_read_to_eof(fd, bufs[i], sizes[i]);
        close(fd);
        unlink(paths[i]);
    }
    return status;
}

/* The last line of s (without its newline), in a static buffer. */
static const char *last_line(const char *s)
{
    static char line[512];
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '\n')
        len--;
    size_t start = len;
    while (start > 0 && s[start - 1] != '\n')
        start--;
    snprintf(line, sizeof line, "%.*s", (int)(len - start), s + start);
    return line;
}

START_TEST(tool_help_prints_the_usage_on_stdout_and_succeeds)
{
    char out[4096], err[4096];
    const char *how[] = {"help", "--help", "-h"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(
            tool_exec(out, sizeof out, err, sizeof err, how[i], (char *)NULL),
            0);
        ck_assert_msg(strncmp(out, "usage: mproc", 12) == 0, "%s: %s", how[i],
                      out);
        ck_assert_ptr_nonnull(strstr(out, "run [--timeout MS]"));
        ck_assert_ptr_nonnull(strstr(out, "128+N"));
        ck_assert_str_eq(err, "");
    }
    /* Asked for wrongly, the usage is an error: stderr, exit 2. */
    ck_assert_int_eq(
        tool_exec(out, sizeof out, err, sizeof err, "help", "me", (char *)NULL),
        2);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(strstr(err, "usage: mproc"));
}
END_TEST

START_TEST(tool_version_flag_prints_the_version)
{
    char out[256], err[256], word[256];
    ck_assert_int_eq(
        tool_exec(word, sizeof word, err, sizeof err, "version", (char *)NULL),
        0);
    ck_assert_int_eq(
        tool_exec(out, sizeof out, err, sizeof err, "--version", (char *)NULL),
        0);
    ck_assert_str_eq(err, "");
    ck_assert_msg(strncmp(out, "mproc ", 6) == 0 && out[6] >= '0' &&
                      out[6] <= '9',
                  "%s", out);
    ck_assert_str_eq(out, word);
}
END_TEST

START_TEST(tool_run_exits_with_the_programs_status)
{
    char out[256], err[4096], script[64], want[64];
    const int codes[] = {0, 1, 2, 3, 42, 125, 255};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        snprintf(script, sizeof script, "exit %d", codes[i]);
        snprintf(want, sizeof want, "exit code %d", codes[i]);
        ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run",
                                   "--", "sh", "-c", script, (char *)NULL),
                         codes[i]);
        ck_assert_msg(strstr(last_line(err), want) != NULL, "%s", err);
    }
    /* "--" is needed only before a program whose name starts with '-'. */
    ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run", "sh",
                               "-c", "echo hi; exit 7", (char *)NULL),
                     7);
    ck_assert_str_eq(out, "hi\n");
}
END_TEST

START_TEST(tool_run_exits_128_plus_the_signal_that_killed_the_program)
{
    char out[256], err[4096];
    ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run", "--",
                               "sh", "-c", "kill -9 $$", (char *)NULL),
                     128 + 9);
    ck_assert_ptr_nonnull(strstr(last_line(err), "killed by signal 9"));
    ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run", "--",
                               "sh", "-c", "kill -TERM $$", (char *)NULL),
                     128 + 15);
    ck_assert_ptr_nonnull(strstr(last_line(err), "killed by signal 15"));
}
END_TEST

START_TEST(tool_run_tells_its_own_failures_from_the_programs)
{
    char out[256], err[4096], path[256];
    /* Not found: 127, as the shell. */
    ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run", "--",
                               "/nonexistent/program", (char *)NULL),
                     127);
    ck_assert_ptr_nonnull(strstr(last_line(err), "MPROC_ENOENT"));
    /* Found, not executable: 126, as the shell. */
    test_path(path, sizeof path, "not-executable");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "#!/bin/sh\nexit 0\n", 17), 17);
    close(fd);
    ck_assert_int_eq(
        tool_exec(out, sizeof out, err, sizeof err, "run", path, (char *)NULL),
        126);
    ck_assert_ptr_nonnull(strstr(last_line(err), "MPROC_EACCES"));
    unlink(path);
    /* run's own usage errors: 125, never 2, which a program may return. */
    const char *bad[][3] = {
        {"--timeout", "soon", "true"},
        {"--timeout", "-5", "true"},
        {"--frobnicate", "true", NULL},
        {"--", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run",
                                   bad[i][0], bad[i][1], bad[i][2],
                                   (char *)NULL),
                         125);
        ck_assert_msg(strncmp(last_line(err), "mproc: run: ", 12) == 0, "%s",
                      err);
        ck_assert_ptr_null(strstr(err, "exit code"));
    }
}
END_TEST

START_TEST(tool_run_kills_a_program_past_its_timeout)
{
    char out[256], err[4096];
    ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "run",
                               "--timeout", "200", "--", "sleep", "30",
                               (char *)NULL),
                     124);
    ck_assert_ptr_nonnull(strstr(last_line(err), "timed out after 200 ms"));
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

START_TEST(tool_shm_unlink_says_a_name_starts_with_a_slash)
{
    char out[256], err[1024];
    ck_assert_int_eq(tool_exec(out, sizeof out, err, sizeof err, "shm",
                               "unlink", "foreign", (char *)NULL),
                     1);
    ck_assert_msg(strstr(err, "a name starts with '/'") != NULL, "%s", err);
    ck_assert_msg(strstr(err, "/foreign") != NULL, "%s", err);
}
END_TEST

START_TEST(tool_ls_stat_rm_show_named_objects)
{
    char lock_name[64], bar_name[64], out[8192], args[256];
    test_shm_name(lock_name, sizeof lock_name, "ls-lock");
    test_shm_name(bar_name, sizeof bar_name, "ls-barrier");
    mproc_lock *lock;
    mproc_barrier *bar;
    ck_assert_int_eq(mproc_lock_create(&lock, lock_name, NULL), 0);
    ck_assert_int_eq(mproc_barrier_create(&bar, bar_name, 3, NULL), 0);
    ck_assert_int_eq(mproc_lock_acquire(lock, MPROC_FOREVER), 0);

    ck_assert_int_eq(run_tool("ls", out, sizeof out), 0);
    char *line = strstr(out, lock_name);
    ck_assert_msg(line != NULL, "%s not listed in:\n%s", lock_name, out);
    ck_assert_ptr_nonnull(strstr(out, "lock "));
    ck_assert_ptr_nonnull(strstr(line, "alive"));
    snprintf(args, sizeof args, "stat %s", lock_name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "held: yes") != NULL, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "(alive)"));
    mproc_lock_release(lock);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "held: no") != NULL, "%s", out);
    snprintf(args, sizeof args, "stat %s", bar_name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "parties: 3\nwaiting: 0") != NULL, "%s", out);

    mproc_lock_close(lock);
    mproc_barrier_close(bar);
    snprintf(args, sizeof args, "rm %s %s", lock_name, bar_name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "stat %s", lock_name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 1);
    snprintf(args, sizeof args, "rm %s", lock_name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 1);
}
END_TEST

START_TEST(tool_stat_shows_a_queues_depth_and_tasks)
{
    char name[64], out[8192], args[256];
    test_shm_name(name, sizeof name, "stat-queue");
    mproc_queue *q;
    mproc_queue_opts o = MPROC_QUEUE_OPTS_INIT;
    o.joinable = true;
    o.maxsize = 10;
    ck_assert_int_eq(mproc_queue_create(&q, name, &o), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mproc_queue_put(q, "task", 4, 0), 0);
    char b[8];
    size_t len;
    ck_assert_int_eq(mproc_queue_get(q, b, sizeof b, &len, 0), 0);
    snprintf(args, sizeof args, "stat %s", name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "kind: joinable-queue") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "depth: 2\nmaxsize: 10") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "unfinished_tasks: 3") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "consumer_places: 1") != NULL, "%s", out);
    mproc_queue_close(q);
    snprintf(args, sizeof args, "rm %s", name);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
}
END_TEST

START_TEST(tool_ls_stat_rm_show_a_managers_objects)
{
#ifndef MPROC_HAVE_MANAGER
    test_skip("built without the manager");
#else
    char path[256], addr[300], out[8192], args[512];
    test_path(path, sizeof path, "tool-mgr.sock");
    snprintf(addr, sizeof addr, "unix:%s", path);
    mproc_manager *m;
    ck_assert_int_eq(mproc_manager_start(&m, addr, NULL), 0);
    mproc_mclient *c;
    ck_assert_int_eq(mproc_mclient_open(&c, addr, NULL, 5000), 0);
    mproc_mqueue *q;
    mproc_mqueue_opts qo = {.maxsize = 5};
    ck_assert_int_eq(mproc_mqueue_open(&q, c, "jobs", &qo, 5000), 0);
    ck_assert_int_eq(mproc_mqueue_put(q, "a", MPROC_MSTR, 5000), 0);
    ck_assert_int_eq(mproc_mqueue_put(q, "b", MPROC_MSTR, 5000), 0);
    mproc_mlock *l;
    ck_assert_int_eq(mproc_mlock_open(&l, c, "guard", NULL, 5000), 0);
    ck_assert_int_eq(mproc_mlock_acquire(l, 5000), 0);

    snprintf(args, sizeof args, "ls -a %s", addr);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_msg(strstr(out, "list") != NULL && strstr(out, "jobs") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "lock") != NULL && strstr(out, "guard") != NULL,
                  "%s", out);
    snprintf(args, sizeof args, "stat -a %s jobs", addr);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    ck_assert_msg(
        strstr(out, "len: 2\nmaxsize: 5\nunfinished: 2\nwaiters: 0") != NULL,
        "%s", out);
    snprintf(args, sizeof args, "stat -a %s guard", addr);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "owner_pid: %d\n", (int)getpid());
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    snprintf(args, sizeof args, "rm -a %s jobs", addr);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "stat -a %s jobs", addr);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 1);
    snprintf(args, sizeof args, "rm -a %s jobs", addr);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 1);

    mproc_mlock_close(l);
    mproc_mqueue_close(q);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
#endif
}
END_TEST

START_TEST(tool_manager_serve_runs_until_sigterm_and_removes_its_socket)
{
#ifndef MPROC_HAVE_MANAGER
    test_skip("built without the manager");
#else
    char path[256], addr[300];
    test_path(path, sizeof path, "served.sock");
    snprintf(addr, sizeof addr, "unix:%s", path);
    char *argv[] = {MPROC_TOOL_PATH, "manager", "serve", path, NULL};
    mproc_process *p;
    ck_assert_int_eq(mproc_process_spawn(&p, MPROC_TOOL_PATH, argv, NULL), 0);
    mproc_mclient *c;
    ck_assert_int_eq(mproc_mclient_open(&c, addr, NULL, test_ms(10000)), 0);
    ck_assert_int_eq(mproc_mclient_server(c), MPROC_MSERVER_MANAGER);
    mproc_mvalue *v;
    mproc_mvalue_open(&v, c, "x");
    ck_assert_int_eq(mproc_mvalue_set_i64(v, 7, 5000), 0);
    mproc_mvalue_close(v);
    mproc_mclient_close(c);
    /* A second one on the same socket is refused: exit 1. */
    char out[4096], args[512];
    snprintf(args, sizeof args, "manager serve %s", path);
    ck_assert_int_eq(run_tool(args, out, sizeof out), 1);
    ck_assert_ptr_nonnull(strstr(out, "MPROC_EEXIST"));
    mproc_process_terminate(p);
    ck_assert_int_eq(mproc_process_join(p, test_ms(10000)), 0);
    int code;
    mproc_process_exitcode(p, &code);
    ck_assert_int_eq(code, 0);
    mproc_process_destroy(p);
    ck_assert_int_ne(access(path, F_OK), 0);
#endif
}
END_TEST

Suite *mproc_test_suite(void)
{
    Suite *s = suite_create("tool");
    TEST_ADD(s, tool_lists_and_unlinks_mproc_objects);
    TEST_ADD(s, tool_refuses_to_unlink_a_foreign_name);
    TEST_ADD(s, tool_help_prints_the_usage_on_stdout_and_succeeds);
    TEST_ADD(s, tool_version_flag_prints_the_version);
    TEST_ADD(s, tool_run_exits_with_the_programs_status);
    TEST_ADD(s, tool_run_exits_128_plus_the_signal_that_killed_the_program);
    TEST_ADD(s, tool_run_tells_its_own_failures_from_the_programs);
    TEST_ADD(s, tool_run_kills_a_program_past_its_timeout);
    TEST_ADD(s, tool_list_shows_each_creator_and_whether_it_runs);
    TEST_ADD(s, tool_lists_and_unlinks_a_damaged_object);
    TEST_ADD(s, tool_shm_unlink_says_a_name_starts_with_a_slash);
    TEST_ADD(s, tool_ls_stat_rm_show_named_objects);
    TEST_ADD(s, tool_stat_shows_a_queues_depth_and_tasks);
    TEST_ADD(s, tool_ls_stat_rm_show_a_managers_objects);
    TEST_ADD(s, tool_manager_serve_runs_until_sigterm_and_removes_its_socket);
    return s;
}
