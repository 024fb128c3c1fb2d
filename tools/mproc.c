/*
 * mproc: the command-line tool, a thin shell over the public API.
 *   mproc error CODE|NAME     explain an error code
 *   mproc errors              list every code
 *   mproc run [--timeout MS] [--] PROGRAM [ARGS...]
 *                             run a program, report how it ended, exit
 *                             with its status
 *   mproc shm list            list mproc objects: owner, creator, alive, state
 *   mproc shm unlink NAME...  remove mproc objects by name (damaged too)
 *   mproc help | --help       print the usage
 *   mproc version | --version print the version
 * Exit codes: 0 ok, 1 condition not met or timed out, 2 usage, 3 system error;
 * run exits with the program's status instead, and its own codes (RUN_*)
 * lie where a program's rarely do, as timeout(1) and the shell place them.
 */
#include "mproc.h"

#include "internal/region.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_NOTMET = 1, EXIT_USAGE = 2, EXIT_SYSTEM = 3 };

/* run exits with the program's status (128+N when signal N killed it), and
 * with these when the program did not end by itself: the codes timeout(1)
 * and the shell use. A program may exit with them too; run's last line on
 * stderr tells which. */
enum {
    RUN_TIMEDOUT = 124, /* --timeout ran out; the program was killed */
    RUN_FAILED = 125,   /* run itself failed: usage, a system error */
    RUN_NOEXEC = 126,   /* the program was found but could not be executed */
    RUN_NOTFOUND = 127, /* the program was not found */
};

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: mproc <command> [options]\n"
            "  error CODE|NAME                 explain an error code\n"
            "  errors                          list every error code\n"
            "  run [--timeout MS] [--] PROG [ARGS...]\n"
            "                                  run a program, report how it "
            "ended\n"
            "  shm list                        list mproc objects: owner, "
            "creator,\n"
            "                                  alive, state\n"
            "  shm unlink NAME...              remove mproc objects by name "
            "(damaged\n"
            "                                  too)\n"
            "  help, --help                    print this text\n"
            "  version, --version              print the version\n"
            "exit: 0 ok, 1 condition not met or timed out, 2 usage, "
            "3 system error.\n"
            "run exits with the program's own status instead, 128+N when "
            "signal N\n"
            "killed it, and with its own codes: 124 --timeout ran out (the "
            "program\n"
            "was killed), 125 run itself failed, 126 the program could not "
            "be\n"
            "executed, 127 it was not found. Its last line on stderr says "
            "which.\n");
}

/* A usage error: the usage on stderr, exit 2. */
static int usage(void)
{
    print_usage(stderr);
    return EXIT_USAGE;
}

static void print_code(int code)
{
    printf("%s %d %s\n", mproc_errname(code), code, mproc_strerror(code));
}

static int cmd_error(int argc, char **argv)
{
    if (argc != 1)
        return usage();
    char *end;
    errno = 0;
    long v = strtol(argv[0], &end, 10);
    if (*end == '\0' && errno == 0 && end != argv[0]) {
        print_code((int)v);
        return EXIT_OK;
    }
#define X(name, value, msg)                                                    \
    if (strcmp(argv[0], "MPROC_" #name) == 0 || strcmp(argv[0], #name) == 0) { \
        print_code(value);                                                     \
        return EXIT_OK;                                                        \
    }
    MPROC_ERRNO_MAP(X)
#undef X
    fprintf(stderr, "mproc: error: unknown code or name '%s'\n", argv[0]);
    return EXIT_USAGE;
}

static int cmd_errors(void)
{
#define X(name, value, msg) print_code(value);
    MPROC_ERRNO_MAP(X)
#undef X
    return EXIT_OK;
}

static int run_usage(void)
{
    fprintf(stderr, "mproc: run: usage: mproc run [--timeout MS] [--] "
                    "PROGRAM [ARGS...]\n");
    return RUN_FAILED;
}

/* The exit status for a program that could not be started: spawn gives the
 * exec's own errno, so "not found" and "not executable" are told apart from
 * a failure of the system (no memory, no processes, no fds). */
static int spawn_status(int rc)
{
    switch (rc) {
    case MPROC_ENOENT:
        return RUN_NOTFOUND;
    case MPROC_ENOMEM:
    case MPROC_EAGAIN:
    case MPROC_EMFILE:
    case MPROC_ENFILE:
    case MPROC_EINVAL:
    case MPROC_EBADF:
        return RUN_FAILED;
    default:
        return RUN_NOEXEC;
    }
}

static int cmd_run(int argc, char **argv)
{
    int64_t timeout = MPROC_FOREVER;
    int i = 0;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--timeout") != 0 || i + 1 >= argc)
            return run_usage();
        const char *ms = argv[i + 1];
        char *end;
        errno = 0;
        timeout = strtoll(ms, &end, 10);
        if (ms[0] < '0' || ms[0] > '9' || *end != '\0' || errno != 0) {
            fprintf(stderr, "mproc: run: bad timeout '%s'\n", ms);
            return RUN_FAILED;
        }
        i += 2;
    }
    if (i >= argc)
        return run_usage();
    char **prog = argv + i;

    mproc_process *p;
    int rc = mproc_process_spawn(&p, prog[0], prog, NULL);
    if (rc < 0) {
        fprintf(stderr, "mproc: run: %s: %s: %s\n", prog[0], mproc_errname(rc),
                mproc_strerror(rc));
        return spawn_status(rc);
    }
    int pid = (int)mproc_process_pid(p);
    int status;
    int code = 0;
    rc = mproc_process_join(p, timeout);
    if (rc == MPROC_ETIMEDOUT) {
        mproc_process_kill(p);
        mproc_process_join(p, MPROC_FOREVER);
        fprintf(stderr,
                "mproc: run: %s (pid %d) timed out after %lld ms; killed\n",
                prog[0], pid, (long long)timeout);
        status = RUN_TIMEDOUT;
    } else if (rc < 0 || (rc = mproc_process_exitcode(p, &code)) < 0) {
        /* Without its status the program is no longer watched: stop it. */
        mproc_process_kill(p);
        mproc_process_join(p, MPROC_FOREVER);
        fprintf(stderr, "mproc: run: %s (pid %d): %s: %s\n", prog[0], pid,
                mproc_errname(rc), mproc_strerror(rc));
        status = RUN_FAILED;
    } else if (code < 0) {
        fprintf(stderr, "mproc: run: %s (pid %d) killed by signal %d\n",
                prog[0], pid, -code);
        status = 128 - code;
    } else {
        fprintf(stderr, "mproc: run: %s (pid %d) exit code %d\n", prog[0], pid,
                code);
        status = code;
    }
    mproc_process_destroy(p);
    return status;
}

