"""A hostile or broken checkpoint is refused, through the CLI, in one line that never suggests
loading it anyway (torch's own refusal advises `weights_only=False`: running the file's code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.factories.music import make_music_checkpoint  # noqa: E402

pytestmark = pytest.mark.neural
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sunflowers.png"


class Bomb:
    """Unpickling this would create `marker`: proof that the file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def aria(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("aria")
    return subprocess.run([str(script), *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def refused_in_one_line(run: subprocess.CompletedProcess, file: str) -> str:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("aria: ") and file in line and "aria models pull" in line, line
    assert "weights_only" not in line and "trusted source" not in line, line
    return line


@pytest.mark.parametrize("file", ["model.pt", "mappings.pt", "model_config.pt"])
def test_a_pickle_bomb_in_a_music_checkpoint(tmp_path, file):
    folder = make_music_checkpoint(tmp_path / "m", "continuous_concat")
    marker = tmp_path / "code-ran"
    torch.save({"payload": Bomb(marker)}, folder / file)
    run = aria("mood", "0.2", "0.3", "--composer", "transformer", "--model-dir", str(folder),
               "--length", "16", "--out", str(tmp_path / "out"))
    line = refused_in_one_line(run, file)
    assert "never loads" in line
    assert not marker.exists()


def test_a_pickle_bomb_as_the_image_encoder(tmp_path):
    marker = tmp_path / "code-ran"
    weights = tmp_path / "image_encoder.pt"
    torch.save({"model_state_dict": Bomb(marker)}, weights)
    run = aria("compose", str(EXAMPLE), "--encoder", "clip", "--encoder-weights", str(weights),
               "--out", str(tmp_path / "out"))
    refused_in_one_line(run, "image_encoder.pt")
    assert not marker.exists()


def test_a_truncated_checkpoint(tmp_path):
    folder = make_music_checkpoint(tmp_path / "m", "continuous_concat")
    model = folder / "model.pt"
    model.write_bytes(model.read_bytes()[:1000])
    run = aria("mood", "0.2", "0.3", "--composer", "transformer", "--model-dir", str(folder),
               "--length", "16", "--out", str(tmp_path / "out"))
    assert "damaged, incomplete" in refused_in_one_line(run, "model.pt")
