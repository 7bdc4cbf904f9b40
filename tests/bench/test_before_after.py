"""bench/before-after against the real pyexecd: both sides up at once, the
slices measured turn about, one row per cell (short, bounded runs; the
figures themselves are never asserted)."""
import os
import re
import subprocess

from benchutil import PYTHON

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "bench", "before-after")
BUILD = os.path.dirname(os.path.dirname(os.environ.get("PYEXECD", "build/server/pyexecd")))


def before_after(*args):
    return subprocess.run([PYTHON, TOOL, *args], capture_output=True, text=True, timeout=240)


def test_one_row_per_cell_with_every_slice_counted():
    proc = before_after("--old-build", BUILD, "--build-dir", BUILD, "--workloads", "trivial",
                        "--connections", "1", "--starts", "2", "--slices", "1",
                        "--flag=--workers=2")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| trivial |")]
    assert len(rows) == 1, proc.stdout
    cells = [x.strip() for x in rows[0].strip("|").split("|")]
    assert cells[1] == "1" and cells[2] == "2", rows  # 2 starts x 1 slice
    before, after, ratio = float(cells[3]), float(cells[4]), float(cells[5])
    assert before > 0 and after > 0 and ratio > 0, rows
    assert re.fullmatch(r"[0-2] of 2", cells[7]), rows
    assert float(cells[8]) > 0 and float(cells[9]) > 0, rows  # server CPU was counted


def test_too_few_slices_are_refused():
    proc = before_after("--old-build", BUILD, "--starts", "1", "--slices", "1")
    assert proc.returncode == 2
    assert "2 slices or more" in proc.stderr


def test_a_missing_old_build_is_refused(tmp_path):
    proc = before_after("--old-build", str(tmp_path), "--build-dir", BUILD)
    assert proc.returncode == 1
    assert "missing" in proc.stderr