static const char *kind_name(uint32_t kind)
{
    static const char *const names[] = {
        [MPROC__KIND_ANY] = "-", /* an unfinished creation */
        [MPROC__KIND_SHM] = "shm",
        [MPROC__KIND_VALUE] = "value",
        [MPROC__KIND_ARRAY] = "array",
        [MPROC__KIND_LOCK] = "lock",
        [MPROC__KIND_RLOCK] = "rlock",
        [MPROC__KIND_SEMAPHORE] = "semaphore",
        [MPROC__KIND_BSEMAPHORE] = "bounded-semaphore",
        [MPROC__KIND_EVENT] = "event",
        [MPROC__KIND_CONDITION] = "condition",
        [MPROC__KIND_BARRIER] = "barrier",
        [MPROC__KIND_QUEUE] = "queue",
        [MPROC__KIND_JQUEUE] = "joinable-queue",
    };
    if (kind < sizeof names / sizeof names[0] && names[kind] != NULL)
        return names[kind];
    return "unknown";
}

/* The columns of `mproc shm list`; CREATOR says whether the process that
 * made the object still runs (so orphans of a crashed program stand out),
 * STATE whether the object is whole. */
#define LIST_FORMAT "%-40s %-17s %3s %12s %6s %8s %-7s %s\n"

static int print_region(const mproc__region_info *info, void *arg)
{
    (void)arg;
    static const char *const states[] = {
        [MPROC__REGION_OK] = "ok",
        [MPROC__REGION_DAMAGED] = "damaged",
        [MPROC__REGION_UNFINISHED] = "unfinished",
    };
    char ver[16], size[24], owner[16], pid[16];
    snprintf(ver, sizeof ver, "%u", (unsigned)info->version);
    snprintf(size, sizeof size, "%llu", (unsigned long long)info->size);
    snprintf(owner, sizeof owner, "%u", (unsigned)info->owner);
    snprintf(pid, sizeof pid, "%d", (int)info->creator);
    printf(LIST_FORMAT, info->name, kind_name(info->kind),
           info->version != 0 ? ver : "-", size, owner,
           info->creator > 0 ? pid : "-",
           info->creator_alive > 0    ? "alive"
           : info->creator_alive == 0 ? "gone"
                                      : "unknown",
           states[info->state]);
    return 0;
}

static int cmd_shm(int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        printf(LIST_FORMAT, "NAME", "KIND", "VER", "SIZE", "OWNER", "PID",
               "CREATOR", "STATE");
        int rc = mproc__region_list(print_region, NULL);
        if (rc < 0) {
            fprintf(stderr, "mproc: shm list: %s\n", mproc_strerror(rc));
            return EXIT_SYSTEM;
        }
        return EXIT_OK;
    }
    if (argc >= 2 && strcmp(argv[0], "unlink") == 0) {
        int status = EXIT_OK;
        for (int i = 1; i < argc; i++) {
            int rc = mproc__region_unlink(argv[i], MPROC__KIND_ANY);
            if (rc == MPROC_EINVAL && argv[i][0] != '/') {
                /* The one mistake worth a word of its own. */
                fprintf(stderr,
                        "mproc: shm unlink: %s: %s: a name starts with '/' "
                        "(as `mproc shm list` prints it: /%s)\n",
                        argv[i], mproc_errname(rc), argv[i]);
            } else if (rc < 0) {
                fprintf(stderr, "mproc: shm unlink: %s: %s: %s\n", argv[i],
                        mproc_errname(rc), mproc_strerror(rc));
            }
            if (rc < 0) {
                status = rc == MPROC_ENOENT || rc == MPROC_EBADOBJ ||
                                 rc == MPROC_EINVAL || rc == MPROC_EBUSY
                             ? EXIT_NOTMET
                             : EXIT_SYSTEM;
            }
        }
        return status;
    }
    return usage();
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "error") == 0)
        return cmd_error(argc - 2, argv + 2);
    if (strcmp(cmd, "errors") == 0)
        return cmd_errors();
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "shm") == 0)
        return cmd_shm(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc != 2)
            return usage();
        printf("mproc %s\n", MPROC_VERSION_STRING);
        return EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "-h") == 0) {
        if (argc != 2)
            return usage();
        print_usage(stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "mproc: unknown command '%s'\n", cmd);
    return usage();
}
