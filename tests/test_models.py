"""The models directory and `aria models pull/list`, against a local stand-in for the hub."""

from __future__ import annotations

import functools
import hashlib
import re
import socket
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("huggingface_hub")
pytest.importorskip("torch")  # the repository it serves holds real tiny checkpoints

from aria_engine import models  # noqa: E402
from aria_engine.models import (  # noqa: E402
    ENCODER_FILE,
    ModelDownloadError,
    default_models_dir,
    format_status,
    installed,
    pull,
    resolve_backends,
)
from aria_engine.options import MODES  # noqa: E402
from tests.doubles.hf_hub import FakeHub  # noqa: E402

LOOPBACK = ("127.0.0.1", "::1", "localhost")


# ---- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
    """Any connection other than to this machine fails loudly: the tests never reach the real hub."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise AssertionError(f"test tried to reach {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise AssertionError(f"test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


class _NoWaitTime:
    """`time` for huggingface_hub's modules, minus the waiting between retries."""

    def __getattr__(self, name):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        pass


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch):
    import huggingface_hub.file_download
    import huggingface_hub.utils._http

    monkeypatch.setattr(huggingface_hub.utils._http, "time", _NoWaitTime())
    monkeypatch.setattr(huggingface_hub.file_download, "time", _NoWaitTime())


@pytest.fixture(scope="module")
def repo_files(tmp_path_factory) -> dict[str, bytes]:
    """A tiny vincentamato/ARIA: real tiny music checkpoints, a placeholder image encoder
    (status and pulls never read it; `test_a_pulled_encoder_loads` serves a real one)."""
    from tests.factories.music import make_music_checkpoint

    root = tmp_path_factory.mktemp("repo")
    files = {ENCODER_FILE: b"image encoder " * 1000}
    for mode in MODES:
        make_music_checkpoint(root / mode, mode)
        for name in models.MODE_FILES:
            files[f"{mode}/{name}"] = (root / mode / name).read_bytes()
    return files


