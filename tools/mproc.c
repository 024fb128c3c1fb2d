/*
 * mproc: the command-line tool, a thin shell over the public API.
 *   mproc error CODE|NAME     explain an error code
 *   mproc errors              list every code
 *   mproc run [--timeout MS] -- PROGRAM [ARGS...]
 *                             run a program, report how it ended
 *   mproc shm list            list mproc objects in /dev/shm
 *   mproc shm unlink NAME...  remove mproc objects by name (checks they are)
 *   mproc version
 * Exit codes: 0 ok, 1 condition not met or timed out, 2 usage, 3 system error.
 */
#include "mproc.h"

#include "internal/region.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_OK = 0, EXIT_NOTMET = 1, EXIT_USAGE = 2, EXIT_SYSTEM = 3 };

static int usage(void)
{
    fprintf(stderr,
            "usage: mproc <command> [options]\n"
            "  error CODE|NAME                 explain an error code\n"
            "  errors                          list every error code\n"
            "  run [--timeout MS] -- PROG ARGS run a program, report its end\n"
            "  shm list                        list mproc objects in /dev/shm\n"
            "  shm unlink NAME...              remove mproc objects by name\n"
            "  version                         print the version\n"
            "exit: 0 ok, 1 condition not met or timed out, 2 usage, "
            "3 system error\n");
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

static int cmd_run(int argc, char **argv)
{
    int64_t timeout = MPROC_FOREVER;
    int i = 0;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || timeout < 0) {
                fprintf(stderr, "mproc: run: bad timeout '%s'\n", argv[i]);
                return EXIT_USAGE;
            }
        } else {
            return usage();
        }
    }
    if (i + 1 >= argc)
        return usage();
    char **prog = argv + i + 1;

    mproc_process *p;
    int rc = mproc_process_spawn(&p, prog[0], prog, NULL);
    if (rc < 0) {
        fprintf(stderr, "mproc: run: %s: %s: %s\n", prog[0], mproc_errname(rc),
                mproc_strerror(rc));
        return EXIT_SYSTEM;
    }
    int status = EXIT_OK;
    rc = mproc_process_join(p, timeout);
    if (rc == MPROC_ETIMEDOUT) {
        fprintf(stderr, "mproc: run: %s timed out after %lld ms; killed\n",
                prog[0], (long long)timeout);
        mproc_process_kill(p);
        mproc_process_join(p, MPROC_FOREVER);
        mproc_process_destroy(p);
        return EXIT_NOTMET;
    }
    if (rc < 0) {
        fprintf(stderr, "mproc: run: join: %s\n", mproc_strerror(rc));
        mproc_process_destroy(p);
        return EXIT_SYSTEM;
    }
    int code = 0;
    mproc_process_exitcode(p, &code);
    if (code < 0) {
        fprintf(stderr, "mproc: run: %s (pid %d) killed by signal %d\n",
                prog[0], (int)mproc_process_pid(p), -code);
        status = EXIT_NOTMET;
    } else {
        fprintf(stderr, "mproc: run: %s (pid %d) exit code %d\n", prog[0],
                (int)mproc_process_pid(p), code);
        status = code == 0 ? EXIT_OK : EXIT_NOTMET;
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
            if (rc < 0) {
                fprintf(stderr, "mproc: shm unlink: %s: %s: %s\n", argv[i],
                        mproc_errname(rc), mproc_strerror(rc));
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
    if (strcmp(cmd, "version") == 0) {
        printf("mproc %s\n", MPROC_VERSION_STRING);
        return EXIT_OK;
    }
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage();
        return EXIT_OK;
    }
    fprintf(stderr, "mproc: unknown command '%s'\n", cmd);
    usage();
    return EXIT_USAGE;
}
