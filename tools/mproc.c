/*
 * mproc: the command-line tool, a thin shell over the public API.
 *   mproc error CODE|NAME     explain an error code
 *   mproc errors              list every code
 *   mproc run [--timeout MS] [--] PROGRAM [ARGS...]
 *                             run a program, report how it ended, exit
 *                             with its status
 *   mproc shm list            list mproc objects: owner, creator, alive, state
 *   mproc shm unlink NAME...  remove mproc objects by name (damaged too)
 *   mproc ls [-a ADDRESS]     list named objects: /dev/shm, or a manager's
 *   mproc stat [-a ADDRESS] NAME   an object's state (depth, owner, count)
 *   mproc rm [-a ADDRESS] NAME...  remove named objects
 *   mproc manager serve SOCKET [options]   run a manager until SIGTERM
 *   mproc help | --help       print the usage
 *   mproc version | --version print the version
 * Exit codes: 0 ok, 1 condition not met or timed out, 2 usage, 3 system error;
 * run exits with the program's status instead, and its own codes (RUN_*)
 * lie where a program's rarely do, as timeout(1) and the shell place them.
 */
#include "mproc.h"

#include "internal/lockcore.h"
#include "internal/region.h"
#include "internal/synclock.h"

#include <errno.h>
#include <signal.h>
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
            "  ls [-a ADDRESS]                 list named objects: kind, name, "
            "size,\n"
            "                                  owner, creator alive (or a "
            "manager's)\n"
            "  stat [-a ADDRESS] NAME          an object's state: a queue's "
            "depth and\n"
            "                                  waiters, a lock's owner, a "
            "barrier's count\n"
            "  rm [-a ADDRESS] NAME...         remove named objects\n"
            "  manager serve SOCKET [OPTIONS]  run a manager (RESP2) until "
            "SIGTERM\n"
            "  COMMAND --help                  the usage of one command\n"
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

/* ----- ls, stat, rm: named objects in /dev/shm, or a manager's ----- */

#define LS_FORMAT "%-17s %-40s %12s %6s %8s %s\n"

static int print_ls(const mproc__region_info *info, void *arg)
{
    (void)arg;
    char size[24], owner[16], pid[16];
    snprintf(size, sizeof size, "%llu", (unsigned long long)info->size);
    snprintf(owner, sizeof owner, "%u", (unsigned)info->owner);
    snprintf(pid, sizeof pid, "%d", (int)info->creator);
    printf(LS_FORMAT, kind_name(info->kind), info->name, size, owner,
           info->creator > 0 ? pid : "-",
           info->state != MPROC__REGION_OK ? "damaged"
           : info->creator_alive > 0       ? "alive"
           : info->creator_alive == 0      ? "gone"
                                           : "unknown");
    return 0;
}

#ifdef MPROC_HAVE_MANAGER
/* Connects to a manager (or Redis) at addr for ls/stat/rm -a. */
static int open_manager(const char *cmd, const char *addr, mproc_mclient **c)
{
    int rc = mproc_mclient_open(c, addr, NULL, 5000);
    if (rc < 0) {
        fprintf(stderr, "mproc: %s: %s: %s: %s\n", cmd, addr, mproc_errname(rc),
                mproc_strerror(rc));
        return rc == MPROC_ETIMEDOUT ? EXIT_NOTMET : EXIT_SYSTEM;
    }
    return EXIT_OK;
}

/* Runs one command and checks it got a reply; EXIT_* on failure. */
static int call(const char *cmd, mproc_mclient *c, int argc,
                const char *const *argv, mproc_mreply **r)
{
    int rc = mproc_mclient_call(c, r, argc, argv, NULL, 5000);
    if (rc < 0) {
        fprintf(stderr, "mproc: %s: %s: %s\n", cmd, mproc_errname(rc),
                mproc_strerror(rc));
        return EXIT_SYSTEM;
    }
    return EXIT_OK;
}

