/*
 * A dict and a list in a manager, edited by four worker processes at once:
 * each counts its visits in the dict (HINCRBY, so no update is lost) and
 * appends its name to the list. The parent prints both.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

typedef struct shared {
    mproc_mdict *d;
    mproc_mlist *l;
} shared;

static int worker(void *arg)
{
    shared *s = arg;
    for (int i = 0; i < 100; i++) {
        int rc = mproc_mdict_incr(s->d, "visits", MPROC_MSTR, 1, NULL, 5000);
        if (rc != 0)
            return rc;
    }
    int rc = mproc_mdict_set(s->d, mproc_current_name(), MPROC_MSTR, "done",
                             MPROC_MSTR, 5000);
    if (rc == 0)
        rc = mproc_mlist_append(s->l, mproc_current_name(), MPROC_MSTR, NULL,
                                5000);
    return rc;
}

int main(void)
{
    mproc_manager *m;
    mproc_mclient *c;
    shared s = {NULL, NULL};
    int rc = mproc_manager_start(&m, NULL, NULL);
    if (rc != 0)
        return 1;
    rc = mproc_mclient_open(&c, mproc_manager_address(m), NULL, 5000);
    if (rc == 0)
        rc = mproc_mdict_open(&s.d, c, "stats");
    if (rc == 0)
        rc = mproc_mlist_open(&s.l, c, "finished");
    mproc_process *p[4];
    int started = 0;
    for (; started < 4 && rc == 0; started++)
        rc = mproc_process_start(&p[started], worker, &s, NULL);
    for (int i = 0; i < started; i++) {
        int code = -1;
        mproc_process_join(p[i], 10000);
        mproc_process_exitcode(p[i], &code);
        if (code != 0 && rc == 0)
            rc = MPROC_ECHILD;
        mproc_process_destroy(p[i]);
    }
    int64_t visits = 0;
    if (rc == 0)
        rc = mproc_mdict_get_i64(s.d, "visits", MPROC_MSTR, &visits, 5000);
    if (rc == 0)
        printf("visits: %lld (4 workers x 100)\n", (long long)visits);
    mproc_mreply *items = NULL;
    if (rc == 0)
        rc = mproc_mlist_range(s.l, 0, -1, &items, 5000);
    if (rc == 0) {
        printf("finished, in order:");
        for (size_t i = 0; i < items->elements; i++)
            printf(" %s", items->element[i]->str);
        printf("\n");
    }
    mproc_mreply_free(items);
    if (rc != 0)
        fprintf(stderr, "dict and list: %s\n", mproc_strerror(rc));
    mproc_mdict_close(s.d);
    mproc_mlist_close(s.l);
    mproc_mclient_close(c);
    mproc_manager_destroy(m);
    return rc == 0 && visits == 400 ? 0 : 1;
}
