"""pyexec's Python half, compiled into the binary as module "pyexec_harness".

embed/python.c imports it once in the template; embed/run.c calls it in each
child to compile the script, describe failures and serialise main()'s result.
Every function here returns an outcome as UTF-8 bytes of one JSON object.
"""
import ctypes
import datetime
import gc
import importlib
import importlib.util
import json
import linecache
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback


def _die_with_template(template=os.getpid(), prctl=ctypes.CDLL(None).prctl):
    """The font scan's preexec_fn: SIGKILL when the template dies (the
    template is single-threaded here, so its one thread is the one that forked)."""
    PR_SET_PDEATHSIG = 1
    prctl(PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != template:  # it died before prctl
        os._exit(1)


def _start_font_cache(scratch_prefix):
    """Template: let matplotlib scan the fonts once, in a separate Debian
    python3 started before numpy and pandas load here, so the scan overlaps
    with those imports, and so the template imports matplotlib only when
    --preload asks for it. preload() collects the result. Its dir carries the
    acceptor's scratch prefix, so the acceptor removes it if the template is
    killed before preload() does; the scan dies with the template."""
    if importlib.util.find_spec("matplotlib") is None:
        return None
    parent, name = os.path.split(scratch_prefix)
    directory = tempfile.mkdtemp(prefix=name + "mpl-", dir=parent or None)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": directory,
           "MPLCONFIGDIR": directory, "MPLBACKEND": "Agg"}
    try:
        job = subprocess.Popen(["/usr/bin/python3", "-I", "-c", "import matplotlib.font_manager"],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, preexec_fn=_die_with_template)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return job, directory


# SCRATCH_PREFIX: set in this module by embed/python.c before this body runs.
_font_cache_job = _start_font_cache(SCRATCH_PREFIX)  # noqa: F821

import numpy  # after the font scan has started
import pandas

SCRIPT = "<script>"
HARNESS = "<pyexec_harness>"
ERROR_MAX = 2000  # characters of an error sentence
TRACEBACK_MAX = 64 * 1024  # characters of a traceback, the last ones kept


# Bound now so that a script that rebinds json.dumps for its own use does not
# change how its result is written. A convenience, not a protection: a script
# can reach this module (sys.modules) or json's encoder and change anything
# here, but all it can change is its own answer, which it controls anyway; the
# worker checks that what arrives is one strict JSON value (worker/reply.c).
_json_dumps = json.dumps


def _dumps(value):
    return _json_dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def outcome(type_, error, traceback_text=None):
    out = {"type": type_, "error": error[:ERROR_MAX]}
    if traceback_text is not None:
        if len(traceback_text) > TRACEBACK_MAX:
            traceback_text = "...\n" + traceback_text[-TRACEBACK_MAX:]
        out["traceback"] = traceback_text
    # Scripts can put lone surrogates into messages: never emit invalid UTF-8.
    return _dumps(out).encode("utf-8", "backslashreplace")


def _one_line(exc):
    try:
        text = str(exc)
    except BaseException:
        text = "<exception str() failed>"
    name = type(exc).__qualname__
    return f"{name}: {text}" if text else name


# --- the script ---------------------------------------------------------------


def compile_script(source):
    # linecache lets tracebacks quote the script's lines.
    linecache.cache[SCRIPT] = (len(source), None, source.splitlines(True), SCRIPT)
    return compile(source, SCRIPT, "exec", dont_inherit=True)


def syntax_failure(exc):
    line = getattr(exc, "lineno", None)
    if isinstance(exc, SyntaxError):
        error = f"{type(exc).__name__}: {exc.msg} (line {line})"
    else:  # NUL bytes (ValueError), undecodable source
        error = _one_line(exc)
    return outcome("syntax_error", error, "".join(traceback.format_exception_only(exc)))


def failure(exc):
    """The module body or main() raised exc (MemoryError is handled in C)."""
    if isinstance(exc, SystemExit):
        try:
            code = repr(exc.code)[:200]
        except BaseException:
            code = "..."
        return outcome("exited", f"The script called sys.exit({code}) before returning")
    if isinstance(exc, MemoryError):
        return outcome("memory_limit", "The script ran out of memory")
    te = traceback.TracebackException.from_exception(exc)
    # main() is called from C, so no harness frame should be here; be sure.
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename != HARNESS])
    return outcome("exception", _one_line(exc), "".join(te.format()))


