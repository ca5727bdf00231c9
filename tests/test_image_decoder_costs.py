"""What each format's decoder really costs, beside Pillow's buffer (the red-team audit of issue 9).

WebP decodes through libwebp's animation decoder (about 16 bytes a pixel in all); a JPEG in
several scans (progressive, or sequential with one component a scan) keeps every DCT
coefficient (2 bytes per component per pixel) whatever the output scale. Each picture is
decoded in a fresh subprocess that reports its peak resident memory during `load_image` (its
own high-water mark, VmHWM: ru_maxrss would carry this test process's over the exec); a
refusal from the header counts too (it must cost nothing). A JPEG with thousands of scans is
refused before decoding, through the CLI.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from aria_engine.images import MAX_JPEG_SCANS, ImageRejected, _jpeg_structure, load_image

PEAK_BUDGET_MB = 400  # issue 9: no upload under the limits costs more per decode
TWO_AT_ONCE_BUDGET_MB = 500  # the bot decodes in two threads
SIDE = 6245  # 6245 x 6245 = 39.0 MP, just under the 40 MP limit
ROOT = Path(__file__).resolve().parents[1]
ARIA = Path(sys.executable).with_name("aria")  # the venv running the tests (core or full)

_MEASURE = """
import json, sys
from concurrent.futures import ThreadPoolExecutor
from aria_engine.images import ImageRejected, load_image
def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith(field + ":"))
data = open(sys.argv[1], "rb").read()
at_once = int(sys.argv[2])
def one(data):
    try:
        return list(load_image(data).size)
    except ImageRejected as error:
        return error.code
before = status("VmRSS")
try:  # the high-water mark starts again from here (Linux 4.0+); else it holds the imports' peak
    with open("/proc/self/clear_refs", "w") as reset:
        reset.write("5")
except OSError:
    pass
with ThreadPoolExecutor(at_once) as pool:
    results = list(pool.map(one, [data] * at_once))
