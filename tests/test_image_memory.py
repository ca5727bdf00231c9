"""Decoding an upload costs bounded memory, whatever its mode and bit depth.

Each picture is decoded in a fresh subprocess, which reports its peak resident memory during
`load_image` (ru_maxrss after, minus ru_maxrss before: imports and the file's bytes are not
counted). The pictures are PNGs of 39 MP, just under the 40 MP limit, that compress to under
a megabyte: the cheapest way to make the bot allocate the most.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from aria_engine.images import ImageRejected, load_image

PEAK_BUDGET_MB = 400
SIDE = 6245  # 6245 x 6245 = 39.0 MP

_MEASURE = """
import json, resource, sys
from concurrent.futures import ThreadPoolExecutor
from aria_engine.images import load_image
data = open(sys.argv[1], "rb").read()
at_once = int(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with ThreadPoolExecutor(at_once) as pool:
    images = list(pool.map(load_image, [data] * at_once))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = images[0]
print(json.dumps({"peak_mb": (after - before) / 1024, "size": image.size, "mode": image.mode}))
"""


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def crafted_png(width: int, height: int, bit_depth: int, colour_type: int, *, extra: bytes = b"") -> bytes:
    """A PNG of mid-grey rows (0x80 bytes), compressed row by row so it is never whole in memory."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    row = b"\x00" + b"\x80" * (width * channels * bit_depth // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


_PALETTE = _chunk(b"PLTE", bytes(range(256)) * 3) + _chunk(b"tRNS", b"\x80" * 256)

KINDS = {
    "grey 16-bit": (16, 0, b""),
    "grey + alpha 16-bit": (16, 4, b""),
    "RGB 16-bit": (16, 2, b""),
    "RGBA 16-bit": (16, 6, b""),
    "RGBA 8-bit": (8, 6, b""),
    "palette with transparency": (8, 3, _PALETTE),
}


def decode_peak_mb(path: Path, at_once: int = 1) -> dict:
    """Peak memory of decoding `path` (`at_once` times side by side, as the bot's threads do)."""
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(at_once)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_39_megapixel_upload_decodes_within_the_memory_budget(tmp_path, kind):
    bit_depth, colour_type, extra = KINDS[kind]
    path = tmp_path / "bomb.png"
    path.write_bytes(crafted_png(SIDE, SIDE, bit_depth, colour_type, extra=extra))
    assert path.stat().st_size < 1024 * 1024

    report = decode_peak_mb(path)
    print(f"{kind}: peak {report['peak_mb']:.0f} MB")
    assert report["mode"] == "RGB"
    assert report["peak_mb"] < PEAK_BUDGET_MB, f"{kind}: {report['peak_mb']:.0f} MB"


def test_two_at_once_stay_within_the_budget(tmp_path):
    """The bot decodes in two threads: two 16-bit 39 MP bombs together stay under the budget."""
    path = tmp_path / "bomb.png"
    path.write_bytes(crafted_png(SIDE, SIDE, 16, 0))
    report = decode_peak_mb(path, at_once=2)
    print(f"two at once: peak {report['peak_mb']:.0f} MB")
    assert report["peak_mb"] < PEAK_BUDGET_MB


def test_big_pictures_keep_their_look_when_reduced():
    """Over the working size a picture is reduced while it is converted; its colours stay."""
    grey16 = crafted_png(5000, 4000, 16, 0)
    image = load_image(grey16)
    assert max(image.size) <= 4096 and image.size[0] / image.size[1] == pytest.approx(5000 / 4000, rel=0.01)
    assert image.getpixel((10, 10)) == (128, 128, 128)  # 0x8080 / 257

    half_clear = Image.new("RGBA", (5000, 4000), (0, 0, 255, 0))
    half_clear.paste((0, 0, 255, 255), (0, 0, 2500, 4000))
    buffer = io.BytesIO()
    half_clear.save(buffer, "PNG")
    image = load_image(buffer.getvalue())
    assert image.getpixel((10, 10)) == (0, 0, 255)  # opaque blue stays blue
    assert image.getpixel((image.width - 10, 10)) == (255, 255, 255)  # the clear half onto white


def test_decode_memory_is_bounded_by_bytes_not_only_pixels():
    """A limit on memory, not pixels alone: a picture under max_pixels whose decoded buffer is
    over max_decode_bytes is refused from its header, before any pixel is decoded."""
    header_only = crafted_png(4000, 4000, 8, 6)  # 16 MP RGBA: 64 MB decoded
    with pytest.raises(ImageRejected) as caught:
        load_image(header_only, max_decode_bytes=32 * 1024 * 1024)
    assert caught.value.code == "too_much_memory"
    assert "MB" in caught.value.message and "\n" not in caught.value.message
    assert load_image(crafted_png(4000, 4000, 8, 0), max_decode_bytes=32 * 1024 * 1024).size == (4000, 4000)