/* A manager's object as one ls line: its kind and size (items, keys). */
static void ls_remote_one(mproc_mclient *c, const mproc_mreply *name)
{
    const char *argv[] = {"MPROC.STAT", name->str};
    size_t argl[] = {10, name->len};
    mproc_mreply *r = NULL;
    const char *kind = "?";
    long long size = -1, waiters = -1;
    if (mproc_mclient_call(c, &r, 2, argv, argl, 5000) == 0 &&
        r->type == MPROC_MREPLY_ARRAY) {
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const char *f = r->element[i]->str;
            const mproc_mreply *v = r->element[i + 1];
            if (strcmp(f, "type") == 0)
                kind = v->str;
            else if (strcmp(f, "len") == 0 || strcmp(f, "size") == 0 ||
                     strcmp(f, "value") == 0 || strcmp(f, "parties") == 0)
                size = v->integer;
            else if (strcmp(f, "waiters") == 0)
                waiters = v->integer;
        }
    }
    char sz[24] = "-", w[24] = "-";
    if (size >= 0)
        snprintf(sz, sizeof sz, "%lld", size);
    if (waiters >= 0)
        snprintf(w, sizeof w, "%lld", waiters);
    printf("%-10s %-40.*s %12s %8s\n", kind, (int)name->len, name->str, sz, w);
    mproc_mreply_free(r);
}

static int ls_remote(const char *addr)
{
    mproc_mclient *c;
    int st = open_manager("ls", addr, &c);
    if (st != EXIT_OK)
        return st;
    const char *argv[] = {"KEYS", "*"};
    mproc_mreply *r = NULL;
    st = call("ls", c, 2, argv, &r);
    if (st == EXIT_OK) {
        printf("%-10s %-40s %12s %8s\n", "KIND", "NAME", "SIZE", "WAITERS");
        for (size_t i = 0; r->type == MPROC_MREPLY_ARRAY && i < r->elements;
             i++)
            ls_remote_one(c, r->element[i]);
    }
    mproc_mreply_free(r);
    mproc_mclient_close(c);
    return st;
}

static int stat_remote(const char *addr, const char *name)
{
    mproc_mclient *c;
    int st = open_manager("stat", addr, &c);
    if (st != EXIT_OK)
        return st;
    const char *argv[] = {"MPROC.STAT", name};
    mproc_mreply *r = NULL;
    st = call("stat", c, 2, argv, &r);
    if (st == EXIT_OK && r->type == MPROC_MREPLY_NIL) {
        fprintf(stderr, "mproc: stat: %s: no such object\n", name);
        st = EXIT_NOTMET;
    } else if (st == EXIT_OK && r->type != MPROC_MREPLY_ARRAY) {
        fprintf(stderr, "mproc: stat: %s: %s\n", name,
                r->type == MPROC_MREPLY_ERROR ? r->str : "unexpected reply");
        st = EXIT_SYSTEM;
    } else if (st == EXIT_OK) {
        printf("name: %s\n", name);
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const mproc_mreply *v = r->element[i + 1];
            if (v->type == MPROC_MREPLY_INTEGER)
                printf("%s: %lld\n", r->element[i]->str, v->integer);
            else
                printf("%s: %s\n", r->element[i]->str, v->str);
        }
    }
    mproc_mreply_free(r);
    mproc_mclient_close(c);
    return st;
}

static int rm_remote(const char *addr, int n, char **names)
{
    mproc_mclient *c;
    int st = open_manager("rm", addr, &c);
    if (st != EXIT_OK)
        return st;
    for (int i = 0; i < n; i++) {
        int rc = mproc_mclient_del(c, names[i], 5000);
        if (rc < 0) {
            fprintf(stderr, "mproc: rm: %s: %s: %s\n", names[i],
                    mproc_errname(rc), mproc_strerror(rc));
            st = rc == MPROC_ENOENT ? EXIT_NOTMET : EXIT_SYSTEM;
        }
    }
    mproc_mclient_close(c);
    return st;
}

/* ----- manager serve ----- */

