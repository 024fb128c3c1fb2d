/*
 * access: the mproc_access rules (access.h): who may own a named object's
 * file, and which peers a listener accepts.
 */
#include "internal/access.h"

#include <unistd.h>

#include "mproc/error.h"

bool mproc__access_valid(const mproc_access *a)
{
    return (a->n_uids == 0 || a->uids != NULL) &&
           (a->n_gids == 0 || a->gids != NULL);
}

bool mproc__access_lists(const mproc_access *a, uid_t uid, gid_t gid)
{
    for (size_t i = 0; i < a->n_uids; i++)
        if (a->uids[i] == uid)
            return true;
    for (size_t i = 0; i < a->n_gids; i++)
        if (a->gids[i] == gid)
            return true;
    return false;
}

int mproc__access_check_file(const struct stat *st, const mproc_access *a)
{
    if ((st->st_mode & 07000) != 0)
        return MPROC_EDENIED;
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0 && !a->shared_write)
        return MPROC_EDENIED;
    if (st->st_uid != geteuid() &&
        !mproc__access_lists(a, st->st_uid, st->st_gid))
        return MPROC_EDENIED;
    return 0;
}
