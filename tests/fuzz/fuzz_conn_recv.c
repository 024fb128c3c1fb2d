/*
 * Fuzzes the buffered frame reader behind every connection: the input is
 * what a peer wrote (first byte: which kind of connection and which calls
 * the receiver makes), delivered through a pipe or a socketpair that is
 * then closed. Every call must return a documented code, never crash or
 * leak, and stop with MPROC_ECLOSED or MPROC_EPROTO.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mproc.h"

#define MAX_INPUT 60000 /* fits in a pipe's buffer, so one write suffices */

static int expected(int rc)
{
    /* Never MPROC_ETIMEDOUT: the peer closed before the first call, so a
     * timeout means a reader that waits for bytes that cannot come. */
    return rc == 0 || rc == MPROC_ECLOSED || rc == MPROC_EPROTO ||
           rc == MPROC_EMSGSIZE || rc == MPROC_ESTATE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    int fds[2];
    int sock = mode & 1;
    if (sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds)
             : pipe2(fds, O_CLOEXEC))
        return 0;
    int rfd = sock ? fds[1] : fds[0], wfd = sock ? fds[0] : fds[1];
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(wfd, data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    close(wfd);
    mproc_conn *c;
    if (mproc_conn_from_fd(&c, rfd, MPROC_CONN_MESSAGES) != 0)
        abort();
    size_t cap = (mode >> 1) & 1 ? 16 : 4096;
    unsigned char *buf = malloc(cap);
    for (int i = 0; i < 100000; i++) {
        size_t len = 0, limit = cap; /* the largest len a success may give */
        int rc;
        switch ((mode >> 2) & 3) {
        case 0:
            rc = mproc_conn_recv(c, buf, cap, &len, 0);
            if (rc == MPROC_EMSGSIZE) {
                void *p = NULL;
                limit = 1 << 20;
                rc = mproc_conn_recv_alloc(c, &p, &len, 1 << 20, 0);
                free(p);
            }
            break;
        case 1: {
            void *p = NULL;
            /* A guard well above any input, below what the allocator
             * refuses (a peer may claim up to 2^48 bytes). */
            rc = mproc_conn_recv_alloc(c, &p, &len, 1 << 24, 0);
            limit = 1 << 24;
            free(p);
            break;
        }
        case 2: {
            int fd = -1;
            rc = mproc_conn_recv_fd(c, &fd, 0);
            if (rc == 0)
                close(fd);
            if (rc == MPROC_ESTATE || rc == MPROC_ENOTSOCK)
                rc = mproc_conn_recv(c, buf, cap, &len, 0);
            break;
        }
        default:
            rc = mproc_conn_poll(c, 0);
            if (rc == 0)
                rc = mproc_conn_recv(c, buf, cap, &len, 0);
            break;
        }
        if (!expected(rc)) {
            fprintf(stderr, "unexpected %s\n", mproc_errname(rc));
            abort();
        }
        if (rc == 0 && len > limit)
            abort();
        /* EMSGSIZE beyond the guard, a frame that carries an fd on a
         * pipe, or a message cut by the peer closing: the stream ends. */
        if (rc == MPROC_ECLOSED || rc == MPROC_EPROTO || rc == MPROC_EMSGSIZE ||
            rc == MPROC_ESTATE)
            break;
    }
    free(buf);
    mproc_conn_close(c);
    return 0;
}
