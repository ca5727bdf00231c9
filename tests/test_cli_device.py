"""`--device` on every command that runs models: the CPU explicitly, and a GPU that is not there
refused in one line with exit code 2 (compose, mood, bot discord, bot slack)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from tests.test_cli import EXAMPLE, aria  # noqa: E402

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_compose_on_the_cpu_names_the_device(tmp_path):
    run = aria("mood", "0.5", "-0.3", "--device", "cpu", "--duration", "4", "--seed", "2", "--out", str(tmp_path), "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["device"] == "cpu"  # the embedded defaults always run on the CPU
    text = aria("compose", str(EXAMPLE), "--device", "cpu", "--duration", "4", "--out", str(tmp_path))
    assert text.returncode == 0 and "composer on cpu" in text.stdout


@no_gpu
@pytest.mark.parametrize("command", [["compose", str(EXAMPLE)], ["mood", "0.1", "0.2"]])
def test_a_gpu_that_is_not_there_is_one_line_and_exit_2(tmp_path, command):
    run = aria(*command, "--device", "cuda:0", "--out", str(tmp_path))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.strip() == run.stderr.strip().splitlines()[0]
    assert run.stderr.startswith("aria: --device cuda:0: torch sees no CUDA GPU here")
    assert not list(tmp_path.iterdir())


def test_a_malformed_device_is_one_line_and_exit_2(tmp_path):
    run = aria("mood", "0.1", "0.2", "--device", "gpu", "--out", str(tmp_path))
    assert run.returncode == 2
    assert run.stderr.strip() == "aria: unknown device 'gpu': use auto, cpu, cuda or cuda:N"


@no_gpu
def test_the_bots_refuse_a_gpu_that_is_not_there_at_start(tmp_path, monkeypatch):
    env = {"ARIA_DISCORD_TOKEN": "x" * 60, "ARIA_SLACK_BOT_TOKEN": "xoxb-1", "ARIA_SLACK_APP_TOKEN": "xapp-1",
           "ARIA_DATA_DIR": str(tmp_path)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the subprocess inherits them
    for platform in ("discord", "slack"):
        run = aria("bot", platform, "--device", "cuda")
        assert run.returncode == 2, (platform, run.stderr)
        assert run.stderr.strip().startswith("aria: --device cuda: torch sees no CUDA GPU here"), run.stderr