# --- the result -----------------------------------------------------------------


def _default(o):
    """json.dumps hook: numpy, pandas and datetime values to JSON-able ones."""
    if o is None or o is pandas.NaT or o is pandas.NA:
        return None
    if isinstance(o, numpy.ndarray):
        # datetime64/timedelta64 arrays: element by element, through this hook.
        return o.tolist() if o.dtype.kind not in "Mm" or o.ndim == 0 else list(o)
    if isinstance(o, numpy.bool_):
        return bool(o)
    if isinstance(o, numpy.integer):
        return int(o)
    if isinstance(o, numpy.floating):
        return float(o)
    if isinstance(o, numpy.datetime64):
        return None if numpy.isnat(o) else pandas.Timestamp(o).isoformat()
    if isinstance(o, pandas.DataFrame):
        return o.to_dict("records")
    if isinstance(o, (pandas.Series, pandas.Index)):
        return o.tolist()
    if isinstance(o, (datetime.datetime, datetime.date, datetime.time)):
        return o.isoformat()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _key(k):
    if isinstance(k, float):
        return k if math.isfinite(k) else None
    if k is None or isinstance(k, (str, int)):
        return k
    if isinstance(k, numpy.generic):
        return _key(_default(k))
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(k).__name__}")


def _clean(o):
    """Slow path: rebuild o from plain values, NaN and infinities as None."""
    if o is None or isinstance(o, (str, int)):
        return o
    if isinstance(o, float):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, dict):
        return {_key(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return _clean(_default(o))


def serialise(value, cap):
    try:
        try:
            text = _json_dumps(value, allow_nan=False, ensure_ascii=False,
                              separators=(",", ":"), default=_default)
        except (ValueError, TypeError):
            text = _dumps(_clean(value))
        data = text.encode("utf-8")  # strict: lone surrogates are refused
    except MemoryError:
        raise
    except RecursionError:
        return outcome("result_not_serializable",
                       "main() returned a value nested too deeply (or containing itself) for JSON")
    except Exception as exc:
        return outcome("result_not_serializable",
                       f"main() returned a value JSON cannot hold: {_one_line_plain(exc)}")
    if len(data) > cap:
        return outcome("output_limit", f"The result is {len(data)} bytes, over the cap of {cap} bytes")
    return b'{"type":"ok","result":' + data + b"}"


def _one_line_plain(exc):
    # TypeError/ValueError from json carry the useful sentence; others get their name.
    if type(exc) in (TypeError, ValueError):
        try:
            return str(exc)
        except BaseException:
            pass
    return _one_line(exc)


def loads(data):
    return json.loads(data)


# --- the template and the child --------------------------------------------------


def _draw_once(plt):
    """Template, with pyplot preloaded: the first figure loads fonts, builds
    text and path caches and the PNG writer; do it here, once, for all."""
    import io
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0, 1, 4], label="warm")
    ax.set_title("warm-up")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    plt.close("all")
    # The fonts matplotlib keeps open hold file descriptors, which every child
    # closes at birth (close_from): forget them so a child opens its own.
    font_manager = sys.modules.get("matplotlib.font_manager")
    get_font = getattr(font_manager, "_get_font", None)
    if hasattr(get_font, "cache_clear"):
        get_font.cache_clear()
    gc.collect()


def warm_up(thread_variables):
    """Template: run the lazy paths once, settle what every child inherits,
    then freeze what exists so that forked children do not touch (and copy)
    these pages when the GC runs. thread_variables: the names python.c set
    to 1 before numpy loaded (embed_thread_variables); they stay 1."""
    frame = pandas.DataFrame({"t": pandas.to_datetime(["2024-01-02"]), "x": [math.nan]})
    serialise({"f": frame, "a": numpy.arange(2.0), "n": numpy.int64(1)}, 1 << 20)
    traceback.format_exception(ZeroDivisionError("x"))
    if "matplotlib.pyplot" in sys.modules:
        _draw_once(sys.modules["matplotlib.pyplot"])
    # Children differ only in HOME and TMPDIR: the rest of their environment
    # is set here, once, instead of rebuilt in every child.
    os.environ.clear()
    os.environ.update(ENVIRONMENT)
    os.environ.update(dict.fromkeys(thread_variables, "1"))
    numpy.random.seed(0)  # no cached Gaussian; each child overwrites the key (python.c)
    gc.collect()
    gc.freeze()


