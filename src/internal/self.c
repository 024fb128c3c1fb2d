/*
 * The process's own name and identity, the one piece of per-process state
 * mproc keeps (Python's current_process()). Written only in a child right
 * after fork, before other threads exist, and read anywhere after.
 */
#include "internal/self.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static char self_name[MPROC__NAME_MAX] = "MainProcess";
static char self_identity[MPROC__NAME_MAX] = "";
static atomic_uint child_counter;
static char parent_name[MPROC__NAME_MAX];
static pid_t parent_pid;
static pid_t parent_for; /* the pid parent_pid was recorded in */

const char *mproc__self_name(void)
{
    return self_name;
}

void mproc__self_set_name(const char *name)
{
    strncpy(self_name, name, sizeof self_name - 1);
    self_name[sizeof self_name - 1] = '\0';
}

const char *mproc__self_identity(void)
{
    return self_identity;
}

void mproc__self_set_identity(const char *identity)
{
    strncpy(self_identity, identity, sizeof self_identity - 1);
    self_identity[sizeof self_identity - 1] = '\0';
}

unsigned mproc__self_next_child(void)
{
    return atomic_fetch_add(&child_counter, 1) + 1;
}

void mproc__self_reset_children(void)
{
    atomic_store(&child_counter, 0);
}

void mproc__self_set_parent(pid_t pid, const char *name)
{
    strncpy(parent_name, name, sizeof parent_name - 1);
    parent_name[sizeof parent_name - 1] = '\0';
    parent_pid = pid;
    parent_for = getpid();
}

pid_t mproc__self_parent(const char **name)
{
    if (parent_pid == 0 || getpid() != parent_for)
        return 0;
    if (name != NULL)
        *name = parent_name;
    return parent_pid;
}
