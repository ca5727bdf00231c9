"""Which device runs the models: `--device auto|cpu|cuda[:N]` (or `ARIA_DEVICE`).

`auto` takes the first GPU torch sees, else the CPU. Asking for a GPU that is not there is a
clear one-line error, never a silent fall back. torch is imported only when a device is really
resolved, so processes that run no model (a bot handing work to Redis workers) need none.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

DEVICE_ENV = "ARIA_DEVICE"
PRECISION_ENV = "ARIA_CLIP_PRECISION"
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


class DeviceError(ValueError):
    """A device that cannot be used here; the message says why in one line."""


def requested_device(value: str | None = None) -> str:
    """The device asked for: `value`, else $ARIA_DEVICE, else auto (checked for form only)."""
    name = (value or os.environ.get(DEVICE_ENV, "") or "auto").strip().lower()
    kind, _, index = name.partition(":")
    if name in ("auto", "cpu", "cuda") or (kind == "cuda" and index.isdigit()):
        return name
    raise DeviceError(f"unknown device {name!r}: use {DEVICE_CHOICES}")


def resolve_device(value: str | None = None):
    """The torch.device for a request (see `requested_device`); raises DeviceError."""
    import torch

    name = requested_device(value)
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {name}: torch sees no CUDA GPU here (torch {torch.__version__}); use --device cpu or auto")
    device = torch.device(name if ":" in name else "cuda:0")
    if device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {name}: there are {torch.cuda.device_count()} CUDA GPUs here (cuda:0..)")
    return device


def describe(device) -> str:
    """`cpu (AMD EPYC, avx512_bf16)` or `cuda:0 (NVIDIA H200)`: what every reply names."""
    if device.type == "cuda":
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    features = ", ".join(flag for flag in ("avx512_bf16", "avx512f", "avx2") if flag in cpu_flags())
    return f"cpu ({cpu_model()}{', ' + features.split(', ')[0] if features else ''})"


@lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor is enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> frozenset[str]:
    return frozenset(_cpuinfo().get("flags", "").split())


def cpu_has_bf16() -> bool:
    """Native bfloat16 dot products (AVX512_BF16 or AMX), where bf16 inference pays on a CPU."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def inference_dtype(device, requested: str | None = None):
    """The dtype the CLIP encoder runs in. `requested` (else $ARIA_CLIP_PRECISION, else auto):
    auto is bf16 on a GPU (fp16 where bf16 is not supported) and fp32 on a CPU, so that one
    picture reads the same emotion on every CPU; `bfloat16` is the opt-in for CPUs with native
    bf16 dot products (`cpu_has_bf16`), measured in bench/clip.py."""
    import torch

    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    requested = (requested or os.environ.get(PRECISION_ENV, "") or "auto").strip().lower()
    if requested != "auto":
        if requested not in names:
            raise DeviceError(f"unknown precision {requested!r}: use auto, {', '.join(names)}")
        return names[requested]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32
