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