static int manager_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: mproc manager serve SOCKET [--tcp HOST:PORT "
            "--password-file FILE]\n"
            "                                  [--allow-uid UID]... "
            "[--allow-gid GID]...\n"
            "                                  [--max-clients N]\n"
            "  Runs a manager (docs/manager-protocol.md) on the Unix socket\n"
            "  SOCKET (a path, mode 0600, or @NAME for an abstract name) "
            "until\n"
            "  SIGTERM or SIGINT, or a client's MPROC.SHUTDOWN; then removes "
            "the\n"
            "  socket. Clients of the server's uid may connect, and those "
            "listed\n"
            "  with --allow-uid and --allow-gid. --tcp listens on loopback "
            "too;\n"
            "  TCP clients must AUTH with the password in FILE (mode 0600).\n"
            "  redis-cli -s SOCKET talks to it.\n"
            "exit: 0 stopped as asked, 1 the socket exists or the address is "
            "taken,\n"
            "2 usage, 3 system error.\n");
    return status;
}

static bool parse_id(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 &&
           *out <= 0xfffffffful;
}

static int cmd_manager(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "--help") == 0)
        return manager_usage(stdout, EXIT_OK);
    if (argc >= 2 && strcmp(argv[0], "serve") == 0 &&
        strcmp(argv[1], "--help") == 0)
        return manager_usage(stdout, EXIT_OK);
    if (argc < 2 || strcmp(argv[0], "serve") != 0 || argv[1][0] == '-')
        return manager_usage(stderr, EXIT_USAGE);
    const char *sock = argv[1];
    mproc_manager_opts o = MPROC_MANAGER_OPTS_INIT;
    o.handle_signals = true;
    uid_t uids[64];
    gid_t gids[64];
    size_t nu = 0, ng = 0;
    for (int i = 2; i < argc; i++) {
        unsigned long v;
        bool has = i + 1 < argc;
        if (strcmp(argv[i], "--tcp") == 0 && has) {
            o.tcp = argv[++i];
        } else if (strcmp(argv[i], "--password-file") == 0 && has) {
            o.password_file = argv[++i];
        } else if (strcmp(argv[i], "--allow-uid") == 0 && has && nu < 64 &&
                   parse_id(argv[i + 1], &v)) {
            uids[nu++] = (uid_t)v;
            i++;
        } else if (strcmp(argv[i], "--allow-gid") == 0 && has && ng < 64 &&
                   parse_id(argv[i + 1], &v)) {
            gids[ng++] = (gid_t)v;
            i++;
        } else if (strcmp(argv[i], "--max-clients") == 0 && has &&
                   parse_id(argv[i + 1], &v) && v > 0) {
            o.max_clients = v;
            i++;
        } else {
            return manager_usage(stderr, EXIT_USAGE);
        }
    }
    o.access.uids = uids;
    o.access.n_uids = nu;
    o.access.gids = gids;
    o.access.n_gids = ng;
    signal(SIGPIPE, SIG_IGN);
    int rc = mproc_manager_serve(sock, &o, -1);
    if (rc < 0) {
        fprintf(stderr, "mproc: manager: serve %s: %s: %s\n", sock,
                mproc_errname(rc), mproc_strerror(rc));
        return rc == MPROC_EEXIST || rc == MPROC_EADDRINUSE     ? EXIT_NOTMET
               : rc == MPROC_EINVAL || rc == MPROC_ENAMETOOLONG ? EXIT_USAGE
                                                                : EXIT_SYSTEM;
    }
    return EXIT_OK;
}

#else
static int no_manager(const char *cmd)
{
    fprintf(stderr,
            "mproc: %s: this mproc was built without the manager "
            "(hiredis)\n",
            cmd);
    return EXIT_SYSTEM;
}

static int ls_remote(const char *addr)
{
    (void)addr;
    return no_manager("ls");
}

static int stat_remote(const char *addr, const char *name)
{
    (void)addr;
    (void)name;
    return no_manager("stat");
}

static int rm_remote(const char *addr, int n, char **names)
{
    (void)addr;
    (void)n;
    (void)names;
    return no_manager("rm");
}

static int cmd_manager(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return no_manager("manager");
}
#endif

static int ls_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: mproc ls [-a ADDRESS]\n"
            "  Lists the named mproc objects on this machine (in /dev/shm):\n"
            "  kind, name, size, owner uid, creator pid and whether it "
            "runs,\n"
            "  as ipcs does. With -a, the objects of the manager at ADDRESS\n"
            "  (unix:PATH, unix:@NAME, tcp:HOST:PORT): kind, name, size "
            "(items,\n"
            "  keys, value or parties) and clients waiting on it.\n"
            "exit: 0 ok, 1 the manager could not be reached in time, 2 "
            "usage,\n"
            "3 system error.\n");
    return status;
}

