"""Where ARIA's weights live, what is installed, and downloading them from the hub.

A models directory has the plain layout of the `vincentamato/ARIA` repository:

    image_encoder.pt                  the CLIP emotion encoder
    continuous_concat/                one folder per conditioning mode, each with
        model.pt  mappings.pt  model_config.pt
    continuous_token/ ...
    discrete_token/ ...

`auto` backends use the full models when their files are here and the embedded defaults
(palette encoder, procedural composer) otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from aria_engine.options import MODES

ENCODER_FILE = "image_encoder.pt"
MODE_FILES = ("model_config.pt", "mappings.pt", "model.pt")  # small ones first
DEFAULT_REPO_ID = "vincentamato/ARIA"


class ModelDownloadError(RuntimeError):
    """A pull failed; the message says why and what to do, in words fit for a user."""


def checkpoint_refusal(name: str | os.PathLike, error: BaseException) -> str:
    """One line on why `torch.load(..., weights_only=True)` refused a checkpoint file.

    Never the library's own text: torch's refusal runs to several lines and advises loading
    with `weights_only=False`, which would run whatever code the file carries. ARIA never
    does, so the only advice is to fetch the published file again.
    """
    said = f"{error} {error.__cause__ or ''}".lower()
    if "global" in said:  # torch names the class or function the file asked for (a GLOBAL opcode)
        why = "it holds Python objects besides tensors and plain data, which ARIA never loads (they could run code)"
    else:
        why = "it is damaged, incomplete, or not a checkpoint of tensors and plain data"
    return f"{name} was not loaded: {why}. Download the published file again with `aria models pull`."


def load_data_only(path: str | os.PathLike, **options):
    """`torch.load(path, map_location="cpu", weights_only=True)`, with torch's UserWarnings about
    the file (an unexpected pickle protocol, a legacy format...) kept off stderr: whatever is
    wrong with a file is said once, by `checkpoint_refusal`. Raises whatever torch raises (on a
    damaged or foreign file that is nearly anything: KeyError, EOFError, OSError, RuntimeError,
    UnpicklingError...); callers turn every failure into one refusal."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(Path(path), map_location="cpu", weights_only=True, **options)


def default_models_dir() -> Path:
    """$ARIA_MODELS_DIR, else `<user data dir>/aria/models`."""
    configured = os.environ.get("ARIA_MODELS_DIR")
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir()) / "aria" / "models"


def mode_files(mode: str) -> list[str]:
    """Repository paths of one mode's checkpoint."""
    _check_modes([mode])
    return [f"{mode}/{name}" for name in MODE_FILES]


def wanted_files(modes: Iterable[str] = MODES, include_encoder: bool = True) -> list[str]:
    """Repository paths a pull of these parts needs, each mode complete before the next."""
    files = [path for mode in modes for path in mode_files(mode)]
    return files + [ENCODER_FILE] if include_encoder else files


def _check_modes(modes: Iterable[str]) -> None:
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown mode {', '.join(unknown)}: choose from {', '.join(MODES)}")


# ---- what is installed ----------------------------------------------------------------------


@dataclass(frozen=True)
class InstalledFile:
    path: str  # repository path, e.g. "continuous_concat/model.pt"
    size: int | None  # bytes; None when absent

    @property
    def present(self) -> bool:
        return self.size is not None


@dataclass(frozen=True)
class ModelsStatus:
    models_dir: Path
    files: tuple[InstalledFile, ...]

    def file(self, path: str) -> InstalledFile:
        return next(f for f in self.files if f.path == path)

    @property
    def encoder_ready(self) -> bool:
        return self.file(ENCODER_FILE).present

    def mode_ready(self, mode: str) -> bool:
        return all(self.file(path).present for path in mode_files(mode))

    @property
    def usable_modes(self) -> tuple[str, ...]:
        return tuple(mode for mode in MODES if self.mode_ready(mode))

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if not f.present)

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


