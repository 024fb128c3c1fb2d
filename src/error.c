/*
 * Error codes: names and messages for every MPROC_E* code, from the one
 * table in mproc/error.h. Nothing here allocates, so both lookups are safe
 * from any thread and from a signal handler or a freshly forked child.
 */
#include "mproc/error.h"

#include <string.h>

const char *mproc_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define X(name, value, msg)                                                    \
    case value:                                                                \
        return msg;
        MPROC_ERRNO_MAP(X)
#undef X
    default:
        break;
    }
    if (code < 0 && code > MPROC_ERR_BASE) {
        const char *s = strerrordesc_np(-code);
        if (s != NULL)
            return s;
    }
    return "unknown error";
}

const char *mproc_errname(int code)
{
    switch (code) {
    case 0:
        return "MPROC_OK";
#define X(name, value, msg)                                                    \
    case value:                                                                \
        return "MPROC_" #name;
        MPROC_ERRNO_MAP(X)
#undef X
    default:
        break;
    }
    if (code < 0 && code > MPROC_ERR_BASE) {
        const char *s = strerrorname_np(-code);
        if (s != NULL)
            return s;
    }
    return "MPROC_EUNKNOWN";
}