static int cmd_ls(int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "--help") == 0)
        return ls_usage(stdout, EXIT_OK);
    if (argc == 2 && strcmp(argv[0], "-a") == 0)
        return ls_remote(argv[1]);
    if (argc != 0)
        return ls_usage(stderr, EXIT_USAGE);
    printf(LS_FORMAT, "KIND", "NAME", "SIZE", "OWNER", "CREATOR", "ALIVE");
    int rc = mproc__region_list(print_ls, NULL);
    if (rc < 0) {
        fprintf(stderr, "mproc: ls: %s\n", mproc_strerror(rc));
        return EXIT_SYSTEM;
    }
    return EXIT_OK;
}

static int stat_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: mproc stat NAME | mproc stat -a ADDRESS NAME\n"
            "  Shows a named object's state, one \"field: value\" per line:\n"
            "  a lock's owner (thread id) and whether it lives, a "
            "semaphore's\n"
            "  value, an event's flag, a barrier's parties and waiting "
            "count, a\n"
            "  block's size. With -a, an object of the manager at ADDRESS: "
            "a\n"
            "  queue's depth, bound, unfinished tasks and waiters, a lock's "
            "owner\n"
            "  pid and depth, a barrier's count.\n"
            "exit: 0 ok, 1 no such object, 2 usage, 3 system error.\n");
    return status;
}

typedef struct find_arg {
    const char *name;
    mproc__region_info info;
    bool found;
} find_arg;

static int find_region(const mproc__region_info *info, void *arg)
{
    find_arg *f = arg;
    if (strcmp(info->name, f->name) != 0)
        return 0;
    f->info = *info;
    f->info.name = f->name;
    f->found = true;
    return 1;
}

static int stat_local(const char *name)
{
    find_arg f = {name, {0}, false};
    int rc = mproc__region_list(find_region, &f);
    if (rc < 0) {
        fprintf(stderr, "mproc: stat: %s\n", mproc_strerror(rc));
        return EXIT_SYSTEM;
    }
    if (!f.found) {
        fprintf(stderr, "mproc: stat: %s: no such object\n", name);
        return EXIT_NOTMET;
    }
    printf("name: %s\nkind: %s\nsize: %llu\nowner: %u\n", name,
           kind_name(f.info.kind), (unsigned long long)f.info.size,
           (unsigned)f.info.owner);
    if (f.info.creator > 0)
        printf("creator: %d (%s)\n", (int)f.info.creator,
               f.info.creator_alive > 0    ? "alive"
               : f.info.creator_alive == 0 ? "gone"
                                           : "unknown");
    if (f.info.state != MPROC__REGION_OK) {
        printf("state: damaged\n");
        return EXIT_OK;
    }
    switch (f.info.kind) {
    case MPROC__KIND_LOCK:
    case MPROC__KIND_RLOCK: {
        mproc_lock *l;
        rc = mproc_lock_open(&l, name, NULL);
        if (rc < 0)
            break;
        uint32_t w = atomic_load(&l->lw->word) & MPROC__LOCK_TIDMASK;
        if (w == 0 || w == MPROC__LOCK_NOTREC)
            printf("held: no\n");
        else
            printf("held: yes\nowner_tid: %u (%s)\n", (unsigned)w,
                   mproc__lockword_owner_dead(l->lw) ? "dead" : "alive");
        printf("inconsistent: %u\n",
               (unsigned)atomic_load(&l->lw->inconsistent));
        mproc_lock_close(l);
        break;
    }
    case MPROC__KIND_SEMAPHORE:
    case MPROC__KIND_BSEMAPHORE: {
        mproc_semaphore *sem;
        rc = mproc_semaphore_open(&sem, name, NULL);
        if (rc < 0)
            break;
        uint32_t v = 0;
        rc = mproc_semaphore_value(sem, &v);
        if (rc == 0)
            printf("value: %u\n", v);
        mproc_semaphore_close(sem);
        break;
    }
    case MPROC__KIND_EVENT: {
        mproc_event *e;
        rc = mproc_event_open(&e, name, NULL);
        if (rc < 0)
            break;
        printf("set: %d\n", mproc_event_is_set(e));
        mproc_event_close(e);
        break;
    }
    case MPROC__KIND_BARRIER: {
        mproc_barrier *b;
        rc = mproc_barrier_open(&b, name, NULL);
        if (rc < 0)
            break;
        printf("parties: %u\nwaiting: %u\nbroken: %d\n",
               (unsigned)mproc_barrier_parties(b),
               (unsigned)mproc_barrier_n_waiting(b), mproc_barrier_broken(b));
        mproc_barrier_close(b);
        break;
    }
    case MPROC__KIND_QUEUE:
    case MPROC__KIND_JQUEUE: {
        mproc_queue *q;
        rc = mproc_queue_open(&q, name, NULL);
        if (rc < 0)
            break;
        mproc_queue_stats st;
        mproc_queue_stat(q, &st);
        printf("depth: %zu\nmaxsize: %zu\ncapacity: %zu\nshut_down: %d\n",
               st.depth, mproc_queue_maxsize(q), mproc_queue_capacity(q),
               mproc_queue_is_shutdown(q));
        printf("consumer_waiting: %s\nproducer_waiting: %s\n",
               st.consumer_waiting ? "yes" : "no",
               st.producer_waiting ? "yes" : "no");
        if (st.producer_tid != 0)
            printf("producers_lock_tid: %d\n", (int)st.producer_tid);
        if (st.consumer_tid != 0)
            printf("consumers_lock_tid: %d\n", (int)st.consumer_tid);
        printf("consumer_places: %u\n", st.consumer_places);
        if (mproc_queue_is_joinable(q) == 1)
            printf("unfinished_tasks: %zu\n", st.unfinished);
        mproc_queue_close(q);
        break;
    }
    default:
        break;
    }
    if (rc < 0) {
        fprintf(stderr, "mproc: stat: %s: %s: %s\n", name, mproc_errname(rc),
                mproc_strerror(rc));
        return rc == MPROC_EDENIED || rc == MPROC_EACCES ? EXIT_NOTMET
                                                         : EXIT_SYSTEM;
    }
    return EXIT_OK;
}

