/*
 * access: the rules of mproc_access (mproc/named.h), in one place for every
 * named thing that checks them: shared-memory objects at open (region.c),
 * FIFOs at open and listeners at accept (conn_named.c).
 */
#ifndef MPROC_INTERNAL_ACCESS_H
#define MPROC_INTERNAL_ACCESS_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mproc/named.h"

/* False for lists that are not there but have a count (the caller's
 * MPROC_EINVAL). */
bool mproc__access_valid(const mproc_access *a);

/* Whether uid is listed in a, or gid is. */
bool mproc__access_lists(const mproc_access *a, uid_t uid, gid_t gid);

/*
 * Whether a file (its fstat or lstat) may be used: owned by this process's
 * effective uid or by a listed uid, or of a listed group; writable by
 * group or others only when a->shared_write; no setuid, setgid or sticky
 * bit (mproc never sets them). 0 or MPROC_EDENIED. Whoever may write a
 * file can truncate it under a mapping (SIGBUS at the next access) or
 * scribble on it, so its owner must be trusted and nobody else may write
 * unless the caller accepts that.
 */
int mproc__access_check_file(const struct stat *st, const mproc_access *a);

#endif
