/* A request's files: its standard input, the input files written into its
 * working directory before the script runs, and the files the script leaves
 * in out/ returned with the answer.
 *
 * Which process runs what:
 *   files_stdin_open      CHILD, during set-up (before seccomp forbids memfd_create)
 *   files_stdin_fill      CHILD, confined, once it has its request
 *   files_write_inputs    CHILD, confined, as the sandbox uid, before the script:
 *                         no privileged process ever writes into a directory a
 *                         script could have touched
 *   files_out_pending,    WORKER, once the child is dead (nothing writes any
 *   files_collect         more, a FIFO has no writer), with its filesystem uid
 *                         switched to the sandbox uid
 * The child calls its three from child.c; the worker calls its two from
 * worker.c's serve(). */
#ifndef PYEXEC_FILES_H
#define PYEXEC_FILES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The directory, in the working directory, whose files come back. */
#define FILES_OUT_DIR "out"

/* An anonymous in-memory file that will become the script's fd 0. Returns
 * its fd (>= 0) or -errno. */
int files_stdin_open(void);

/* Fill the file from files_stdin_open with len bytes, rewind it and make it
 * fd 0 (closing fd). With len 0 the script reads end-of-file at once.
 * Returns 0 or -errno. */
int files_stdin_fill(int fd, const char *data, size_t len);

/* In the working directory: make out/, then write every input file record
 * (common/ipc.h's ipc_file) with its parent directories, never following a
 * link and never replacing anything. Returns 0, or -errno with a sentence
 * naming the file in why. */
int files_write_inputs(const char *records, size_t len, char *why, size_t why_len);

/* What files_collect found. */
struct files_out {
    json_t *json;   /* {"path": {"base64", "size", "media_type"}}; NULL when none */
    size_t bytes;   /* their size before encoding */
    bool truncated; /* some were left out: cap, count, depth or time */
};

/* Does tmpdir/out hold anything? Cheap: one directory read. */
bool files_out_pending(const char *tmpdir);

/* Collect the regular files under tmpdir/out, at most cap bytes in all,
 * reading as uid/gid (-1: as the worker) and only files that uid owns.
 * Symlinks are never followed, other non-regular files skipped, names that
 * are not UTF-8 skipped; the walk is bounded in entries, depth and time.
 * Returns 0 or -ENOMEM; free with files_out_free. */
int files_collect(const char *tmpdir, uid_t uid, gid_t gid, size_t cap, struct files_out *out);

void files_out_free(struct files_out *out);

/* The media type pyexec reports for a file name (by its extension). */
const char *files_media_type(const char *name);

#endif