static int cmd_stat(int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "--help") == 0)
        return stat_usage(stdout, EXIT_OK);
    if (argc == 3 && strcmp(argv[0], "-a") == 0)
        return stat_remote(argv[1], argv[2]);
    if (argc != 1 || argv[0][0] == '-')
        return stat_usage(stderr, EXIT_USAGE);
    return stat_local(argv[0]);
}

static int rm_usage(FILE *out, int status)
{
    fprintf(out,
            "usage: mproc rm NAME... | mproc rm -a ADDRESS NAME...\n"
            "  Removes named mproc objects from /dev/shm (never a file mproc "
            "did\n"
            "  not make; damaged objects too), or with -a the objects of the\n"
            "  manager at ADDRESS (DEL).\n"
            "exit: 0 all removed, 1 some did not exist (or were not mproc's),"
            "\n2 usage, 3 system error.\n");
    return status;
}

static int cmd_rm(int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "--help") == 0)
        return rm_usage(stdout, EXIT_OK);
    if (argc >= 3 && strcmp(argv[0], "-a") == 0)
        return rm_remote(argv[1], argc - 2, argv + 2);
    if (argc < 1 || argv[0][0] == '-')
        return rm_usage(stderr, EXIT_USAGE);
    char *args[argc + 2];
    args[0] = "unlink";
    for (int i = 0; i < argc; i++)
        args[i + 1] = argv[i];
    args[argc + 1] = NULL;
    return cmd_shm(argc + 1, args);
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
    if (strcmp(cmd, "ls") == 0)
        return cmd_ls(argc - 2, argv + 2);
    if (strcmp(cmd, "stat") == 0)
        return cmd_stat(argc - 2, argv + 2);
    if (strcmp(cmd, "rm") == 0)
        return cmd_rm(argc - 2, argv + 2);
    if (strcmp(cmd, "manager") == 0)
        return cmd_manager(argc - 2, argv + 2);
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