def installed(models_dir: Path) -> ModelsStatus:
    """Which of the published files are in `models_dir`, and their sizes (reads no weights).

    Downloads land under a temporary name and are moved into place when complete, so a file
    present under its own name is a whole one.
    """
    models_dir = Path(models_dir)
    files = []
    for path in wanted_files():
        local = models_dir / path
        files.append(InstalledFile(path, local.stat().st_size if local.is_file() else None))
    return ModelsStatus(models_dir, tuple(files))


# ---- what `auto` picks ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backends:
    encoder: str  # "palette" or "clip"
    composer: str  # "procedural" or "transformer"
    mode: str
    encoder_reason: str
    composer_reason: str


def resolve_backends(
    models_dir: Path, encoder: str = "auto", composer: str = "auto", mode: str = "continuous_concat"
) -> Backends:
    """Which encoder and composer a request gets, and why, in words for `aria models list`.

    `auto` means the full backend when its weights are in `models_dir`, else the embedded default.
    An explicit choice is kept as asked (loading it reports missing weights).
    """
    _check_modes([mode])
    status = installed(models_dir)

    if encoder != "auto":
        encoder_reason = f"{encoder} was asked for"
    elif status.encoder_ready:
        encoder, encoder_reason = "clip", f"ARIA's {ENCODER_FILE} is installed"
    else:
        encoder, encoder_reason = "palette", f"{ENCODER_FILE} is not installed; `aria models pull` downloads it"

    if composer != "auto":
        composer_reason = f"{composer} was asked for"
    elif status.mode_ready(mode):
        composer, composer_reason = "transformer", f"the {mode} checkpoint is installed"
    else:
        absent = [p.split("/")[-1] for p in mode_files(mode) if not status.file(p).present]
        composer_reason = f"{mode}/ lacks {', '.join(absent)}; `aria models pull` downloads them"
        composer = "procedural"

    return Backends(encoder, composer, mode, encoder_reason, composer_reason)


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def format_status(status: ModelsStatus, mode: str = "continuous_concat") -> str:
    """`aria models list`: each part, installed or not, and what `auto` uses."""
    lines = [f"Models directory: {status.models_dir}"]

    def line(state: str, name: str, detail: str = "") -> str:
        return f"  {state:<9}  {name:<20} {detail}".rstrip()

    encoder = status.file(ENCODER_FILE)
    if encoder.present:
        lines.append(line("installed", ENCODER_FILE, _human_size(encoder.size)))
    else:
        lines.append(line("missing", ENCODER_FILE))
    for m in MODES:
        sizes = [status.file(p).size for p in mode_files(m)]
        present = [s for s in sizes if s is not None]
        if len(present) == len(sizes):
            lines.append(line("installed", m + "/", _human_size(sum(present))))
        elif present:
            lines.append(line("partial", m + "/", f"{len(present)} of {len(sizes)} files"))
        else:
            lines.append(line("missing", m + "/"))
    backends = resolve_backends(status.models_dir, mode=mode)
    lines.append(f"auto encoder: {backends.encoder} ({backends.encoder_reason})")
    lines.append(f"auto composer for {mode}: {backends.composer} ({backends.composer_reason})")
    return "\n".join(lines)


# ---- downloading ----------------------------------------------------------------------------


def pull(
    models_dir: Path,
    *,
    modes: Sequence[str] = MODES,
    include_encoder: bool = True,
    repo_id: str = DEFAULT_REPO_ID,
    revision: str | None = None,
    endpoint: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Download the files these parts need into `models_dir`; returns their local paths.

    Per file, `huggingface_hub.hf_hub_download` into `local_dir=models_dir` (the plain layout,
    with its bookkeeping under `models_dir/.cache/huggingface`). What this gives, as of
    huggingface_hub 2.4:
    - a file already here with the hub's current ETag is not downloaded again (one HEAD request);
    - a connection that drops mid-file is resumed (HTTP Range) from the last whole 10 MiB chunk
      written (a drop within the first chunk restarts the file), and a file becomes visible
      under its own name only when complete;
    - a pull stopped by the user keeps the files it finished; the one in flight starts over on
      the next pull over plain HTTP (hub repos on Xet storage also reuse the chunks fetched).
    `endpoint` defaults to $HF_ENDPOINT, read at call time (huggingface_hub reads it at import).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils.tqdm import silent_tqdm

    _check_modes(modes)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    local = []
    for filename in wanted_files(modes, include_encoder):
        try:
            path = hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                local_dir=models_dir,
                endpoint=endpoint,
                tqdm_class=None if progress else silent_tqdm,
            )
        except Exception as error:  # whatever the hub or the network did, say it plainly
            where = endpoint or "the Hugging Face hub"
            raise ModelDownloadError(explain_download_error(error, repo_id, filename, revision, where)) from error
        local.append(Path(path))
    return local


