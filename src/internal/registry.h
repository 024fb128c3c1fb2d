/*
 * The objects of this process that hold file descriptors: connection ends
 * and listeners (which a child started with inherit_only closes unless it
 * keeps them), and loggers, Events and process handles (whose fds stay
 * usable in a child). The objects link themselves in (an intrusive list:
 * adding never allocates and never fails); the process module walks the
 * list in a freshly forked child and to list the live children.
 *
 * Fork: the lock records the pid of the process whose thread holds it.
 * mproc_process_start() holds it across fork, so its children find the
 * list whole; a child forked by other means while another thread held it
 * takes it over and repairs the back links (the forward chain is always
 * whole: each change commits with one store to it).
 */
#ifndef MPROC_INTERNAL_REGISTRY_H
#define MPROC_INTERNAL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct mproc__reg_node mproc__reg_node;

typedef struct mproc__reg_ops {
    /* Writes up to cap of the fds the object holds into out (negative ones
     * may be written; they are ignored) and returns how many it holds. */
    size_t (*fds)(const mproc__reg_node *n, int *out, size_t cap);
    /* For an end that a child may drop: closes its fds and leaves the
     * handle inert (its calls fail, its close only frees it). NULL for an
     * object that stays usable in a child. Called in a single-threaded
     * child, with the registry locked. */
    void (*sever)(mproc__reg_node *n);
} mproc__reg_ops;

/* Embedded in each registered object. Zero-initialised means "not
 * registered". */
struct mproc__reg_node {
    const mproc__reg_ops *ops;
    const void *obj; /* the object, as callers name it (a mproc_conn *) */
    mproc__reg_node *prev, *next;
    bool linked;
};

/* Links n (idempotent: a node already linked stays where it is). */
void mproc__reg_add(mproc__reg_node *n, const mproc__reg_ops *ops,
                    const void *obj);

/* Unlinks n; a node not linked (never added, or severed) is ignored. */
void mproc__reg_remove(mproc__reg_node *n);

/* The registry lock, for walks and to hold across fork. Not recursive:
 * add and remove take it themselves. */
void mproc__reg_lock(void);
void mproc__reg_unlock(void);

/* In a child forked while its parent's thread held the lock: releases it
 * (the holder does not exist here). */
void mproc__reg_release_in_child(void);

/* With the lock held: the first node, and the one after n, in the order
 * they were added (NULL at the end). */
mproc__reg_node *mproc__reg_first(void);
mproc__reg_node *mproc__reg_next(const mproc__reg_node *n);

/* With the lock held: whether obj is the object of a linked node whose
 * ops can sever it (an end). Compares pointers only. */
bool mproc__reg_is_end(const void *obj);

/* With the lock held, in a child: unlinks n and severs it. */
void mproc__reg_sever(mproc__reg_node *n);

#endif
