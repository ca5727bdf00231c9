"""`aria models pull/list` as a user runs them, against the local hub double; then `auto`
picks the transformer for `aria mood`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from aria_engine.options import MODES  # noqa: E402
from tests.doubles.hf_hub import FakeHub  # noqa: E402
from tests.factories.music import make_music_checkpoint  # noqa: E402


def aria(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture
def hub(tmp_path):
    files = {}
    for mode in MODES:
        make_music_checkpoint(tmp_path / "repo" / mode, mode)
        for name in ("model.pt", "mappings.pt", "model_config.pt"):
            files[f"{mode}/{name}"] = (tmp_path / "repo" / mode / name).read_bytes()
    with FakeHub(files) as hub:
        yield hub


def test_pull_then_list_then_auto_uses_the_transformer(tmp_path, hub):
    models_dir = tmp_path / "models"
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "ARIA_MODELS_DIR": str(models_dir)}

    before = aria("mood", "0.5", "0.5", "--out", str(tmp_path / "a"), "--seed", "1", "--duration", "4", "--json", env=env)
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["composer"] == "procedural"

    pulled = aria("models", "pull", "--mode", "continuous_concat", "--no-encoder", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert (models_dir / "continuous_concat" / "model.pt").is_file()
    assert not (models_dir / "continuous_token").exists()

    listing = aria("models", "list", env=env)
    assert "auto composer for continuous_concat: transformer" in listing.stdout

    after = aria("mood", "0.5", "0.5", "--out", str(tmp_path / "b"), "--seed", "1", "--length", "64", "--json", env=env)
    assert after.returncode == 0, after.stderr
    report = json.loads(after.stdout)
    assert report["composer"] == "transformer" and report["mode"] == "continuous_concat"
    assert len(report["tokens"]) == 64


def test_pull_of_a_missing_repo_is_a_clear_one_line_error(tmp_path, hub):
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"),
           "ARIA_MODELS_DIR": str(tmp_path / "models")}
    run = aria("models", "pull", "--repo", "nobody/nothing", "--no-encoder", env=env)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and run.stderr.startswith("aria: ")


def test_compose_with_clip_and_every_decoding_flag_is_the_reference_piece(tmp_path):
    """`aria compose IMG --encoder clip --encoder-weights W --composer transformer --model-dir D
    --mode M --length --window --note-temp --rest-temp --top-p --top-k --decode exact --seed`:
    the emotion is the CLIP checkpoint's, and the tokens are the reference run's with the same
    settings (the window sliding, top-k and top-p both on, the two temperatures different).
    The models directory is empty, so the checkpoint can only have come from --model-dir."""
    from aria_engine.encoders.clip import ClipEmotionEncoder
    from aria_engine.images import load_image
    from aria_engine.music.transformer import load_checkpoint
    from tests.factories.clip import make_clip_checkpoint
    from tests.reference_sampler import reference_generate

    weights = tmp_path / "image_encoder.pt"
    make_clip_checkpoint(weights, seed=3)
    checkpoint = make_music_checkpoint(tmp_path / "ct", "continuous_token", seed=0)
    picture = Path(__file__).resolve().parents[1] / "examples" / "storm.png"
    run = aria(
        "compose", str(picture), "--encoder", "clip", "--encoder-weights", str(weights),
        "--composer", "transformer", "--model-dir", str(checkpoint), "--mode", "continuous_token",
        "--length", "64", "--window", "16", "--note-temp", "0.9", "--rest-temp", "1.4", "--top-p", "0.9",
        "--top-k", "60", "--decode", "exact", "--seed", "4", "--out", str(tmp_path / "out"), "--json",
        env={**os.environ, "ARIA_MODELS_DIR": str(tmp_path / "no-models")},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert (report["encoder"], report["composer"], report["mode"]) == ("clip", "transformer", "continuous_token")

    emotion = ClipEmotionEncoder(weights).encode([load_image(picture.read_bytes())])[0]
    assert (report["valence"], report["arousal"]) == pytest.approx((emotion.valence, emotion.arousal), abs=1e-4)
    model, vocab, _ = load_checkpoint(checkpoint)
    expected, _ = reference_generate(
        model, vocab.mappings(), conditioning="continuous_token", seed=4, gen_len=65,
        condition=(emotion.valence, emotion.arousal), max_input_len=16, temperatures=(0.9, 1.4),
        top_k=60, top_p=0.9,
    )
    assert report["tokens"] == expected
    assert report["tokens_per_s"] > 0
