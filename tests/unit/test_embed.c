/* embed/: CPython is initialised once (group setup), then every case runs in a
 * child forked from this warm process, as the service's worker does: prepare,
 * run, write the outcome. The parent asserts on the outcome JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "embed/embed.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RESULT_CAP (10u << 20)

static char tmpdir[] = "/tmp/pyexec-test-embed-XXXXXX";

struct child_run {
    json_t *outcome;
    char *text;        /* the outcome as the child wrote it */
    char *out;         /* what the script wrote to stdout */
    char *environ_var; /* the child's C environ after prepare, one per line */
};

static char *read_memfd(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *text = malloc((size_t)size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)size, 0), size);
    text[size] = '\0';
    close(fd);
    return text;
}

static void write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n <= 0)
            _exit(3);
        text += n;
        len -= (size_t)n;
    }
}

/* Fork; the child prepares, runs script (len bytes) and writes the outcome,
 * its stdout and its environ into memory files the parent reads after it exits. */
static struct child_run run_n(const char *script, size_t script_len, const char *input, size_t cap)
{
    int result_fd = memfd_create("outcome", 0), out_fd = memfd_create("stdout", 0);
    int env_fd = memfd_create("environ", 0);
    assert_true(result_fd >= 0 && out_fd >= 0 && env_fd >= 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(out_fd, STDOUT_FILENO) < 0 || embed_child_prepare(tmpdir) != 0)
            _exit(2);
        size_t len = 0;
        char *outcome = embed_run(script, script_len, input, input ? strlen(input) : 0, cap, &len);
        if (!outcome)
            _exit(4);
        embed_flush_stdio();
        write_all(result_fd, outcome, len);
        extern char **environ;
        for (char **var = environ; *var; var++) {
            write_all(env_fd, *var, strlen(*var));
            write_all(env_fd, "\n", 1);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    struct child_run run = {.out = read_memfd(out_fd),
                            .environ_var = read_memfd(env_fd),
                            .text = read_memfd(result_fd)};
    json_error_t error;
    run.outcome = json_loads(run.text, 0, &error);
    /* Integers beyond 64 bits are valid results that jansson cannot hold: read
     * them as reals; run.text keeps every digit. */
    if (!run.outcome)
        run.outcome = json_loads(run.text, JSON_DECODE_INT_AS_REAL, NULL);
    if (!run.outcome)
        print_error("outcome is not JSON (%s): %s\n", error.text, run.text);
    assert_non_null(run.outcome);
    assert_true(json_is_object(run.outcome));
    return run;
}

static struct child_run run(const char *script)
{
    return run_n(script, strlen(script), NULL, RESULT_CAP);
}

static void run_free(struct child_run *r)
{
    json_decref(r->outcome);
    free(r->text);
    free(r->out);
    free(r->environ_var);
}

static const char *field(const struct child_run *r, const char *name)
{
    const char *value = json_string_value(json_object_get(r->outcome, name));
    return value ? value : "";
}

/* Asserts the outcome's type, printing the whole outcome when it differs. */
static void expect_type(const struct child_run *r, const char *type)
{
    if (strcmp(field(r, "type"), type) != 0) {
        char *text = json_dumps(r->outcome, JSON_COMPACT);
        print_error("expected type %s, got %s\n", type, text);
        free(text);
    }
    assert_string_equal(field(r, "type"), type);
}

/* The script's result must equal the JSON text expected. */
static void expect_result(const char *script, const char *expected)
{
    struct child_run r = run(script);
    expect_type(&r, "ok");
    json_t *want = json_loads(expected, JSON_DECODE_ANY, NULL);
    assert_non_null(want);
    json_t *got = json_object_get(r.outcome, "result");
    if (!json_equal(want, got)) {
        char *text = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        print_error("expected %s, got %s\n", expected, text);
        free(text);
    }
    assert_true(json_equal(want, got));
    json_decref(want);
    run_free(&r);
}

static void expect_error(const char *script, const char *type, const char *error_part)
{
    struct child_run r = run(script);
    expect_type(&r, type);
    if (!strstr(field(&r, "error"), error_part))
        print_error("error \"%s\" lacks \"%s\"\n", field(&r, "error"), error_part);
    assert_non_null(strstr(field(&r, "error"), error_part));
    run_free(&r);
}

/* A number from /proc/self/status, e.g. "VmRSS: %ld kB"; -1 if absent. */
static long self_status(const char *format)
{
    FILE *status = fopen("/proc/self/status", "r");
    char line[256];
    long value = -1;
    while (status && fgets(line, sizeof line, status))
        if (sscanf(line, format, &value) == 1)
            break;
    if (status)
        fclose(status);
    return value;
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (embed_init("numpy,pandas", "/tmp/pyexec-test_embed-") != 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ms =
        (double)(end.tv_sec - start.tv_sec) * 1e3 + (double)(end.tv_nsec - start.tv_nsec) / 1e6;
    print_message("embed_init: %.0f ms, template RSS %ld kB\n", ms, self_status("VmRSS: %ld kB"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rmdir(tmpdir);
    return 0;
}

/* The value of key in the outcome, or the script's stdout for "stdout". */
static const char *case_field(const struct child_run *r, const char *key)
{
    return strcmp(key, "stdout") == 0 ? r->out : field(r, key);
}

/* Every conformance case of layer "embed" (tests/conformance/README.md): what
 * the interpreter alone decides, so this tier checks it without a server. */
static void test_conformance_cases(void **state)
{
    (void)state;
    json_error_t error;
    json_t *cases = json_load_file(PYEXEC_CONFORMANCE_CASES, 0, &error);
    if (!cases)
        print_error("%s: %s (line %d)\n", PYEXEC_CONFORMANCE_CASES, error.text, error.line);
    assert_non_null(cases);
    size_t i, ran = 0;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        if (strcmp(json_string_value(json_object_get(c, "layer")), "embed") != 0)
            continue;
        json_t *request = json_object_get(c, "request");
        const char *script = json_string_value(json_object_get(request, "script"));
        json_t *input = json_object_get(request, "input");
        char *input_text = input ? json_dumps(input, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        print_message("case %s\n", name);
        struct child_run r = run_n(script, strlen(script), input_text, RESULT_CAP);
        int ok = json_integer_value(json_object_get(c, "status")) == 200;
        expect_type(&r,
                    ok ? "ok"
                       : json_string_value(json_object_get(json_object_get(c, "expect"), "type")));
        const char *key;
        json_t *want;
        json_object_foreach(json_object_get(c, "expect"), key, want)
        {
            if (strcmp(key, "result") == 0) {
                if (!json_equal(json_object_get(r.outcome, "result"), want))
                    print_error("%s: result differs: %s\n", name, r.text);
                assert_true(json_equal(json_object_get(r.outcome, "result"), want));
            } else if (strcmp(key, "type") != 0) {
                assert_string_equal(case_field(&r, key), json_string_value(want));
            }
        }
        json_object_foreach(json_object_get(c, "expect_in"), key, want)
        {
            if (!strstr(case_field(&r, key), json_string_value(want)))
                print_error("%s: %s lacks \"%s\": %s\n", name, key, json_string_value(want),
                            r.text);
            assert_non_null(strstr(case_field(&r, key), json_string_value(want)));
        }
        json_object_foreach(json_object_get(c, "expect_text"), key, want)
        {
            /* The outcome is compact JSON: {"type":"ok","result":TEXT} */
            char *written = NULL;
            assert_true(asprintf(&written, "\"%s\":%s}", key, json_string_value(want)) > 0);
            if (!strstr(r.text, written))
                print_error("%s: no %s in %s\n", name, written, r.text);
            assert_non_null(strstr(r.text, written));
            free(written);
        }
        run_free(&r);
        free(input_text);
        ran++;
    }
    assert_true(ran >= 30);
    json_decref(cases);
}

static void test_dataframe_becomes_records(void **state)
{
    (void)state;
    expect_result("import pandas as pd\n"
                  "def main():\n"
                  "    return pd.DataFrame({'a': [1, 2], 'b': ['x', None], 'c': [1.5, "
                  "float('nan')]})\n",
                  "[{\"a\": 1, \"b\": \"x\", \"c\": 1.5}, {\"a\": 2, \"b\": null, \"c\": null}]");
    expect_result("import pandas as pd\n"
                  "def main():\n"
                  "    return {'s': pd.Series([1.0, None, 3.0]), 'e': pd.DataFrame()}\n",
                  "{\"s\": [1.0, null, 3.0], \"e\": []}");
}

static void test_datetimes_become_iso(void **state)
{
    (void)state;
    expect_result("import datetime, numpy as np, pandas as pd\n"
                  "def main():\n"
                  "    return {'ts': pd.Timestamp('2024-01-02 03:04:05'),\n"
                  "            'date': datetime.date(2024, 1, 2),\n"
                  "            'time': datetime.time(7, 8),\n"
                  "            'nat': pd.NaT,\n"
                  "            'np': np.datetime64('2024-01-02T03:04:05'),\n"
                  "            'col': pd.Series(pd.to_datetime(['2024-05-06', None]))}\n",
                  "{\"ts\": \"2024-01-02T03:04:05\", \"date\": \"2024-01-02\", \"time\": "
                  "\"07:08:00\", \"nat\": null, \"np\": \"2024-01-02T03:04:05\", \"col\": "
                  "[\"2024-05-06T00:00:00\", null]}");
}

static void test_numpy_values_converted(void **state)
{
    (void)state;
    expect_result("import numpy as np\n"
                  "def main():\n"
                  "    return {'a': np.array([1.0, np.nan, -np.inf]),\n"
                  "            'm': np.array([[1, 2], [3, 4]], dtype=np.int32),\n"
                  "            'nan': np.float64('nan'), 'f32': np.float32(0.5),\n"
                  "            'b': np.bool_(True), 'keys': {np.int64(3): 1},\n"
                  "            't': (1, (2,))}\n",
                  "{\"a\": [1.0, null, null], \"m\": [[1, 2], [3, 4]], \"nan\": null, "
                  "\"f32\": 0.5, \"b\": true, \"keys\": {\"3\": 1}, \"t\": [1, [2]]}");
}

static void test_syntax_error_names_line(void **state)
{
    (void)state;
    struct child_run r = run("def main():\n    return {invalid syntax here}");
    expect_type(&r, "syntax_error");
    assert_non_null(strstr(field(&r, "error"), "SyntaxError"));
    assert_non_null(strstr(field(&r, "error"), "(line 2)"));
    assert_non_null(strstr(field(&r, "traceback"), "invalid syntax here"));
    run_free(&r);

    static const char with_nul[] = "def main():\n    return 1\0\n";
    r = run_n(with_nul, sizeof with_nul - 1, NULL, RESULT_CAP);
    expect_type(&r, "syntax_error");
    run_free(&r);

    expect_error("def main():\n    return '\xff'\n", "syntax_error", "UnicodeDecodeError");
}

static void test_exception_traceback_is_the_users(void **state)
{
    (void)state;
    struct child_run r = run("def helper():\n"
                             "    return 1 / 0\n"
                             "\n"
                             "def main():\n"
                             "    return helper()\n");
    expect_type(&r, "exception");
    assert_string_equal(field(&r, "error"), "ZeroDivisionError: division by zero");
    const char *tb = field(&r, "traceback");
    assert_non_null(strstr(tb, "File \"<script>\", line 2, in helper"));
    assert_non_null(strstr(tb, "return 1 / 0"));
    assert_non_null(strstr(tb, "line 5, in main"));
    assert_null(strstr(tb, "harness"));
    run_free(&r);

    expect_error("raise KeyError('at import')\ndef main(): pass\n", "exception", "KeyError");
    expect_error("def main():\n    raise KeyboardInterrupt\n", "exception", "KeyboardInterrupt");
    expect_error("def f(): return f()\ndef main(): return f()\n", "exception", "RecursionError");
    expect_error("class E(Exception):\n"
                 "    def __str__(self): raise ValueError('no')\n"
                 "def main(): raise E()\n",
                 "exception", "E");
    expect_error("def main(x): return x\n", "exception", "TypeError");
}

static void test_missing_main(void **state)
{
    (void)state;
    expect_error("x = 1\n", "missing_main", "Script must define a callable main() function");
    expect_error("main = 3\n", "missing_main", "callable main()");
}

static void test_exits_and_memory(void **state)
{
    (void)state;
    expect_error("import sys\ndef main():\n    sys.exit(3)\n", "exited", "sys.exit(3)");
    expect_error("import sys\nsys.exit()\ndef main(): pass\n", "exited", "before returning");
    expect_error("def main():\n    raise MemoryError\n", "memory_limit", "memory");
    /* A real allocation failure: one terabyte. */
    expect_error("def main():\n    return len(bytearray(1 << 40))\n", "memory_limit", "memory");
}

static void test_not_serialisable(void **state)
{
    (void)state;
    expect_error("def main():\n    return {1, 2}\n", "result_not_serializable",
                 "Object of type set is not JSON serializable");
    expect_error("class MyClass:\n    pass\ndef main():\n    return [MyClass()]\n",
                 "result_not_serializable", "MyClass");
    expect_error("def main():\n    return {'x': float('nan'), 'b': b'raw'}\n",
                 "result_not_serializable", "bytes");
    expect_error("def main():\n    return {(1, 2): 3}\n", "result_not_serializable", "tuple");
    expect_error("def main():\n    return 10 ** 5000\n", "result_not_serializable", "limit");
    expect_error("def main():\n    a = []\n    a.append(a)\n    return a\n",
                 "result_not_serializable", "nested too deeply");
    expect_error("def main():\n    return '\\ud800'\n", "result_not_serializable", "surrogate");
    expect_error("class D(dict):\n"
                 "    def items(self): raise RuntimeError('boom')\n"
                 "def main(): return D(a=1)\n",
                 "result_not_serializable", "RuntimeError: boom");
    expect_error("def main():\n    return 1j\n", "result_not_serializable", "complex");
}

static void test_result_over_cap(void **state)
{
    (void)state;
    const char *big = "def main(): return 'x' * 100\n", *fits = "def main(): return 'x' * 48\n";
    struct child_run r = run_n(big, strlen(big), NULL, 50);
    expect_type(&r, "output_limit");
    assert_string_equal(field(&r, "error"), "The result is 102 bytes, over the cap of 50 bytes");
    run_free(&r);

    r = run_n(fits, strlen(fits), NULL, 50);
    expect_type(&r, "ok");
    run_free(&r);
}

static void test_children_get_fresh_random_streams(void **state)
{
    (void)state;
    const char *script = "import random, numpy as np\n"
                         "def main(): return [random.random(), float(np.random.rand()),\n"
                         "                    float(np.random.normal())]\n";
    struct child_run a = run(script), b = run(script);
    expect_type(&a, "ok");
    expect_type(&b, "ok");
    json_t *ra = json_object_get(a.outcome, "result"), *rb = json_object_get(b.outcome, "result");
    for (size_t i = 0; i < 3; i++)
        assert_true(json_real_value(json_array_get(ra, i)) !=
                    json_real_value(json_array_get(rb, i)));
    run_free(&a);
    run_free(&b);
}

static void test_versions(void **state)
{
    (void)state;
    json_t *versions = json_loads(embed_versions_json(), 0, NULL);
    assert_non_null(versions);
    assert_non_null(strstr(json_string_value(json_object_get(versions, "python")), "3.11."));
    assert_non_null(json_string_value(json_object_get(versions, "numpy")));
    assert_non_null(json_string_value(json_object_get(versions, "pandas")));
    json_decref(versions);
}

/* The template forks workers: numpy and pandas must not have started threads
 * (OpenBLAS would, one per CPU, without OPENBLAS_NUM_THREADS=1). */
static void test_template_is_single_threaded(void **state)
{
    (void)state;
    assert_int_equal(self_status("Threads: %ld"), 1);
    for (size_t i = 0; embed_thread_variables[i]; i++)
        assert_string_equal(getenv(embed_thread_variables[i]), "1");
}

static void test_main_guard_does_not_run_main(void **state)
{
    (void)state;
    expect_result("calls = []\n"
                  "def main():\n"
                  "    calls.append(1)\n"
                  "    return [__name__, len(calls)]\n"
                  "if __name__ == '__main__':\n"
                  "    main()\n",
                  "[\"__script__\", 1]");
}

static void test_environment_is_the_allowlist(void **state)
{
    (void)state;
    struct child_run r = run("import os, tempfile\n"
                             "def main(): return [dict(os.environ), tempfile.gettempdir()]\n");
    expect_type(&r, "ok");
    char config[256];
    snprintf(config, sizeof config, "%s/.matplotlib", tmpdir);
    json_t *want =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "PATH", "/usr/bin:/bin", "LANG", "C.UTF-8",
                  "HOME", tmpdir, "TMPDIR", tmpdir, "MPLBACKEND", "Agg", "MPLCONFIGDIR", config);
    for (size_t i = 0; embed_thread_variables[i]; i++)
        json_object_set_new(want, embed_thread_variables[i], json_string("1"));
    json_t *result = json_object_get(r.outcome, "result");
    assert_true(json_equal(want, json_array_get(result, 0)));
    assert_string_equal(json_string_value(json_array_get(result, 1)), tmpdir);

    /* The C side agrees: the same variables, nothing else. */
    size_t lines = 0;
    for (const char *p = r.environ_var; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, json_object_size(want));
    assert_non_null(strstr(r.environ_var, "PATH=/usr/bin:/bin\n"));
    assert_non_null(strstr(r.environ_var, "LANG=C.UTF-8\n"));
    for (size_t i = 0; embed_thread_variables[i]; i++) {
        char line[64];
        snprintf(line, sizeof line, "%s=1\n", embed_thread_variables[i]);
        assert_non_null(strstr(r.environ_var, line));
    }
    json_decref(want);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_template_is_single_threaded),
        cmocka_unit_test(test_conformance_cases),
        cmocka_unit_test(test_dataframe_becomes_records),
        cmocka_unit_test(test_datetimes_become_iso),
        cmocka_unit_test(test_numpy_values_converted),
        cmocka_unit_test(test_syntax_error_names_line),
        cmocka_unit_test(test_exception_traceback_is_the_users),
        cmocka_unit_test(test_missing_main),
        cmocka_unit_test(test_exits_and_memory),
        cmocka_unit_test(test_not_serialisable),
        cmocka_unit_test(test_result_over_cap),
        cmocka_unit_test(test_children_get_fresh_random_streams),
        cmocka_unit_test(test_main_guard_does_not_run_main),
        cmocka_unit_test(test_environment_is_the_allowlist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
