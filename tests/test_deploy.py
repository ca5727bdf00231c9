"""The Dockerfile and docker-compose.yml, checked without a Docker engine: they parse, they copy
what exists, and every `aria` command they run parses with our own CLI parser."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from bot.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def instructions(name: str) -> list[str]:
    return [rest for instruction, rest in dockerfile() if instruction == name]


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def aria_command(argv: list[str]):
    """Parse as `aria ARGV` would; fails the test if our CLI rejects it."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:
        pytest.fail(f"`aria {' '.join(argv)}` does not parse (exit {exit.code})")
    assert callable(args.func)
    return args


def test_the_image_is_slim_python_with_the_soundfont_and_a_non_root_user():
    assert instructions("FROM") == ["python:3.11-slim"]
    run = " ".join(instructions("RUN"))
    assert "libfluidsynth3" in run and "fluid-soundfont-gm" in run
    torch_at = run.index("torch==2.13.0")
    assert "download.pytorch.org/whl/cpu" in run
    assert run.index('".[all]"') > torch_at  # torch's CPU build first, then the extras
    user = instructions("USER")
    assert user and user[-1] not in ("root", "0")
    assert "useradd" in run and user[-1] in run


def test_the_image_copies_what_exists_and_runs_aria():
    for rest in instructions("COPY"):
        *sources, _ = shlex.split(rest)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: no such path"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["aria"] == "bot.cli:main"
    assert "all" in pyproject["project"]["optional-dependencies"]
    assert json.loads(instructions("ENTRYPOINT")[-1]) == ["aria"]
    volumes = json.loads(instructions("VOLUME")[-1])
    env = " ".join(instructions("ENV"))
    assert "/models" in volumes and "ARIA_MODELS_DIR=/models" in env
    assert json.loads(instructions("CMD")[-1]) == ["--help"]  # a bare `docker run` explains itself


def test_the_build_context_leaves_out_the_venv_and_git():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
    copied = {shlex.split(rest)[0] for rest in instructions("COPY")}
    assert not copied & set(ignored), "the Dockerfile copies something .dockerignore leaves out"


def test_compose_runs_bot_worker_and_redis_with_aof_and_healthchecks():
    services = compose()["services"]
    assert set(services) == {"bot", "worker", "redis"}
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("bot", "worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_aria_command_in_compose_parses_and_matches_its_healthcheck():
    services = compose()["services"]
    worker = aria_command(services["worker"]["command"])
    assert worker.command == "worker" and worker.redis == "redis://redis:6379/0"
    bot = aria_command(services["bot"]["command"])
    assert bot.command == "bot" and bot.platform == "discord" and bot.redis == worker.redis
    for name, args in (("worker", worker), ("bot", bot)):
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{args.metrics_port}/healthz" in probe, name
        assert args.metrics_host == "0.0.0.0"
    assert any(v.endswith(":/models") for v in services["worker"]["volumes"])
