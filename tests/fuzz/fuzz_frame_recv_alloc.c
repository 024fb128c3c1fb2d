/*
 * Fuzzes the unbuffered frame reader of the process failure channel
 * (mproc__frame_recv_alloc): the input is what a child wrote before dying.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal/frame.h"
#include "mproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 60000)
        size = 60000;
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        return 0;
    if (size > 0 && write(p[1], data, size) != (ssize_t)size)
        abort();
    close(p[1]);
    mproc__deadline d = mproc__deadline_forever();
    for (;;) {
        void *out = NULL;
        size_t len = 0;
        int rc = mproc__frame_recv_alloc(p[0], &out, &len, 1 << 16, &d);
        if (rc == 0) {
            if (((char *)out)[len] != '\0')
                abort();
            free(out);
            continue;
        }
        if (rc != MPROC_ECLOSED && rc != MPROC_EPROTO && rc != MPROC_EMSGSIZE)
            abort();
        break;
    }
    close(p[0]);
    return 0;
}
