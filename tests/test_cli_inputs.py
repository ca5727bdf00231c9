"""Bad input to `aria` (as a subprocess of the installed script): one line on stderr, exit 2,
no traceback, and nothing read without a bound."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sunflowers.png"
ARIA = Path(sys.executable).with_name("aria")


def aria(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(ARIA), *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)


def one_line_refusal(run: subprocess.CompletedProcess, words: str) -> str:
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aria"), run.stderr
    assert words in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def test_out_naming_a_file(tmp_path, a_file):
    one_line_refusal(aria("mood", "0", "0", "--duration", "2", "--out", str(a_file)), "is a file, not a folder")
    assert a_file.read_text() == "not a folder"


def test_out_under_a_file(a_file):
    one_line_refusal(aria("mood", "0", "0", "--duration", "2", "--out", str(a_file / "sub")), "a file, not a folder")


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs: a folder nobody can write into")
def test_out_where_nothing_can_be_written():
    one_line_refusal(aria("mood", "0", "0", "--duration", "2", "--out", "/sys/aria-out"), "--out /sys/aria-out")


def test_a_name_too_long_for_the_file_system(tmp_path):
    one_line_refusal(aria("mood", "0", "0", "--duration", "2", "--out", str(tmp_path), "--name", "n" * 300),
                     "too long")
    assert list(tmp_path.iterdir()) == []


def test_a_picture_with_an_awkward_name_is_fine(tmp_path):
    picture = tmp_path / "my photo (1).png"
    picture.write_bytes(EXAMPLE.read_bytes())
    run = aria("compose", str(picture), "--out", str(tmp_path / "out"), "--duration", "2", "--seed", "1")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "out" / "my_photo__1_.mid").is_file()


def test_devices_are_refused_before_reading():
    started = time.monotonic()
    one_line_refusal(aria("compose", "/dev/zero", timeout=60), "not a regular file")
    assert time.monotonic() - started < 30


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    one_line_refusal(aria("compose", str(fifo), timeout=60), "not a regular file")


def test_a_file_over_the_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as file:  # sparse: 2 GB that take no disk
        file.write(EXAMPLE.read_bytes())
        file.truncate(2 * 1024**3)
    one_line_refusal(aria("compose", str(big), "--out", str(tmp_path / "out")), "at most 25 MB")


@pytest.mark.parametrize("font, words", [
    ("README.md", "not a SoundFont 2 file"),
    ("no/such.sf2", "does not exist"),
    ("examples", "is a directory"),
])
def test_a_bad_soundfont_is_bad_input(tmp_path, font, words):
    one_line_refusal(aria("mood", "0", "0", "--duration", "2", "--out", str(tmp_path), "--soundfont", font), words)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, words", [
    (["mood", "0", "0", "--seed", "abc"], "invalid int value"),
    (["compose"], "required"),
    (["no-such-command"], "invalid choice"),
])
def test_usage_mistakes_are_one_line(args, words):
    one_line_refusal(aria(*args), words)


def test_models_dir_naming_a_file(a_file):
    one_line_refusal(aria("models", "--models-dir", str(a_file), "pull", "--no-encoder"), "is a file, not a folder")
