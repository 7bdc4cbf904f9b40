/* Running one script in the child (embed_run): compile, execute the module
 * body, call main(), and turn whatever happened into one outcome object. The
 * harness (harness.py) words the outcomes; this file decides which one. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "embed/embed.h"

#include <stdlib.h>
#include <string.h>

extern PyObject *embed_harness; /* python.c */

/* Outcomes that must not depend on Python being able to allocate. */
static const char missing_main_json[] =
    "{\"type\":\"missing_main\",\"error\":\"Script must define a callable main() function\"}";
const char embed_memory_limit_json[] =
    "{\"type\":\"memory_limit\",\"error\":\"The script ran out of memory\"}";
static const char undescribed_json[] =
    "{\"type\":\"exception\",\"error\":\"The script raised an exception that could not be "
    "described\"}";

static char *copy_out(const char *text, size_t text_len, size_t *len)
{
    char *out = malloc(text_len + 1);
    if (!out)
        return NULL;
    memcpy(out, text, text_len);
    out[text_len] = '\0';
    *len = text_len;
    return out;
}

#define COPY_STATIC(s, len) copy_out((s), sizeof(s) - 1, (len))

static int memory_error_pending(void)
{
    return PyErr_ExceptionMatches(PyExc_MemoryError);
}

/* Call harness.<describe>(exc) on the pending exception; the result is the
 * outcome as bytes. Leaves no exception set. */
static char *describe_pending(const char *describe, size_t *len)
{
    if (memory_error_pending()) {
        PyErr_Clear();
        return COPY_STATIC(embed_memory_limit_json, len);
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    PyObject *outcome = value ? PyObject_CallMethod(embed_harness, describe, "O", value) : NULL;
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);

    char *out = NULL;
    if (outcome && PyBytes_Check(outcome))
        out = copy_out(PyBytes_AS_STRING(outcome), (size_t)PyBytes_GET_SIZE(outcome), len);
    else if (outcome || !memory_error_pending())
        out = COPY_STATIC(undescribed_json, len);
    else
        out = COPY_STATIC(embed_memory_limit_json, len);
    Py_XDECREF(outcome);
    PyErr_Clear();
    return out;
}

/* Module body in a fresh namespace. __name__ is "__script__" so that an
 * `if __name__ == "__main__": main()` guard does not call main() a second time. */
static PyObject *run_body(PyObject *code)
{
    PyObject *globals = PyDict_New();
    if (!globals)
        return NULL;
    PyObject *name = PyUnicode_FromString("__script__");
    if (!name || PyDict_SetItemString(globals, "__name__", name) != 0) {
        Py_XDECREF(name);
        goto fail;
    }
    Py_DECREF(name);
    if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) != 0)
        goto fail;
    PyObject *done = PyEval_EvalCode(code, globals, globals);
    if (!done)
        goto fail;
    Py_DECREF(done);
    return globals;

fail:
    Py_DECREF(globals);
    return NULL;
}

char *embed_run(const char *script, size_t script_len, const char *input_json, size_t input_len,
                size_t result_cap, size_t *len)
{
    char *out = NULL;
    PyObject *code = NULL, *globals = NULL, *input = NULL, *result = NULL, *outcome = NULL;

    PyObject *source = PyUnicode_DecodeUTF8(script, (Py_ssize_t)script_len, "strict");
    if (source) {
        code = PyObject_CallMethod(embed_harness, "compile_script", "O", source);
        Py_DECREF(source);
    }
    if (!code) {
        out = describe_pending("syntax_failure", len);
        goto done;
    }

    globals = run_body(code);
    if (!globals) {
        out = describe_pending("failure", len);
        goto done;
    }
    PyObject *main_fn = PyDict_GetItemString(globals, "main"); /* borrowed */
    if (!main_fn || !PyCallable_Check(main_fn)) {
        out = COPY_STATIC(missing_main_json, len);
        goto done;
    }

    if (input_json) {
        input =
            PyObject_CallMethod(embed_harness, "loads", "y#", input_json, (Py_ssize_t)input_len);
        if (!input) {
            out = describe_pending("failure", len);
            goto done;
        }
        result = PyObject_CallOneArg(main_fn, input);
    } else {
        result = PyObject_CallNoArgs(main_fn);
    }
    if (!result) {
        out = describe_pending("failure", len);
        goto done;
    }

    outcome = PyObject_CallMethod(embed_harness, "serialise", "On", result, (Py_ssize_t)result_cap);
    if (outcome && PyBytes_Check(outcome))
        out = copy_out(PyBytes_AS_STRING(outcome), (size_t)PyBytes_GET_SIZE(outcome), len);
    else if (outcome)
        out = COPY_STATIC(undescribed_json, len);
    else
        out = describe_pending("failure", len);

done:
    Py_XDECREF(outcome);
    Py_XDECREF(result);
    Py_XDECREF(input);
    Py_XDECREF(globals);
    Py_XDECREF(code);
    PyErr_Clear();
    return out;
}
