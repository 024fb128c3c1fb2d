/*
 * A listener and a client (Python: multiprocessing.connection.Listener and
 * Client) between unrelated processes over a Unix socket path. The listener
 * learns the client's pid and uid from the kernel and admits only its own
 * uid (the default).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"

static int client(const char *path)
{
    mproc_conn *c;
    /* Retries until the listener is there, at most 5 s. */
    int rc = mproc_client_open(&c, path, 5000);
    if (rc != 0) {
        fprintf(stderr, "client: %s\n", mproc_strerror(rc));
        return 1;
    }
    mproc_conn_send(c, "ping", 4, 5000);
    char buf[32];
    size_t n;
    rc = mproc_conn_recv(c, buf, sizeof buf - 1, &n, 5000);
    if (rc == 0) {
        buf[n] = '\0';
        printf("client got: %s\n", buf);
    }
    mproc_conn_close(c);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "client") == 0)
        return client(argv[2]);
    char dir[] = "/tmp/mproc-sock-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    char path[64];
    snprintf(path, sizeof path, "%s/listener.sock", dir);
    mproc_listener *l;
    int rc = mproc_listener_open(&l, path, NULL); /* mode 0600 */
    if (rc != 0) {
        fprintf(stderr, "listen: %s\n", mproc_strerror(rc));
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execl("/proc/self/exe", argv[0], "client", path, (char *)NULL);
        _exit(127);
    }
    mproc_conn *c;
    mproc_peer peer;
    rc = mproc_listener_accept(l, &c, &peer, 5000);
    if (rc == 0) {
        printf("listener: accepted pid %d uid %d\n", (int)peer.pid,
               (int)peer.uid);
        char buf[32];
        size_t n;
        rc = mproc_conn_recv(c, buf, sizeof buf - 1, &n, 5000);
        if (rc == 0) {
            buf[n] = '\0';
            printf("listener got: %s\n", buf);
            rc = mproc_conn_send(c, "pong", 4, 5000);
        }
        mproc_conn_close(c);
    } else {
        fprintf(stderr, "accept: %s\n", mproc_strerror(rc));
    }
    mproc_listener_close(l); /* removes the socket path */
    rmdir(dir);
    int st;
    waitpid(pid, &st, 0);
    return rc == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
