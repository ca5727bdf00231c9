"""The `aria` command line end to end on the embedded defaults (palette + procedural)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "sunflowers.png"


def aria(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the installed console script, as a user would."""
    script = Path(sys.executable).with_name("aria")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=cwd or REPO, timeout=300)


def test_compose_writes_four_files_and_reports_json(tmp_path):
    run = aria("compose", str(EXAMPLE), "--out", str(tmp_path), "--seed", "7", "--duration", "12", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for key in ("valence", "arousal", "label", "encoder", "composer", "mode", "seed", "duration_s",
                "midi", "audio", "emotion_chart", "piano_roll", "instruments"):
        assert key in report, key
    assert report["encoder"] == "palette" and report["composer"] == "procedural"
    assert report["seed"] == 7
    assert -1 <= report["valence"] <= 1 and -1 <= report["arousal"] <= 1

    midi = pretty_midi.PrettyMIDI(report["midi"])
    assert abs(midi.get_end_time() - 12) < 4
    assert report["instruments"] and all(i.notes for i in midi.instruments)

    audio, rate = soundfile.read(report["audio"])
    assert Path(report["audio"]).suffix == ".ogg"
    assert audio.ndim == 2 and audio.shape[1] == 2
    assert abs(len(audio) / rate - report["duration_s"]) < 0.1
    assert abs(audio).max() > 0.1  # not silent

    for key in ("emotion_chart", "piano_roll"):
        assert Path(report[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(report["midi"]).name == "sunflowers.mid"
    assert Path(report["emotion_chart"]).name == "sunflowers.emotion.png"
    assert Path(report["piano_roll"]).name == "sunflowers.pianoroll.png"


def test_same_seed_same_piece_and_random_seed_is_reported(tmp_path):
    a = json.loads(aria("mood", "0.3", "0.5", "--out", str(tmp_path / "a"), "--seed", "11", "--duration", "6", "--json").stdout)
    b = json.loads(aria("mood", "0.3", "0.5", "--out", str(tmp_path / "b"), "--seed", "11", "--duration", "6", "--json").stdout)
    assert Path(a["midi"]).read_bytes() == Path(b["midi"]).read_bytes()

    c = json.loads(aria("mood", "0.3", "0.5", "--out", str(tmp_path / "c"), "--duration", "6", "--json").stdout)
    assert isinstance(c["seed"], int)
    again = json.loads(aria("mood", "0.3", "0.5", "--out", str(tmp_path / "d"), "--seed", str(c["seed"]),
                            "--duration", "6", "--json").stdout)
    assert Path(again["midi"]).read_bytes() == Path(c["midi"]).read_bytes()


def test_mood_readout_on_a_terminal_free_run(tmp_path):
    run = aria("mood", "0.62", "-0.31", "--out", str(tmp_path), "--seed", "3", "--duration", "5")
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[0]
    assert first == "valence +0.62 (pleasant)  arousal -0.31 (calm)  -> serene"
    assert "seed 3" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mood_+0.62_-0.31.emotion.png", "mood_+0.62_-0.31.mid", "mood_+0.62_-0.31.ogg",
        "mood_+0.62_-0.31.pianoroll.png",
    ]
    assert run.stderr == ""  # no progress bar when stderr is not a terminal


def test_mp3_format(tmp_path):
    run = aria("mood", "-0.5", "0.7", "--out", str(tmp_path), "--seed", "1", "--duration", "4", "--format", "mp3", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["audio"].endswith(".mp3")
    audio, _ = soundfile.read(report["audio"])
    assert abs(audio).max() > 0.05


def test_trajectory_mood(tmp_path):
    run = aria("mood", "-0.8", "-0.6", "--to", "0.8", "0.7", "--out", str(tmp_path), "--seed", "2",
               "--duration", "8", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["valence"] == -0.8


@pytest.mark.parametrize(
    "args, message",
    [
        (["compose", "no/such/picture.png"], "no such file"),
        (["compose", "README.md"], "doesn't look like a picture"),
        (["compose", "examples"], "folder"),
        (["mood", "3", "0"], "valence must be between -1 and 1"),
        (["mood", "0", "0", "--top-p", "0"], "top-p"),
        (["mood", "0", "0", "--min-instruments", "9"], "minimum instruments"),
        (["mood", "0", "0", "--name", "../escape"], "unsuitable file name"),
    ],
)
def test_bad_input_is_one_line_without_traceback(tmp_path, args, message):
    run = aria(*args, "--out", str(tmp_path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aria: "), run.stderr
    assert message in lines[0]


def test_image_judged_by_content_not_name(tmp_path):
    # A PNG named .jpg is fine.
    renamed = tmp_path / "actually_png.jpg"
    renamed.write_bytes(EXAMPLE.read_bytes())
    run = aria("compose", str(renamed), "--out", str(tmp_path / "out"), "--seed", "1", "--duration", "4", "--json")
    assert run.returncode == 0, run.stderr
    # A TIFF named .png is refused.
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buffer, format="TIFF")
    tiff = tmp_path / "sneaky.png"
    tiff.write_bytes(buffer.getvalue())
    run = aria("compose", str(tiff), "--out", str(tmp_path / "out"))
    assert run.returncode == 2 and re.search(r"TIFF", run.stderr)
