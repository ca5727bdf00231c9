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
    # the earlier notes as they were, the new section after them
    earlier_notes = pretty_midi.PrettyMIDI(str(out / "jam.mid"))
    end = max(n.end for i in earlier_notes.instruments for n in i.notes)
    longer = pretty_midi.PrettyMIDI(str(out / "jam-extended.mid"))
    assert _notes(longer, end) == _notes(earlier_notes, end)
    assert abs(markers_of(extended)[-1][0] - end) < 0.01 and len(markers_of(extended)) == 5
    credits = (out / "jam-extended.credits.txt").read_text().splitlines()
    assert len(credits) == 5 and credits[4].startswith("5. @dee: joyful")


def _notes(midi, before: float) -> list[tuple]:
    """The notes starting before `before`, at their ticks (the file's own time)."""
    return sorted((i.is_drum, n.pitch, n.velocity, midi.time_to_tick(n.start), midi.time_to_tick(n.end))
                  for i in midi.instruments for n in i.notes if n.start < before - 1e-3)


def test_extend_continues_an_ordinary_piece_from_its_midi(tmp_path):
    out, none = tmp_path / "out", tmp_path / "none"
    run = aria("mood", "0.6", "-0.6", "--duration", "10", "--seed", "3", "--name", "calm", "--out", str(out),
               models_dir=none)
    assert run.returncode == 0, run.stderr
    more = aria("extend", str(out / "calm.mid"), "--mood", "-0.5", "0.7", "--by", "@bo", "--seconds", "8",
                "--out", str(out), models_dir=none)
    assert more.returncode == 0, more.stderr
    lines = more.stdout.splitlines()
    assert lines[0].startswith("1. calm.mid  valence +0.60 (pleasant)  arousal -0.60 (calm)  -> serene  0:00-0:10")
    assert lines[1].startswith("2. @bo  valence -0.50 (unpleasant)  arousal +0.70 (energetic)  -> tense  0:10-0:18")
    earlier = pretty_midi.PrettyMIDI(str(out / "calm.mid"))
    longer = pretty_midi.PrettyMIDI(str(out / "calm-extended.mid"))
    assert _notes(longer, 10.0) == _notes(earlier, 10.0)
    assert [t for _, t in markers_of((out / "calm-extended.mid").read_bytes())] == ["1. calm.mid: serene",
                                                                                     "2. @bo: tense"]
    sidecar = json.loads((out / "calm-extended.jam.json").read_text())
    assert sidecar["composer"] == "procedural" and sidecar["midi"] == "calm-extended.mid"
    again = aria("extend", str(out / "calm-extended.jam.json"), "--mood", "0.5", "0.5", "--out", str(out),
                 models_dir=none)  # the extension extends in turn, through its sidecar
    assert again.returncode == 0, again.stderr
    assert len(markers_of((out / "calm-extended-extended.mid").read_bytes())) == 3


def test_extend_continues_a_transformer_piece_with_its_emotion_given(tmp_path):
    import pytest

    pytest.importorskip("torch")
    from tests.factories.music import make_music_checkpoint

    checkpoint = make_music_checkpoint(tmp_path / "cc", "continuous_concat", seed=1)
    out, none = tmp_path / "out", tmp_path / "none"
    common = ["--composer", "transformer", "--model-dir", str(checkpoint), "--window", "32", "--device", "cpu",
              "--out", str(out)]
    run = aria("mood", "0.5", "-0.5", "--length", "200", "--min-instruments", "2", "--seed", "3", "--name", "tr",
               *common, models_dir=none)
    assert run.returncode == 0, run.stderr
    refused = aria("extend", str(out / "tr.mid"), "--mood", "0.1", "0.9", *common, models_dir=none)
    assert refused.returncode == 2 and "--from V A" in refused.stderr
    more = aria("extend", str(out / "tr.mid"), "--from", "0.5", "-0.5", "--mood", "-0.7", "0.8", "--by", "@bo",
                "--tokens", "64", "--seed", "8", *common, models_dir=none)
    assert more.returncode == 0, more.stderr
    assert "transformer (continuous_concat)" in more.stdout
    earlier = pretty_midi.PrettyMIDI(str(out / "tr.mid"))
    end = max(n.end for i in earlier.instruments for n in i.notes)
    assert _notes(pretty_midi.PrettyMIDI(str(out / "tr-extended.mid")), end) == _notes(earlier, end)
    sidecar = json.loads((out / "tr-extended.jam.json").read_text())
    assert sidecar["composer"] == "transformer" and sidecar["tokens"] == 64 and len(sidecar["sections"]) == 2


def test_bad_jams_get_one_line_and_exit_2(tmp_path):
    none = tmp_path / "none"
    bad_json = tmp_path / "broken.jam.json"
    bad_json.write_text('{"version": 1, "composer": "procedural", "sections": [{"valence": 0}]}')
    no_state = tmp_path / "plain.mid"  # a MIDI file ARIA's built-in composer did not write
    plain = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(80, 60, 0.0, 2.0))
    plain.instruments.append(piano)
    plain.write(str(no_state))
    garbage = tmp_path / "garbage.mid"
    garbage.write_bytes(b"MThd not really")
    for args, words in ((["jam", "--seconds", "8"], "at least one picture"),
                        (["jam", "--mood", "0.5"], "--mood takes two numbers"),
                        (["jam", "--mood", "0.5", "0.1", "--seconds", "2"], "seconds per section"),
                        (["jam", "--mood", "2", "0.1"], "valence must be between -1 and 1"),
                        (["jam", str(tmp_path / "missing.png")], "missing.png"),
                        (["extend", str(EXAMPLES / "dusk.png"), "--mood", "0", "0"], "not a jam file"),
                        (["extend", str(bad_json), "--mood", "0", "0"], "not a jam file"),
                        (["extend", str(no_state), "--mood", "0", "0"], "--from V A"),
                        (["extend", str(no_state), "--from", "2", "0", "--mood", "0", "0"], "valence must be"),
                        (["extend", str(no_state), "--from", "0.5", "--mood", "0", "0"], "--from takes two numbers"),
                        (["extend", str(tmp_path / "gone.mid"), "--mood", "0", "0"], "gone.mid"),
                        (["extend", str(garbage), "--mood", "0", "0"], "not a readable MIDI")):
        run = aria(*args, "--out", str(tmp_path), models_dir=none)
        assert run.returncode == 2, (args, run.stderr)
        assert words in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
