/* The worker's dying children. See dying.h. */
#include "worker/dying.h"

#include <sys/wait.h>

#include "worker/reap.h"
#include "worker/tmpdir.h"

void dying_reap(struct dying *d, bool block)
{
    for (int i = 0; i < d->n;) {
        /* Not yet exited: keep it. Reaped, or not our child at all
         * (-ECHILD): its temp dir can go. */
        if (reap_wait(d->children[i].pid, block ? 0 : WNOHANG, NULL, NULL) == 0) {
            i++;
            continue;
        }
        tmpdir_remove(d->children[i].tmpdir);
        d->children[i] = d->children[--d->n];
    }
}

void dying_add(struct dying *d, const struct child *c)
{
    if (d->n == DYING_MAX)
        dying_reap(d, true);
    d->children[d->n++] = *c;
}
