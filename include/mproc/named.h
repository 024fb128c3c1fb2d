/*
 * mproc/named.h: what every named object shares (shared memory blocks,
 * values and arrays, locks and the other sync objects, and the objects that
 * come later): the rules for names and who may open them. The threat model
 * behind them is in docs/security.md.
 *
 * Names. A name is "/name": a leading '/', then 1 to NAME_MAX-1 bytes
 * without another '/', and neither "/." nor "/.." (MPROC_EINVAL from every
 * create, open and unlink; MPROC_ENAMETOOLONG when too long). The object is
 * a file in /dev/shm. Names starting with "/mproc-tmp-" are the library's
 * (MPROC_EINVAL from create).
 *
 * Create makes the object completely in a file nobody else can reach and
 * only then links it to its name, atomically (MPROC_EEXIST when the name
 * exists, and only then): an opener finds the name complete or not at all,
 * a creator killed half way leaves no name, and names planted by another
 * user can neither make create fail nor be taken for the object (should
 * 64 random temporary names all be taken, create says MPROC_EAGAIN).
 *
 * Generated names. A create name ending in "XXXXXX" is a template (as
 * mkstemp's): create replaces those six characters with random letters and
 * digits, trying again while the result exists, so two creates from one
 * template make two objects. Read the result with mproc_<object>_name().
 * MPROC_EEXIST then means that every name tried existed. open and unlink
 * take names literally.
 *
 * Mode. opts->mode gives a named object's permission bits (0: 0600; the
 * umask does not apply). Bits above 0777 (setuid, setgid, sticky) are
 * MPROC_EINVAL from every create. A mode that lets group or others write
 * is made as asked, but every process that opens such an object, its
 * creator included, must accept it with `shared_write` (below): whoever
 * may write the file may also shrink it, and a process touching a mapping
 * past the end of its file dies of SIGBUS.
 *
 * Open reads everything its creator chose (kind, sizes, flags) from the
 * object itself and never asks the caller to restate it; close drops this
 * process's handle; unlink removes the name (the object lives on while
 * some process has it open).
 *
 * Something else under a name: a symlink, a directory, a FIFO, a file
 * without mproc's header, or an mproc object of another kind is
 * MPROC_EBADOBJ from open and unlink (never followed, never removed);
 * create reports MPROC_EEXIST. An mproc object whose file was truncated or
 * whose header sizes were scribbled on is MPROC_EBADOBJ from open, but its
 * own kind's unlink still removes it (so does `mproc shm unlink`, and
 * `mproc shm list` shows it as damaged). A file cut shorter than 20 bytes
 * no longer tells its kind, and only `mproc shm unlink` removes it; one cut
 * below 8 bytes no longer shows it is mproc's and is left alone.
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
 * Whose named objects an open accepts, checked on the opened file before
 * anything is mapped. By default (all zero, or opts NULL) open accepts only
 * a file owned by this process's effective uid whose mode grants no write
 * permission to group or others. Root is no exception: a root process
 * opens another user's object only when that user is listed.
 *   uids, n_uids     further owners (uids) whose objects are accepted;
 *   gids, n_gids     further groups: a file whose group is listed is
 *                    accepted whoever owns it;
 *   shared_write     accept a file whose mode lets its group or others
 *                    write it (needed as well for an object shared through
 *                    a group: mode 0660). Anyone who can write the file can
 *                    shrink it and make this process die of SIGBUS at its
 *                    next access to the object, or scribble on it.
 * A file with setuid, setgid or sticky bits is never accepted.
 * Errors of every open: MPROC_EDENIED when the file's owner, group or mode
 * is not accepted; MPROC_EINVAL when a count is not 0 but its array is
 * NULL. (MPROC_EACCES is the system's: the file's mode does not let this
 * user open it at all.) The arrays are read only during the call.
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
