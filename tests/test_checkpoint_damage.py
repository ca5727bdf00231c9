"""Every kind of damaged music checkpoint file is refused through the CLI in one line, exit 2
(the red-team audit of issue 9's fixes: a text file gave `KeyError: 101` and a 55-line
traceback, an empty mappings.pt `EOFError`, a truncated one `OSError`, exit 1 each; a plain
pickle added torch's UserWarning lines on stderr)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.factories.music import make_music_checkpoint  # noqa: E402

pytestmark = pytest.mark.neural
REPO = Path(__file__).resolve().parents[1]

DAMAGE = {
    "text": lambda good: b"hello, not a checkpoint\n",
    "empty": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "a plain pickle": lambda good: pickle.dumps({"a": 1}),  # the legacy format, plain data
    "random bytes": lambda good: bytes((i * 97 + 13) % 256 for i in range(4096)),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_music_checkpoint(tmp_path_factory.mktemp("good") / "m", "continuous_concat")


def mood_with(folder: Path, out: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("aria")
    return subprocess.run([str(script), "mood", "0.2", "0.3", "--composer", "transformer", "--model-dir",
                           str(folder), "--length", "8", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("file", ["model.pt", "mappings.pt", "model_config.pt"])
def test_a_damaged_checkpoint_file_is_refused_in_one_line(tmp_path, good, file, damage):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(good, folder)
    (folder / file).write_bytes(DAMAGE[damage]((good / file).read_bytes()))
    run = mood_with(folder, tmp_path / "out")
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr[-2000:]  # no traceback, no UserWarning from torch
    [line] = lines
    assert line.startswith("aria: ") and file in line and "aria models pull" in line, line
    assert "weights_only" not in line, line


def test_mappings_of_the_right_container_and_the_wrong_contents(tmp_path, good):
    import shutil

    folder = tmp_path / "m"
    shutil.copytree(good, folder)
    torch.save({"event2idx": 5, "idx2event": {}, "tuple2idx": {}, "idx2tuple": {}, "transposable_event_inds": []},
               folder / "mappings.pt")
    run = mood_with(folder, tmp_path / "out")
    assert run.returncode == 2, run.stderr[-2000:]
    [line] = run.stderr.strip().splitlines()
    assert "mappings.pt" in line and "aria models pull" in line, line