def explain_download_error(error: Exception, repo_id: str, filename: str, revision: str | None, where: str) -> str:
    """What went wrong with one file's download, and what to do, in a sentence or two."""
    from huggingface_hub import errors

    revision = revision or "main"
    what = f"{filename} from {repo_id}"
    kept = "Run the pull again: finished files are kept."
    if isinstance(error, errors.LocalEntryNotFoundError) and isinstance(error.__cause__, Exception):
        error = error.__cause__  # huggingface_hub wraps the real reason when nothing is cached
    if isinstance(error, errors.RemoteEntryNotFoundError):
        return f"{repo_id} has no file {filename} at revision {revision} on {where}."
    if isinstance(error, errors.GatedRepoError):
        return f"{repo_id} is gated on {where}: log in with `hf auth login` and accept its terms."
    if isinstance(error, errors.RepositoryNotFoundError):
        return f"The repository {repo_id} was not found on {where} (or it is private)."
    if isinstance(error, errors.RevisionNotFoundError):
        return f"{repo_id} has no revision {revision!r} on {where}."
    if isinstance(error, errors.OfflineModeIsEnabled):
        return f"Cannot download {what}: HF_HUB_OFFLINE is set. Unset it to download."
    if isinstance(error, errors.HfHubHTTPError) and error.response is not None:
        return f"{where} answered HTTP {error.response.status_code} for {what}. Try again later. {kept}"
    if isinstance(error, OSError) and "Consistency check failed" in str(error):
        return f"The download of {what} was cut short. {kept}"
    if isinstance(error, OSError) and error.errno is not None:
        return f"Could not write {what} to disk: {error.strerror or error}."
    if isinstance(error, (errors.LocalEntryNotFoundError, errors.FileMetadataError)):
        return f"{where} did not answer like a Hugging Face hub for {what}; check HF_ENDPOINT. {kept}"
    network = type(error).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3") or isinstance(
        error, (ConnectionError, TimeoutError)
    )
    if network:
        return (
            f"Could not reach {where} to download {what}. "
            f"Check your connection (and HF_ENDPOINT if you use a mirror). {kept}"
        )
    return f"Downloading {what} failed: {type(error).__name__}: {error}. {kept}"


# ---- the `aria models` subcommands ------------------------------------------------------------


def cmd_list(models_dir: Path | None = None, mode: str = "continuous_concat") -> str:
    """`aria models list`."""
    return format_status(installed(models_dir or default_models_dir()), mode)


def cmd_pull(
    models_dir: Path | None = None,
    modes: Sequence[str] = MODES,
    *,
    include_encoder: bool = True,
    repo_id: str = DEFAULT_REPO_ID,
    revision: str | None = None,
    progress: bool = True,
) -> str:
    """`aria models pull`: download, then the same report as `list`. Raises ModelDownloadError."""
    models_dir = models_dir or default_models_dir()
    paths = pull(
        models_dir,
        modes=modes,
        include_encoder=include_encoder,
        repo_id=repo_id,
        revision=revision,
        progress=progress,
    )
    mode = modes[0] if modes else "continuous_concat"
    return f"{len(paths)} files up to date from {repo_id}.\n" + cmd_list(models_dir, mode)
