/* Default sanitizer options compiled into every binary of a PYEXEC_SANITIZE
 * build (cmake/sanitizers.cmake says why each is set). Linked into every
 * process role: the template starts from exec with a scrubbed environment, so
 * these defaults are what it, its workers and their children run with.
 * ASAN_OPTIONS / LSAN_OPTIONS / UBSAN_OPTIONS in the environment still win. */

const char *__asan_default_options(void);
const char *__lsan_default_options(void);
const char *__ubsan_default_options(void);

const char *__asan_default_options(void)
{
    return PYEXEC_ASAN_OPTIONS;
}

const char *__lsan_default_options(void)
{
    return PYEXEC_LSAN_OPTIONS;
}

const char *__ubsan_default_options(void)
{
    return PYEXEC_UBSAN_OPTIONS;
}