def numpy_state():
    """Where numpy's global MT19937 keeps its state (python.c writes it)."""
    return numpy.random.mtrand._rand._bit_generator.ctypes.state_address


def numpy_key():
    """The global generator's state as python.c should have left it."""
    _, key, pos, has_gauss, _ = numpy.random.get_state()
    return key.tobytes() + pos.to_bytes(4, "little") + has_gauss.to_bytes(4, "little")


# --- warm modules and matplotlib's font cache ----------------------------------

PRELOADED = {}  # module name -> version of its package, in --preload order
MPL_FONTLIST = None  # (file name, bytes): matplotlib's font cache, built once in the template
MPL_CONFIG = ".matplotlib"  # in each child's temp dir (MPLCONFIGDIR)


def _finish_font_cache(job, directory):
    """The font cache _start_font_cache's scan wrote: (file name, bytes)."""
    _, err = job.communicate(timeout=300)
    if job.returncode != 0:
        raise RuntimeError(err.decode("utf-8", "replace").strip().splitlines()[-1:])
    for name in sorted(os.listdir(directory)):
        if name.startswith("fontlist-") and name.endswith(".json"):
            with open(os.path.join(directory, name), "rb") as f:
                return name, f.read()
    raise RuntimeError("matplotlib wrote no font cache")


class _FontCacheFinder:
    """On sys.meta_path in every child: the first time a script imports
    matplotlib (not preloaded), its config dir gets the template's font cache,
    so matplotlib reads it instead of scanning the fonts in every request.
    Finds nothing itself."""

    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib":
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
            directory = os.environ.get("MPLCONFIGDIR")
            if directory and MPL_FONTLIST:
                try:
                    os.makedirs(directory, exist_ok=True)
                    with open(os.path.join(directory, MPL_FONTLIST[0]), "xb") as f:
                        f.write(MPL_FONTLIST[1])
                except OSError:
                    pass  # matplotlib then scans the fonts itself, slowly
        return None


def preload(names):
    """Template: build matplotlib's font cache (when matplotlib is installed)
    and import each module of the comma-separated list. A module that fails
    stops start-up, named."""
    global MPL_FONTLIST
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    for name in wanted:
        if not all(part.isidentifier() for part in name.split(".")):
            raise RuntimeError(f"--preload: {name!r} is not a module name")
    os.environ["MPLBACKEND"] = "Agg"
    cache = None
    if _font_cache_job:
        job, cache = _font_cache_job
        os.environ["MPLCONFIGDIR"] = cache
        try:
            MPL_FONTLIST = _finish_font_cache(job, cache)
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            shutil.rmtree(cache, ignore_errors=True)
            raise RuntimeError(f"matplotlib could not build its font cache: {exc}") from None
    try:
        for name in wanted:
            try:
                importlib.import_module(name)
            except BaseException as exc:
                raise RuntimeError(f"--preload: module {name!r} failed to import: "
                                   f"{_one_line(exc)}") from None
            top = sys.modules[name.split(".")[0]]
            PRELOADED[name] = str(getattr(top, "__version__", ""))
    finally:
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    if MPL_FONTLIST and "matplotlib" not in sys.modules:
        sys.meta_path.insert(0, _FontCacheFinder())


def versions():
    return _dumps({"python": platform.python_version(), "numpy": numpy.__version__,
                   "pandas": pandas.__version__, "preload": PRELOADED})


# MPLBACKEND: matplotlib draws with Agg (no display; plt.show() does nothing).
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "MPLBACKEND": "Agg"}  # and the thread variables


def prepare_child(tmpdir):
    """Child, before confinement. numpy's generator is re-seeded in C."""
    random.seed()  # from os.urandom
    tempfile.tempdir = tmpdir
    os.environ["HOME"] = tmpdir
    os.environ["TMPDIR"] = tmpdir
    os.environ["MPLCONFIGDIR"] = os.path.join(tmpdir, MPL_CONFIG)
    namespace = {}
    exec(compile_script("def main():\n    return {'x': [1, 'y', None]}\n"), namespace)
    serialise(namespace["main"](), 1 << 10)
    linecache.cache.pop(SCRIPT, None)
