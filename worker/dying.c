/* The worker's dying children. See dying.h. */
#include "worker/dying.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/reap.h"
#include "worker/tmpdir.h"
#include "common/wipe.h"

/* A child inherits this process's memory: free only through wipe_free (wipe.h). */
#pragma GCC poison free realloc

/* A temp dir that cannot be removed would take from every later request's
 * cap (or the host's disk): say why; the worker then exits, to be replaced
 * (the template removes its scratch dir). */
static void cannot_remove(struct dying *d, const char *path, int err)
{
    fprintf(stderr, "pyexecd: worker %d: cannot remove %s: %s; this worker is replaced\n", getpid(),
            path, strerror(-err));
    d->broken = true;
}

/* Entries a temp dir may hold to be removed by the worker itself; a bigger
 * one is removed by a process of its own, so the next request does not wait. */
#define SMALL_TREE 64

static void reap_removers(struct dying *d, bool block)
{
    for (int i = 0; i < d->nremovers;) {
        int st;
        pid_t r = reap_wait(d->removers[i], block ? 0 : WNOHANG, &st, NULL);
        if (r == 0) {
            i++;
            continue;
        }
        if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
            cannot_remove(d, "a temp dir", -EIO); /* the remover said which */
        d->removers[i] = d->removers[--d->nremovers];
    }
}

/* A tmpfs temp dir goes on the list dying_unmount works through. */
static void queue_unmount(struct dying *d, const char *path, bool reaped)
{
    if (d->nunmount == DYING_MAX)
        dying_unmount(d);
    if (d->nunmount == DYING_MAX) { /* every one failed, its child alive */
        cannot_remove(d, path, -EBUSY);
        return;
    }
    snprintf(d->unmount[d->nunmount].path, TMPDIR_PATH_MAX, "%s", path);
    d->unmount[d->nunmount].reaped = reaped;
    d->unmount[d->nunmount++].failed = false;
}

/* A reaped child's tmpfs temp dir: not queued, dying_unmount detached it
 * already; queued, its unmount now counts (a failure retires the worker),
 * and one that failed while the child lived is tried again here and now,
 * before any other script runs. */
static void unmount_reaped(struct dying *d, const char *path)
{
    for (int i = 0; i < d->nunmount; i++) {
        if (strcmp(d->unmount[i].path, path))
            continue;
        if (!d->unmount[i].failed) {
            d->unmount[i].reaped = true;
            return;
        }
        int r = tmpdir_remove(path);
        if (r)
            cannot_remove(d, path, r);
        d->unmount[i] = d->unmount[--d->nunmount];
        return;
    }
}

/* A plain temp dir, once its child is reaped: no write of the child's can
 * still be in flight. */
static void remove_plain(struct dying *d, const char *path)
{
    /* The usual temp dir (out/ and a few files) goes here, in microseconds;
     * a fork of this whole process would take a millisecond of CPU. */
    int small = tmpdir_remove_small(path, SMALL_TREE);
    if (small != -E2BIG) {
        if (small)
            cannot_remove(d, path, small);
        return;
    }
    if (d->nremovers == DYING_MAX)
        reap_removers(d, true);
    pid_t pid = fork();
    if (pid == 0) {
        int r = tmpdir_remove(path);
        if (r)
            fprintf(stderr, "pyexecd: worker %d: cannot remove %s: %s\n", getppid(), path,
                    strerror(-r));
        _exit(r ? 1 : 0);
    }
    if (pid > 0) {
        d->removers[d->nremovers++] = pid;
        return;
    }
    int r = tmpdir_remove(path); /* no process to spare: here, then */
    if (r)
        cannot_remove(d, path, r);
}

/* path lies in the batch dir (not "": no batch). */
static bool in_batch(const char *path, const char *batch)
{
    size_t n = strlen(batch);
    return n && !strncmp(path, batch, n) && path[n] == '/';
}

/* The old batch, with every temp dir still in it, detached at once. */
static void drop_old_batch(struct dying *d)
{
    int r = tmpdir_remove(d->old_batch);
    if (r)
        cannot_remove(d, d->old_batch, r);
    d->old_batch[0] = '\0';
}

const char *dying_tmpdir_base(struct dying *d, const char *base)
{
    if (!d->tmpfs)
        return base;
    /* The batch is below base: a base a script made unusable (normal user,
     * chmod) would fail every child until the next batch. */
    tmpdir_keep_mode(base);
    if (d->batch[0] && d->batch_dirs < DYING_BATCH) {
        d->batch_dirs++;
        return d->batch;
    }
    if (d->batch[0]) { /* full: the next dying_unmount takes it */
        if (d->old_batch[0])
            drop_old_batch(d); /* a spare made with no dying_unmount since */
        memcpy(d->old_batch, d->batch, sizeof(d->old_batch));
        d->batch[0] = '\0';
    }
    if (d->no_batches || tmpdir_batch_create(d->batch, base, DYING_BATCH)) {
        d->batch[0] = '\0';
        d->no_batches = true; /* not tried again: each temp dir is unmounted alone */
        return base;
    }
    d->batch_dirs = 1;
    return d->batch;
}

void dying_tmpdir_failed(struct dying *d)
{
    d->batch_dirs = DYING_BATCH;
}

/* A queued tmpfs temp dir: sealed where it is when its child is reaped and
 * it is small, else unmounted now (detached, freed by the kernel once its
 * child is gone). */
static int dispose(const struct dying *d, const char *path, bool reaped)
{
    if (reaped && in_batch(path, d->batch) && !tmpdir_seal(path, SMALL_TREE))
        return 0;
    return tmpdir_remove(path);
}

void dying_unmount(struct dying *d)
{
    dying_reap(d, false); /* a child dead by now is sealed, not unmounted */
    int kept = 0;
    for (int i = 0; i < d->nunmount; i++) {
        if (in_batch(d->unmount[i].path, d->old_batch))
            continue; /* goes with its batch, below */
        int r = dispose(d, d->unmount[i].path, d->unmount[i].reaped);
        if (r && d->unmount[i].reaped) {
            cannot_remove(d, d->unmount[i].path, r);
        } else if (r) {
            d->unmount[kept] = d->unmount[i];
            d->unmount[kept++].failed = true;
        }
    }
    d->nunmount = kept;
    if (d->old_batch[0])
        drop_old_batch(d);
}

void dying_reap(struct dying *d, bool block)
{
    for (int i = 0; i < d->n;) {
        /* Not yet exited: keep it. Reaped, or not our child at all
         * (-ECHILD): its temp dir can go. */
        if (reap_wait(d->children[i].pid, block ? 0 : WNOHANG, NULL, NULL) == 0) {
            i++;
            continue;
        }
        if (d->tmpfs)
            unmount_reaped(d, d->children[i].tmpdir);
        else
            remove_plain(d, d->children[i].tmpdir);
        d->children[i] = d->children[--d->n];
    }
    reap_removers(d, block);
    if (block)
        dying_unmount(d);
}

void dying_gone(struct dying *d, const struct child *c)
{
    if (d->tmpfs)
        queue_unmount(d, c->tmpdir, true);
    else
        remove_plain(d, c->tmpdir);
}

void dying_add(struct dying *d, const struct child *c)
{
    if (d->tmpfs) /* a plain dir waits for the reap */
        queue_unmount(d, c->tmpdir, false);
    if (d->n == DYING_MAX)
        dying_reap(d, true);
    d->children[d->n++] = *c;
}
