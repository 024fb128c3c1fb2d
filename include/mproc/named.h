/*
 * mproc/named.h: what every named object shares (shared memory blocks,
 * values and arrays, locks and the other sync objects, and the objects that
 * come later): the rules for names and who may open them.
 *
 * A name is "/name": a leading '/', then 1 to NAME_MAX-1 bytes without
 * another '/'. The object is a file in /dev/shm. create makes it with
 * O_EXCL (MPROC_EEXIST when the name exists); open reads everything its
 * creator chose (kind, sizes, flags) from the object itself and never asks
 * the caller to restate it; close drops this process's handle; unlink
 * removes the name (the object lives on while some process has it open).
 *
 * Every create and open takes the object's own options struct (NULL for
 * defaults). Fields that only a creator chooses (a mode, a size, a kind)
 * are ignored by open; the `access` member says whose objects open
 * accepts.
 */
#ifndef MPROC_NAMED_H
#define MPROC_NAMED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mproc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Whose named objects an open accepts. By default (all zero) open accepts
 * only a file owned by this process's effective uid whose mode grants no
 * write permission to group or others.
 *   uids, n_uids     further owners (uids) whose objects are accepted;
 *   gids, n_gids     further groups: a file whose group is listed is
 *                    accepted whoever owns it;
 *   shared_write     accept a file whose mode lets its group or others
 *                    write it.
 * The arrays are read only during the call.
 */
typedef struct mproc_access {
    const uid_t *uids;
    size_t n_uids;
    const gid_t *gids;
    size_t n_gids;
    bool shared_write;
} mproc_access;

#define MPROC_ACCESS_INIT                                                      \
    {                                                                          \
        NULL, 0, NULL, 0, false                                                \
    }

#ifdef __cplusplus
}
#endif
#endif /* MPROC_NAMED_H */