@pytest.fixture
def hub(repo_files, monkeypatch):
    with FakeHub(repo_files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def downloaded(hub: FakeHub) -> list[str]:
    return [r.path for r in hub.downloads()]


def leftovers(models_dir: Path) -> list[Path]:
    """Partial downloads or temporary files anywhere in the directory."""
    return [p for p in models_dir.rglob("*") if p.name.endswith(".incomplete")]


# ---- the directory ----------------------------------------------------------------------------


def test_default_models_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ARIA_MODELS_DIR", str(tmp_path / "mine"))
    assert default_models_dir() == tmp_path / "mine"
    monkeypatch.delenv("ARIA_MODELS_DIR")
    from platformdirs import user_data_dir

    assert default_models_dir() == Path(user_data_dir()) / "aria" / "models"


def test_empty_directory_means_embedded_defaults(tmp_path):
    status = installed(tmp_path / "absent")
    assert not status.encoder_ready and status.usable_modes == () and status.total_bytes == 0
    backends = resolve_backends(tmp_path / "absent")
    assert (backends.encoder, backends.composer) == ("palette", "procedural")
    assert "aria models pull" in backends.encoder_reason
    assert "continuous_concat/ lacks model_config.pt, mappings.pt, model.pt" in backends.composer_reason


def test_explicit_choices_are_kept(tmp_path):
    backends = resolve_backends(tmp_path, encoder="clip", composer="transformer", mode="discrete_token")
    assert (backends.encoder, backends.composer, backends.mode) == ("clip", "transformer", "discrete_token")
    with pytest.raises(ValueError, match="unknown mode"):
        resolve_backends(tmp_path, mode="jazz")


def test_status_counts_a_mode_only_when_complete(tmp_path):
    (tmp_path / "continuous_token").mkdir()
    (tmp_path / "continuous_token" / "model.pt").write_bytes(b"x" * 10)
    status = installed(tmp_path)
    assert status.usable_modes == () and status.total_bytes == 10
    assert re.search(r"\n  partial +continuous_token/ +1 of 3 files\n", format_status(status))
    for name in ("mappings.pt", "model_config.pt"):
        (tmp_path / "continuous_token" / name).write_bytes(b"y")
    assert installed(tmp_path).usable_modes == ("continuous_token",)
    backends = resolve_backends(tmp_path, mode="continuous_token")
    assert backends.composer == "transformer" and "continuous_token checkpoint is installed" in backends.composer_reason
    assert resolve_backends(tmp_path).composer == "procedural"  # continuous_concat still missing


# ---- pulling ----------------------------------------------------------------------------------


def test_pull_lays_out_the_repo_and_auto_switches_to_the_full_backends(hub, repo_files, tmp_path):
    models_dir = tmp_path / "models"
    assert (resolve_backends(models_dir).encoder, resolve_backends(models_dir).composer) == ("palette", "procedural")

    paths = pull(models_dir, progress=False)  # the endpoint comes from HF_ENDPOINT

    assert sorted(p.relative_to(models_dir).as_posix() for p in paths) == sorted(repo_files)
    for name, data in repo_files.items():
        assert (models_dir / name).read_bytes() == data
    status = installed(models_dir)
    assert status.encoder_ready and status.usable_modes == MODES
    assert status.total_bytes == sum(len(d) for d in repo_files.values())
    backends = resolve_backends(models_dir)
    assert (backends.encoder, backends.composer) == ("clip", "transformer")
    report = format_status(status)
    assert "auto encoder: clip" in report and "auto composer for continuous_concat: transformer" in report
    assert "missing" not in report and "partial" not in report

    # Each file went over the wire exactly once, whole, from the CDN origin after a HEAD on the hub.
    assert sorted(downloaded(hub)) == sorted(repo_files)
    assert {r.origin for r in hub.downloads()} == {"cdn"} and all(r.range is None for r in hub.downloads())
    assert {r.method for r in hub.requests if r.origin == "hub"} == {"HEAD"}
    assert leftovers(models_dir) == []


def test_a_pulled_encoder_loads(repo_files, tmp_path):
    pytest.importorskip("transformers")
    from aria_engine.encoders.clip import ClipEmotionEncoder
    from tests.factories.clip import make_clip_checkpoint

    made = tmp_path / "made" / ENCODER_FILE
    make_clip_checkpoint(made)
    with FakeHub({**repo_files, ENCODER_FILE: made.read_bytes()}) as hub:
        pull(tmp_path / "models", modes=(), endpoint=hub.endpoint, progress=False)
    assert ClipEmotionEncoder(tmp_path / "models" / ENCODER_FILE).shape.image_size == 32


def test_pulled_music_checkpoints_load(hub, tmp_path):
    from aria_engine.music.transformer import load_checkpoint

    pull(tmp_path, include_encoder=False, progress=False)
    for mode in MODES:
        model, vocab, config = load_checkpoint(tmp_path / mode)
        assert config["conditioning"] == mode


def test_second_pull_downloads_nothing(hub, tmp_path):
    pull(tmp_path, progress=False)
    hub.reset_log()
    pull(tmp_path, progress=False)
    assert downloaded(hub) == []
    assert len(hub.requests) == 10 and {r.method for r in hub.requests} == {"HEAD"}  # one freshness check per file


def test_pull_fetches_only_the_parts_asked_for(hub, tmp_path):
    pull(tmp_path, modes=("discrete_token",), include_encoder=False, progress=False)
    assert sorted(downloaded(hub)) == sorted(models.mode_files("discrete_token"))
    status = installed(tmp_path)
    assert status.usable_modes == ("discrete_token",) and not status.encoder_ready
    assert resolve_backends(tmp_path, mode="discrete_token").composer == "transformer"
    assert resolve_backends(tmp_path).encoder == "palette"


def test_a_changed_file_on_the_hub_is_downloaded_again(hub, tmp_path):
    pull(tmp_path, modes=("continuous_concat",), include_encoder=False, progress=False)
    hub.files["continuous_concat/mappings.pt"] = b"retrained mappings"
    hub.reset_log()
    pull(tmp_path, modes=("continuous_concat",), include_encoder=False, progress=False)
    assert downloaded(hub) == ["continuous_concat/mappings.pt"]
    assert (tmp_path / "continuous_concat" / "mappings.pt").read_bytes() == b"retrained mappings"


def test_a_dropped_connection_resumes_where_it_stopped(repo_files, tmp_path):
    """huggingface_hub keeps what it has written (whole 10 MiB chunks) and asks for the rest."""
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    name = "continuous_concat/model.pt"
    big = bytes(range(256)) * (DOWNLOAD_CHUNK_SIZE // 256 * 5 // 4)  # 1.25 chunks
    cut = DOWNLOAD_CHUNK_SIZE + 1000
    with FakeHub({**repo_files, name: big}) as hub:
        hub.cut_next_get(name, after_bytes=cut)
        pull(tmp_path, modes=("continuous_concat",), include_encoder=False, endpoint=hub.endpoint, progress=False)
        attempts = [r.range for r in hub.downloads() if r.path == name]

    assert sha256(tmp_path / name) == hashlib.sha256(big).hexdigest()
    assert attempts == [None, f"bytes={DOWNLOAD_CHUNK_SIZE}-"]  # the rest only, not the whole file again
    assert leftovers(tmp_path) == []


def test_a_dropped_connection_within_the_first_chunk_starts_the_file_over(hub, repo_files, tmp_path):
    name = "continuous_concat/model.pt"
    hub.cut_next_get(name, after_bytes=len(repo_files[name]) // 3)
    pull(tmp_path, modes=("continuous_concat",), include_encoder=False, progress=False)
    assert (tmp_path / name).read_bytes() == repo_files[name]
    assert [r.range for r in hub.downloads() if r.path == name] == [None, None]


def test_an_interrupted_pull_keeps_finished_files(hub, repo_files, tmp_path):
    missing = "continuous_token/model.pt"
    del hub.files[missing]
    with pytest.raises(ModelDownloadError) as failure:
        pull(tmp_path, progress=False)
    assert str(failure.value) == f"vincentamato/ARIA has no file {missing} at revision main on {hub.endpoint}."
    status = installed(tmp_path)
    assert status.usable_modes == ("continuous_concat",)
    assert status.file("continuous_token/mappings.pt").present and not status.file(missing).present
    assert leftovers(tmp_path) == []

    hub.files[missing] = repo_files[missing]  # the hub has it again
    hub.reset_log()
    pull(tmp_path, progress=False)
    expected = [missing, *models.mode_files("discrete_token"), ENCODER_FILE]
    assert downloaded(hub) == expected
    assert installed(tmp_path).usable_modes == MODES


def test_plain_git_files_download_too(repo_files, tmp_path):
    with FakeHub(repo_files, lfs=False) as hub:
        pull(tmp_path, modes=("continuous_token",), include_encoder=False, endpoint=hub.endpoint, progress=False)
        assert {r.origin for r in hub.requests} == {"hub"}
    for name in models.mode_files("continuous_token"):
        assert (tmp_path / name).read_bytes() == repo_files[name]


def test_progress_bars_do_not_get_in_the_way(hub, tmp_path, capsys):
    pull(tmp_path, modes=("continuous_concat",), include_encoder=False, progress=True)
    assert installed(tmp_path).mode_ready("continuous_concat")


# ---- errors -----------------------------------------------------------------------------------


def test_unknown_repository(hub, tmp_path):
    with pytest.raises(ModelDownloadError, match="repository someone/else was not found"):
        pull(tmp_path, repo_id="someone/else", progress=False)


def test_unknown_revision(hub, tmp_path):
    with pytest.raises(ModelDownloadError, match="has no revision 'v9'"):
        pull(tmp_path, revision="v9", progress=False)


def test_pinned_revision(hub, tmp_path):
    pull(tmp_path, modes=(), revision=hub.commit, progress=False)
    assert installed(tmp_path).encoder_ready


def test_unreachable_hub(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(ModelDownloadError, match=rf"Could not reach http://127.0.0.1:{port} to download"):
        pull(tmp_path, progress=False)
    assert installed(tmp_path).total_bytes == 0 and leftovers(tmp_path) == []


def test_hub_outage(hub, tmp_path):
    hub.fail("continuous_concat/mappings.pt", 503)
    with pytest.raises(ModelDownloadError, match=r"answered HTTP 503 for continuous_concat/mappings.pt from"):
        pull(tmp_path, progress=False)
    assert installed(tmp_path).file("continuous_concat/model_config.pt").present  # what came before stays
    hub.fail("continuous_concat/mappings.pt", None)
    pull(tmp_path, progress=False)
    assert installed(tmp_path).usable_modes == MODES


def test_an_endpoint_that_is_not_a_hub(tmp_path, monkeypatch):
    """A plain web server (no X-Repo-Commit, as behind a misconfigured proxy) is named as such."""
    served = tmp_path / "www" / "vincentamato" / "ARIA" / "resolve" / "main" / "continuous_concat"
    served.mkdir(parents=True)
    (served / "model_config.pt").write_bytes(b"hello")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(ModelDownloadError, match="did not answer like a Hugging Face hub.*check HF_ENDPOINT"):
            pull(tmp_path / "models", endpoint=endpoint, progress=False)
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_mode_is_refused_before_any_request(hub, tmp_path):
    with pytest.raises(ValueError, match="unknown mode jazz"):
        pull(tmp_path, modes=("jazz",), progress=False)
    assert hub.requests == []


# ---- the subcommands -----------------------------------------------------------------------------


def test_cmd_list_and_cmd_pull(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("ARIA_MODELS_DIR", str(tmp_path))
    before = models.cmd_list()
    assert f"Models directory: {tmp_path}" in before and "auto encoder: palette" in before
    assert before.count("missing") == 4
    after = models.cmd_pull(modes=("continuous_token",), progress=False)
    assert after.startswith("4 files up to date from vincentamato/ARIA.")
    assert re.search(r"installed +continuous_token/", after) and re.search(r"missing +continuous_concat/", after)
    assert "auto encoder: clip" in after
    assert "auto composer for continuous_token: transformer" in after
