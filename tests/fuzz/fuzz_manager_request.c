/*
 * Fuzzes the manager's request path: RESP2 and inline requests parsed
 * (hiredis's reader and the inline splitter) and run against the store by
 * two clients, cut into pieces at every place (the first byte chooses the
 * piece size), blocking commands timed out at once.
 */
#include <stddef.h>
#include <stdint.h>

#include "internal/manager.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        size = 1 << 16;
    return mproc__mgr_fuzz_one(data, size);
}
