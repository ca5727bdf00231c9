"""`aria jam` and `aria extend` end to end, as subprocesses, on the embedded defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pretty_midi

from aria_engine.jam import markers_of

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def aria(*args: str, models_dir: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("aria")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "ARIA_MODELS_DIR": str(models_dir)})


def test_jam_then_extend_writes_a_marked_piece_with_credits_and_readouts(tmp_path):
    out = tmp_path / "out"
    run = aria("jam", str(EXAMPLES / "meadow.png"), "--by", "@ana", str(EXAMPLES / "storm.png"),
               "--mood", "0.5", "-0.2", "--by", "@cy", "--caption", "the sea", str(EXAMPLES / "dusk.png"),
               "--seconds", "8", "--seed", "4", "--out", str(out), models_dir=tmp_path / "none")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("1. @ana  valence ") and "0:00-0:0" in lines[0]
    assert lines[1].startswith("2. storm.png  valence ")
    assert lines[2].startswith("3. @cy  valence +0.50 (pleasant)  arousal -0.20 (calm)  -> content")
    assert "4 sections" in lines[4]
    midi = (out / "jam.mid").read_bytes()
    assert [t for _, t in markers_of(midi)][2] == "3. @cy: content"
    assert len(markers_of(midi)) == 4 and pretty_midi.PrettyMIDI(str(out / "jam.mid")).instruments
    credits = (out / "jam.credits.txt").read_text().splitlines()
    assert len(credits) == 4 and credits[2].startswith("3. @cy: content, 0:1") and credits[2].endswith('"the sea"')
    for name in ("jam.ogg", "jam.trajectory.png", "jam.pianoroll.png"):
        assert (out / name).stat().st_size > 1000, name
    sidecar = json.loads((out / "jam.jam.json").read_text())
    assert sidecar["seed"] == 4 and sidecar["seconds"] == 8 and len(sidecar["sections"]) == 4

    more = aria("extend", str(out / "jam.jam.json"), "--mood", "0.8", "0.8", "--by", "@dee", "--out", str(out),
                models_dir=tmp_path / "none")
    assert more.returncode == 0, more.stderr
    assert more.stdout.splitlines()[:3] == run.stdout.splitlines()[:3]  # the earlier sections as they were
    extended = (out / "jam-extended.mid").read_bytes()
    assert [t for _, t in markers_of(extended)][-1] == "5. @dee: joyful"
    assert json.loads((out / "jam-extended.jam.json").read_text())["seed"] == 4


def test_bad_jams_get_one_line_and_exit_2(tmp_path):
    none = tmp_path / "none"
    for args, words in ((["jam", "--seconds", "8"], "at least one picture"),
                        (["jam", "--mood", "0.5"], "--mood takes two numbers"),
                        (["jam", "--mood", "0.5", "0.1", "--seconds", "2"], "seconds per section"),
                        (["jam", "--mood", "2", "0.1"], "valence must be between -1 and 1"),
                        (["jam", str(tmp_path / "missing.png")], "missing.png"),
                        (["extend", str(EXAMPLES / "dusk.png"), "--mood", "0", "0"], "not a jam file")):
        run = aria(*args, "--out", str(tmp_path), models_dir=none)
        assert run.returncode == 2, (args, run.stderr)
        assert words in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