print(json.dumps({"peak_mb": (status("VmHWM") - before) / 1024, "result": results[0]}))
"""


def decode_peak(path: Path, at_once: int = 1) -> dict:
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(at_once)], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def save(path: Path, image: Image.Image, fmt: str, **params) -> Path:
    image.save(path, fmt, **params)
    return path


def _webp_rgb(p, side):
    return save(p, Image.new("RGB", side, (200, 100, 50)), "WEBP", quality=10, method=0)


def _webp_rgba(p, side):
    return save(p, Image.new("RGBA", side, (200, 100, 50, 128)), "WEBP", quality=10, method=0)


def _webp_lossless(p, side):
    return save(p, Image.new("RGBA", side, (200, 100, 50, 128)), "WEBP", lossless=True, method=0)


def _webp_animated(p, side):
    second = Image.new("RGBA", side, (0, 0, 0, 255))
    return save(p, Image.new("RGBA", side, (200, 100, 50, 128)), "WEBP", save_all=True,
                append_images=[second], quality=10, method=0, duration=100)


def _progressive_cmyk(p, side):
    return save(p, Image.new("CMYK", side, (10, 100, 50, 0)), "JPEG", progressive=True, quality=50)


def _progressive_444(p, side):
    return save(p, Image.new("RGB", side, (200, 100, 50)), "JPEG", progressive=True, subsampling=0, quality=50)


def _progressive_420(p, side):
    return save(p, Image.new("RGB", side, (200, 100, 50)), "JPEG", progressive=True, quality=50)


BOMBS = {  # 39 MP each, 0.1-0.6 MB on disk; before the fix 449-600 MB each, 750 MB-1.2 GB two at once
    "webp lossy": _webp_rgb,
    "webp with alpha": _webp_rgba,
    "webp animated": _webp_animated,
    "progressive CMYK jpeg": _progressive_cmyk,
    "progressive 4:4:4 jpeg": _progressive_444,
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_39_megapixel_webp_and_progressive_jpeg_stay_within_the_budget(tmp_path, kind):
    path = BOMBS[kind](tmp_path / "bomb", (SIDE, SIDE))
    assert path.stat().st_size < 1024 * 1024
    alone = decode_peak(path)
    two = decode_peak(path, at_once=2)
    print(f"{kind}: {alone['result']}, peak {alone['peak_mb']:.0f} MB, two at once {two['peak_mb']:.0f} MB")
    assert alone["peak_mb"] < PEAK_BUDGET_MB, f"{kind}: {alone['peak_mb']:.0f} MB"
    assert two["peak_mb"] < TWO_AT_ONCE_BUDGET_MB, f"{kind} x2: {two['peak_mb']:.0f} MB"


LARGEST_ACCEPTED = {  # at the decode-memory limit (192 MB counted), which each must still open
    "webp lossy with alpha, 4096 x 3072": (_webp_rgba, (4096, 3072)),
    "webp lossless, 4096 x 3072": (_webp_lossless, (4096, 3072)),
    "progressive CMYK jpeg, 4600 x 4600": (_progressive_cmyk, (4600, 4600)),
    "progressive 4:4:4 jpeg, 5000 x 5000": (_progressive_444, (5000, 5000)),
    "progressive 4:2:0 jpeg, 39 MP": (_progressive_420, (SIDE, SIDE)),
}


@pytest.mark.parametrize("kind", list(LARGEST_ACCEPTED))
def test_the_largest_accepted_pictures_open_within_the_budget(tmp_path, kind):
    make, side = LARGEST_ACCEPTED[kind]
    path = make(tmp_path / "big", side)
    alone = decode_peak(path)
    two = decode_peak(path, at_once=2)
    print(f"{kind}: {alone['result']}, peak {alone['peak_mb']:.0f} MB, two at once {two['peak_mb']:.0f} MB")
    assert isinstance(alone["result"], list), alone["result"]  # opened, not refused
    assert alone["peak_mb"] < PEAK_BUDGET_MB
    assert two["peak_mb"] < TWO_AT_ONCE_BUDGET_MB


# -- scans ----------------------------------------------------------------------------------

_TINY_SCAN = b"\xff\xda\x00\x08\x01\x01\x00\x00\x00\x10" + b"\x00"  # a DC refinement scan, 1 data byte


def with_extra_scans(data: bytes, extra: int) -> bytes:
    """A progressive JPEG with `extra` tiny refinement scans after its first (libjpeg only warns
    about the bogus progression, then passes over every block for each)."""
    start = data.index(b"\xff\xda")
    end = start + 2
    while True:  # the end of the first scan's entropy-coded data
        end = data.index(b"\xff", end)
        if data[end + 1] != 0x00 and not 0xD0 <= data[end + 1] <= 0xD7:
            break
        end += 2
    return data[:end] + _TINY_SCAN * extra + data[end:]


def progressive_grey(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=50)
    return buffer.getvalue()


def test_a_jpeg_of_ten_thousand_scans_is_refused_at_once_through_the_cli(tmp_path):
    """Before: 36 s of CPU in a decode thread no timeout can stop (a 25 MB one: about 2 hours)."""
    path = tmp_path / "scans.jpg"
    path.write_bytes(with_extra_scans(progressive_grey(SIDE), 10_000))
    assert path.stat().st_size < 300_000
    started = time.monotonic()
    run = subprocess.run([str(ARIA), "compose", str(path), "--out", str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, env={**os.environ, "ARIA_DEVICE": "cpu"})
    elapsed = time.monotonic() - started
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "scans" in lines[0] and "Traceback" not in run.stderr, run.stderr
    assert elapsed < 15, f"{elapsed:.0f} s"


def test_the_scan_limit_is_exact_and_ordinary_jpegs_pass():
    data = progressive_grey(64)
    ordinary = _jpeg_structure(data).scans
    assert 2 <= ordinary <= 20
    assert _jpeg_structure(with_extra_scans(data, MAX_JPEG_SCANS - ordinary)).scans == MAX_JPEG_SCANS
    load_image(with_extra_scans(data, MAX_JPEG_SCANS - ordinary))  # at the limit: decoded
    with pytest.raises(ImageRejected) as caught:
        load_image(with_extra_scans(data, MAX_JPEG_SCANS - ordinary + 1))
    assert caught.value.code == "too_many_scans" and "\n" not in caught.value.message


@pytest.mark.parametrize("params", [{}, {"progressive": True}, {"progressive": True, "restart_marker_blocks": 1},
                                    {"progressive": True, "subsampling": 0}])
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_the_marker_walk_counts_real_encoders_scans(mode, params):
    """Stuffed bytes and restart markers inside the entropy-coded data are not markers."""
    noisy = Image.effect_noise((96, 64), 120).convert(mode)  # plenty of 0xFF bytes in the data
    buffer = io.BytesIO()
    noisy.save(buffer, "JPEG", quality=95, **params)
    structure = _jpeg_structure(buffer.getvalue())
    expected = {"RGB": 10, "L": 6, "CMYK": 18}[mode] if params.get("progressive") else 1
    assert structure.scans == expected
    assert structure.progressive == bool(params.get("progressive"))
    assert len(structure.components) == {"RGB": 3, "L": 1, "CMYK": 4}[mode]
