/*
 * An unrelated process attaching to a running manager: this program starts
 * a manager on a socket path, then runs a second program (itself, with
 * "attach ADDRESS") that knows only the address. The second one bumps a
 * counter, reads a greeting and leaves a reply; the first prints them.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

static int attach(const char *address)
{
    mproc_mclient *c;
    int rc = mproc_mclient_open(&c, address, NULL, 5000);
    if (rc != 0) {
        fprintf(stderr, "attach: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_mvalue *counter, *greeting, *reply;
    mproc_mvalue_open(&counter, c, "counter");
    mproc_mvalue_open(&greeting, c, "greeting");
    mproc_mvalue_open(&reply, c, "reply");
    void *text = NULL;
    size_t len;
    int64_t n = 0;
    rc = mproc_mvalue_incr(counter, 1, &n, 5000);
    if (rc == 0)
        rc = mproc_mvalue_get(greeting, &text, &len, 5000);
    if (rc == 0) {
        printf("attached (pid %d, over %s): counter is %lld, greeting '%s'\n",
               (int)getpid(), mproc_mclient_transport(c), (long long)n,
               (char *)text);
        rc = mproc_mvalue_set(reply, "hello from an unrelated process",
                              MPROC_MSTR, 5000);
    }
    free(text);
    mproc_mvalue_close(counter);
    mproc_mvalue_close(greeting);
    mproc_mvalue_close(reply);
    mproc_mclient_close(c);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "attach") == 0)
        return attach(argv[2]);
    char dir[] = "/tmp/mproc-manager-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char address[96];
    snprintf(address, sizeof address, "unix:%s/manager.sock", dir);
    mproc_manager *m;
    int rc = mproc_manager_start(&m, address, NULL);
    if (rc != 0) {
        fprintf(stderr, "manager: %s\n", mproc_strerror(rc));
        rmdir(dir);
        return 1;
    }
    mproc_mclient *c;
    mproc_mvalue *greeting = NULL, *reply = NULL;
    rc = mproc_mclient_open(&c, address, NULL, 5000);
    if (rc == 0) {
        mproc_mvalue_open(&greeting, c, "greeting");
        mproc_mvalue_open(&reply, c, "reply");
        rc =
            mproc_mvalue_set(greeting, "hi, whoever you are", MPROC_MSTR, 5000);
    }
    /* A program of its own, started by exec: it shares nothing with this
     * one but the address. */
    char *args[] = {argv[0], "attach", address, NULL};
    mproc_process *p = NULL;
    if (rc == 0)
        rc = mproc_process_spawn(&p, "/proc/self/exe", args, NULL);
    int code = -1;
    if (rc == 0 && (rc = mproc_process_join(p, 10000)) == 0)
        mproc_process_exitcode(p, &code);
    mproc_process_destroy(p);
    void *text = NULL;
    size_t len;
    if (rc == 0 && code == 0)
        rc = mproc_mvalue_get(reply, &text, &len, 5000);
    if (rc == 0 && code == 0)
        printf("the manager now holds reply '%s'\n", (char *)text);
    free(text);
    mproc_mvalue_close(greeting);
    mproc_mvalue_close(reply);
    mproc_mclient_close(c);
    mproc_manager_destroy(m); /* removes the socket file */
    rmdir(dir);
    return rc == 0 && code == 0 ? 0 : 1;
}
