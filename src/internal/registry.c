/*
 * The registry of objects that hold fds (internal/registry.h): a doubly
 * linked list through the objects themselves, under a pidlock
 * (internal/pidlock.h), so that a forked child can tell a lock its parent's
 * thread held (and take it over) from one its own threads hold.
 */
#include "internal/registry.h"

#include <stdatomic.h>
#include <stdint.h>

#include "internal/pidlock.h"

static _Atomic uint32_t lock_word; /* a pidlock */
static mproc__reg_node *head, *tail;

/* After taking over a lock whose holder was a thread of the parent: the
 * forward chain is whole (every change commits with one store to it), the
 * back links and the tail may not be. */
static void repair(void)
{
    mproc__reg_node *prev = NULL;
    for (mproc__reg_node *n = head; n != NULL; n = n->next) {
        n->prev = prev;
        n->linked = true;
        prev = n;
    }
    tail = prev;
}

void mproc__reg_lock(void)
{
    if (mproc__pidlock_lock(&lock_word))
        repair(); /* held by the parent's thread at the fork */
}

void mproc__reg_unlock(void)
{
    mproc__pidlock_unlock(&lock_word);
}

void mproc__reg_release_in_child(void)
{
    atomic_store_explicit(&lock_word, 0, memory_order_release);
}

static void unlink_locked(mproc__reg_node *n)
{
    if (!n->linked)
        return;
    if (n->prev != NULL)
        n->prev->next = n->next;
    else
        head = n->next;
    if (n->next != NULL)
        n->next->prev = n->prev;
    else
        tail = n->prev;
    n->prev = n->next = NULL;
    n->linked = false;
}

void mproc__reg_add(mproc__reg_node *n, const mproc__reg_ops *ops,
                    const void *obj)
{
    mproc__reg_lock();
    if (!n->linked) {
        n->ops = ops;
        n->obj = obj;
        n->next = NULL;
        n->prev = tail;
        n->linked = true;
        if (tail != NULL)
            tail->next = n;
        else
            head = n;
        tail = n;
    }
    mproc__reg_unlock();
}

void mproc__reg_remove(mproc__reg_node *n)
{
    if (n == NULL)
        return;
    mproc__reg_lock();
    unlink_locked(n);
    mproc__reg_unlock();
}

mproc__reg_node *mproc__reg_first(void)
{
    return head;
}

mproc__reg_node *mproc__reg_next(const mproc__reg_node *n)
{
    return n->next;
}

bool mproc__reg_is_end(const void *obj)
{
    for (mproc__reg_node *n = head; n != NULL; n = n->next)
        if (n->obj == obj && n->ops->sever != NULL)
            return true;
    return false;
}

void mproc__reg_sever(mproc__reg_node *n)
{
    unlink_locked(n);
    n->ops->sever(n);
}
