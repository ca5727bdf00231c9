"""`--soundfont` naming a FIFO or a device is bad input, said at once (the red-team audit of
issue 9's fixes: a FIFO hung `aria mood` forever, in the open, before any check)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARIA = Path(sys.executable).with_name("aria")  # the venv running the tests (core or full)


def aria(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARIA), *args], capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_soundfont_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    if kind == "fifo":
        font = tmp_path / "font.sf2"
        os.mkfifo(font)  # nobody ever writes to it: opening it to read blocks forever
    else:
        font = Path("/dev/zero")
    out = tmp_path / "out"
    try:
        run = aria("mood", "0", "0", "--duration", "2", "--out", str(out), "--soundfont", str(font))
    except subprocess.TimeoutExpired:
        pytest.fail(f"aria mood hung on a {kind} as --soundfont")
    assert run.returncode == 2, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aria") and "Traceback" not in run.stderr, run.stderr
    assert "not a regular file" in lines[0], lines[0]
    assert not out.exists() or list(out.iterdir()) == []
