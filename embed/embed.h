/* The embedded CPython: initialised once in the template process, then used by
 * each per-request child (forked from a worker) to run one script's main()
 * and serialise its result with json.dumps. Called by worker/template.c and
 * worker/child.c; never in the acceptor. */
#ifndef PYEXEC_EMBED_H
#define PYEXEC_EMBED_H

#include <stddef.h>

/* The thread-count variables of the libraries numpy and pandas may load
 * (OpenBLAS, OpenMP, MKL, numexpr), NULL-terminated: the one list. Each
 * library would otherwise start one thread per CPU in the template and in
 * every child. embed_init sets them to 1 before numpy loads, and hands the
 * list to the harness, which keeps them at 1 in every child's environment. */
extern const char *const embed_thread_variables[];

/* Set each of embed_thread_variables to "1" in the C environment (before
 * numpy loads). 0, or -1 with errno set. */
int embed_single_threaded(void);

/* Template process, once: set the thread variables to 1, start
 * Debian's CPython 3.11 (UTF-8 mode, unbuffered stdio, no signal handlers,
 * no bytecode writing), import numpy, pandas and the harness, build
 * matplotlib's font cache (when it is installed), import each module of the
 * comma-separated preload list, set the environment to the children's
 * allowlist, collect and gc.freeze(). The font cache is built in a dir named
 * scratch_prefix + "mpl-XXXXXXXX" (so the acceptor's sweep of that prefix
 * covers a template killed meanwhile) by a python3 that dies with the
 * template. Returns 0 or -1 with a reason printed to stderr (a module that
 * fails to import is named). */
int embed_init(const char *preload, const char *scratch_prefix);

/* After embed_init: {"python": "3.11.2", "numpy": "...", "pandas": "...",
 * "preload": {"module": "version of its package", ...}}. Static storage. */
const char *embed_versions_json(void);

/* Child, right after fork (before seccomp: it reads the OS's randomness):
 * re-seed Python's random and numpy's global RNG so no two children share a
 * stream, point tempfile at tmpdir, and complete the environment (C environ
 * and os.environ alike), which embed_init already reduced to the allowlist:
 *   PATH=/usr/bin:/bin  HOME=<tmpdir>  TMPDIR=<tmpdir>  LANG=C.UTF-8
 *   and each of embed_thread_variables set to 1
 *   MPLBACKEND=Agg  MPLCONFIGDIR=<tmpdir>/.matplotlib
 * Returns 0 or -1 (with a Python traceback on stderr). */
int embed_child_prepare(const char *tmpdir);

/* Child, after it has its request: compile the script (UTF-8, file name
 * "<script>"), run the module body in a fresh namespace whose __name__ is
 * "__script__" (so an `if __name__ == "__main__": main()` guard stays idle),
 * call main() (or main(input) when input_json is non-NULL; invalid input JSON
 * is reported as an exception), and serialise. Never leaves a Python exception
 * set. Returns a malloc'd JSON object, NUL-terminated, length in *len:
 *   {"type": "ok", "result": <value>}
 *   {"type": T, "error": "<sentence>", "traceback": "<text>"?}
 * with T one of syntax_error, missing_main, exception, result_not_serializable,
 * memory_limit, output_limit, exited. The "result" value is at most
 * result_cap bytes of JSON, else output_limit. NULL only if out of memory. */
char *embed_run(const char *script, size_t script_len, const char *input_json, size_t input_len,
                size_t result_cap, size_t *len);

/* The memory_limit outcome, for when not even embed_run's copy of it fits. */
extern const char embed_memory_limit_json[];

/* Flush sys.stdout and sys.stderr (the harness runs them unbuffered; this is
 * for anything the script re-buffered). */
void embed_flush_stdio(void);

#endif
