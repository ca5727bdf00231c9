"""Safe image decoding: uploaded bytes in, one RGB picture out, or a polite refusal.

Everything a chat user uploads passes through `load_image`. The order of the checks matters:
1. byte count (cheap, before anything reads the data);
2. format by content (magic bytes), never by file name: only JPEG, PNG, WebP, GIF and BMP are
   decoded, and Pillow is told to try only the plugin the magic bytes named;
3. pixel count and decoded bytes from the header, before a single pixel is decoded
   (`Image.open` is lazy); for a JPEG, its scans counted by walking the marker segments (more
   than MAX_JPEG_SCANS is refused: each scan is a pass over the picture, and a decode cannot be
   interrupted);
4. decode the first frame only (animated GIF / WebP / APNG frames after it are never touched);
5. conversion of every mode (palette, alpha, CMYK, 16-bit, grey) to RGB, then EXIF orientation.

Memory: a small file can claim a big picture, so the cost of decoding is bounded in bytes, not
only pixels. What decoding allocates must fit `max_decode_bytes`: Pillow's buffer (1, 2 or 4
bytes a pixel, at the size a JPEG is drafted to) and the decoder's own (WebP: libwebp's
animation decoder, 12 bytes a pixel more; a JPEG in several scans: every DCT coefficient, 2
bytes per component per pixel at full size); conversion then works in bands of about a megapixel, so no full-size
intermediate copy is ever made, and a picture over `WORK_PIXELS` is reduced (box filter) band
by band on the way, since the encoders look at a few hundred pixels a side at most. A 39 MP
picture of any mode costs its decoded buffer plus a few MB.

Every failure is an `ImageRejected` with a short machine `code` and a sentence fit to show in
chat; nothing else escapes, whatever the bytes.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_DECODE_BYTES = 192 * 1024 * 1024  # 40 MP at 4 bytes a pixel fits; more does not
WORK_PIXELS = 16_000_000  # bigger pictures are reduced while converted (the encoders need far less)
_BAND_PIXELS = 1_000_000  # conversion works on bands of about this many pixels
MAX_JPEG_SCANS = 100  # progressive JPEGs from real encoders have about 10; each scan costs a pass

# Formats we decode: sniffed name -> Pillow plugin name.
_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}
_ACCEPTED_IN_WORDS = "JPEG, PNG, WebP, GIF and BMP"

# How each sniffed format is named to a user ("That file is ...").
_DESCRIPTIONS = {
    "jpeg": "a JPEG image",
    "png": "a PNG image",
    "webp": "a WebP image",
    "gif": "a GIF image",
    "bmp": "a BMP image",
    "tiff": "a TIFF image",
    "svg": "an SVG drawing",
    "html": "a web page (HTML), not a picture",
    "xml": "an XML document, not a picture",
    "pdf": "a PDF document",
    "heic": "a HEIC photo",
    "avif": "an AVIF image",
    "jxl": "a JPEG XL image",
    "psd": "a Photoshop document",
    "zip": "a ZIP archive",
    "video": "a video",
}

# A hint after the refusal, where there is an easy way out.
_HINTS = {
    "svg": " Export it as PNG and try again.",
    "heic": " Most phones can share a photo as JPEG instead.",
    "avif": " Save it as PNG or JPEG and try again.",
    "tiff": " Save it as PNG or JPEG and try again.",
    "psd": " Export it as PNG or JPEG and try again.",
    "pdf": " Take a screenshot of the page instead.",
    "html": " Save the picture itself, not the page.",
}

_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


class ImageRejected(ValueError):
    """An upload we will not decode. `code` is a short machine word, `message` a polite sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageLimits:
    """Limits for one upload. `max_side` (optional) shrinks big pictures while decoding."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int | None = None
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES


# -- format by content ----------------------------------------------------------------------


def sniff_format(data: bytes) -> str | None:
    """Name the format of `data` from its first bytes; None when it is nothing we recognise.

    Accepted: "jpeg", "png", "webp", "gif", "bmp". Recognised only to name them in a refusal:
    "tiff", "svg", "html", "xml", "pdf", "heic", "avif", "jxl", "psd", "zip", "video".
    """
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head.startswith(b"8BPS"):
        return "psd"
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return "jxl"
    if head[4:8] == b"ftyp":
        return _sniff_iso_media(data)
    return _sniff_markup(data)


def _sniff_iso_media(data: bytes) -> str:
    """HEIF-family files and videos share the ISO box layout; the ftyp brands tell them apart."""
    box_size = int.from_bytes(data[0:4], "big")
    ftyp = bytes(data[8 : max(16, min(box_size, 256))])
    brands = {ftyp[i : i + 4] for i in range(0, len(ftyp) - 3, 4)}  # major, version, compatible
    if brands & _AVIF_BRANDS:
        return "avif"
    if brands & _HEIF_BRANDS:
        return "heic"
    return "video"


def _sniff_markup(data: bytes) -> str | None:
    """SVG, HTML and other XML: text that starts (after a BOM and blanks) with '<'."""
    text = bytes(data[:4096]).removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if not text.startswith(b"<"):
        return None
    if text.startswith(b"<svg") or b"<svg" in text:
        return "svg"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "html"
    if text.startswith(b"<?xml"):
        return "xml"
    return None


# -- decoding -------------------------------------------------------------------------------


def load_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES,
) -> Image.Image:
    """Decode an upload to an RGB image, or raise `ImageRejected` (and nothing else).

    `max_side`, when given, shrinks the picture so its longer side is at most that many pixels
    (JPEGs are then decoded at a reduced scale, several times faster for phone photos). Pictures
    over `WORK_PIXELS` come back reduced by a whole factor, so every result fits in 64 MB.
    """
    data = bytes(data)
    _check_size(data, max_bytes)
    fmt = _check_format(data)
    jpeg = _jpeg_structure(data) if fmt == "jpeg" else None
    image = _open_lazily(data, fmt, max_pixels)
    _check_pixels(image, fmt, max_pixels)
    full_size = image.size
    if fmt == "jpeg":
        _draft(image, max_side)  # the decoder's output shrinks; its coefficient buffers do not
    _check_decode_bytes(image, max_decode_bytes, fmt=fmt, full_size=full_size, jpeg=jpeg)
    _decode_first_frame(image, fmt, max_pixels)
    orientation = _exif_orientation(image)
    rgb = to_rgb(image, reduce=_reduction(image.size))
    if rgb is not image:
        image.close()  # the decoded buffer goes now, before any copy of the result
    rgb = _orient(rgb, orientation)
    if max_side is not None and max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return rgb


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("empty", "That file is empty (0 bytes); please attach a picture.")
    if len(data) > max_bytes:
        raise ImageRejected(
            "too_large",
            f"That file is {_megabytes(len(data))}; I can read pictures up to {_megabytes(max_bytes)}. "
            "Try a smaller or more compressed copy.",
        )


def _check_format(data: bytes) -> str:
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(
            "not_an_image", f"That file doesn't look like a picture; I can read {_ACCEPTED_IN_WORDS}."
        )
    if fmt not in _PILLOW_FORMATS:
        raise ImageRejected(
            "unsupported_format",
            f"That file is {_DESCRIPTIONS[fmt]}; I can read {_ACCEPTED_IN_WORDS}.{_HINTS.get(fmt, '')}",
        )
    return fmt


def _open_lazily(data: bytes, fmt: str, max_pixels: int) -> Image.Image:
    """Read the header only, with just the one Pillow plugin the magic bytes named."""
    try:
        return Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]])
    except Image.DecompressionBombError:
        raise _bomb(fmt, max_pixels=max_pixels) from None
    except Exception:
        raise _corrupt(fmt) from None


def _check_pixels(image: Image.Image, fmt: str, max_pixels: int) -> None:
    width, height = image.size
    pixels = width * height
    if pixels <= max_pixels:
        return
    if Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS:
        raise _bomb(fmt, (width, height), max_pixels=max_pixels)
    raise ImageRejected(
        "too_many_pixels",
        f"That picture is {width} × {height} pixels ({pixels / 1e6:.0f} megapixels); I can read up to "
        f"{max_pixels / 1e6:g} megapixels. Try a smaller copy.",
    )


# Bytes a pixel takes in Pillow's own storage, by mode (whatever the file's bit depth: a
# 16-bit RGB PNG is stored as 8-bit RGB in 4 bytes, 16-bit grey as 2).
_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}

# What a format's decoder holds beside Pillow's buffer while it decodes, in bytes a pixel of the
# canvas. Pillow decodes every WebP through libwebp's animation decoder, which keeps two RGBA
# canvases (the frame and the disposed previous one) and hands the frame over as a bytes copy:
# 12 bytes a pixel on top of the 4 of Pillow's RGB(A) buffer, measured at 14.5-15 in all
# (lossy, lossy with alpha, lossless; tests/test_image_memory.py).
_DECODER_BYTES = {"webp": 12}


@dataclass(frozen=True)
class JpegStructure:
    """What the marker segments of a JPEG say about its decoding cost, read before decoding.

    `components` are (horizontal, vertical) sampling factors from the frame header (SOF); `scans`
    counts the SOS segments up to EOI; `progressive` is SOF2/6/10/14.
    """

    scans: int = 0
    progressive: bool = False
    components: tuple[tuple[int, int], ...] = ()
    first_scan_components: int = 0

    @property
    def buffers_whole_image(self) -> bool:
        """libjpeg keeps every DCT coefficient of the picture (2 bytes each, 64 per 8x8 block of
        each component) when the picture comes in more than one scan: always for progressive
        files, and for sequential ones whose first scan does not carry every component."""
        return self.progressive or self.scans > 1 or (
            0 < self.first_scan_components < len(self.components))

    def coefficient_bytes(self, size: tuple[int, int]) -> int:
        """libjpeg's whole-image coefficient arrays for a picture of `size` (full scale: scaled
        decoding shrinks the output, never these), as jdcoefct.c allocates them."""
        if not self.buffers_whole_image or not self.components:
            return 0
        width, height = size
        h_max = max(h for h, _ in self.components) or 1
        v_max = max(v for _, v in self.components) or 1
        total = 0
        for h, v in self.components:
            blocks_w = math.ceil(math.ceil(width * h / h_max) / 8)
            blocks_h = math.ceil(math.ceil(height * v / v_max) / 8)
            blocks_w = math.ceil(blocks_w / max(1, h)) * max(1, h)  # rounded up to whole MCUs
            blocks_h = math.ceil(blocks_h / max(1, v)) * max(1, v)
            total += blocks_w * blocks_h * 64 * 2
        return total


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC are not frames
_PROGRESSIVE_SOF = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTn, SOI: no length follows
# The end of entropy-coded data: a 0xFF followed by a marker byte, not by 0x00 (a stuffed 0xFF),
# RSTn (restart markers live inside the data) or 0xFF (fill). A lookahead, so the search is linear.
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def _jpeg_structure(data: bytes) -> JpegStructure:
    """Walk a JPEG's marker segments (honouring their lengths, skipping entropy-coded data) and
    count its scans; refuse one with more than MAX_JPEG_SCANS, whose decoding would take minutes
    of CPU no timeout can stop. A walk that runs off the data stops; the decoder judges the rest.
    """
    scans = 0
    progressive = False
    components: tuple[tuple[int, int], ...] = ()
    first_scan = 0
    pos = 2  # after SOI
    end = len(data)
    while pos + 1 < end:
        if data[pos] != 0xFF:  # garbage between segments: libjpeg skips to the next marker too
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
        while pos + 1 < end and data[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= end:
            break
        marker = data[pos + 1]
        pos += 2
        if marker == 0xD9:  # EOI
            break
        if marker in _STANDALONE or marker == 0x00:
            continue
        if pos + 2 > end:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            break
        segment = data[pos + 2 : pos + length]
        pos += length
        if marker in _SOF_MARKERS and not components and len(segment) >= 6:
            progressive = marker in _PROGRESSIVE_SOF
            count = segment[5]
            components = tuple(
                (segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 0x0F)
                for i in range(count) if 8 + 3 * i < len(segment)
            )
        elif marker == 0xDA:
            scans += 1
            if scans == 1 and segment:
                first_scan = segment[0]
            if scans > MAX_JPEG_SCANS:
                raise ImageRejected(
                    "too_many_scans",
                    f"That JPEG is built from more than {MAX_JPEG_SCANS} scans (ordinary ones have about "
                    "10), which would take minutes to decode. Save it again from any editor and try again.",
                )
            found = _NEXT_MARKER.search(data, pos)  # skip the scan's entropy-coded data
            if found is None:
                break
            pos = found.start()
    return JpegStructure(scans, progressive, components, first_scan)


def decode_bytes(size: tuple[int, int], mode: str, fmt: str | None = None) -> int:
    """What decoding a picture of this size and mode allocates, in bytes: Pillow's buffer, and
    for a format whose decoder keeps more beside it (WebP), that too."""
    pixels = size[0] * size[1]
    return pixels * (_STORAGE_BYTES.get(mode, 4) + _DECODER_BYTES.get(fmt or "", 0))


def _check_decode_bytes(
    image: Image.Image,
    max_decode_bytes: int,
    *,
    fmt: str | None = None,
    full_size: tuple[int, int] | None = None,
    jpeg: JpegStructure | None = None,
) -> None:
    """Refuse, from the header, a picture whose decoding would allocate over `max_decode_bytes`:
    Pillow's buffer at the size it will decode to (a JPEG's after draft), the decoder's own
    buffers (WebP's canvases; a multi-scan JPEG's coefficients, at full size)."""
    cost = decode_bytes(image.size, image.mode, fmt)
    if jpeg is not None:
        cost += jpeg.coefficient_bytes(full_size or image.size)
    if cost <= max_decode_bytes:
        return
    width, height = full_size or image.size
    raise ImageRejected(
        "too_much_memory",
        f"That picture ({width} × {height} pixels) would take {_megabytes(cost)} of memory to open; "
        f"I can open pictures up to {_megabytes(max_decode_bytes)}. Try a smaller copy.",
    )


def _reduction(size: tuple[int, int]) -> int:
    """The smallest whole factor that brings a picture to WORK_PIXELS or fewer."""
    factor = 1
    while math.ceil(size[0] / factor) * math.ceil(size[1] / factor) > WORK_PIXELS:
        factor += 1
    return factor


def _draft(image: Image.Image, max_side: int | None) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 when the result would be reduced anyway."""
    width, height = image.size
    if max_side is not None and max(width, height) > max_side:
        image.draft("RGB", (max_side, max_side))
    elif (factor := _reduction(image.size)) > 1:
        # The size the reduction would reach: libjpeg then decodes at 1/2 (DCT scaling) what a
        # full decode would box-average by 2, with a quarter of the output buffer.
        image.draft("RGB", (max(1, width // factor), max(1, height // factor)))


def _decode_first_frame(image: Image.Image, fmt: str, max_pixels: int) -> None:
    """Decode the current (first) frame; Pillow never reads later frames unless asked to seek."""
    try:
        image.load()
    except Image.DecompressionBombError:
        raise _bomb(fmt, max_pixels=max_pixels) from None
    except MemoryError:
        raise ImageRejected("too_many_pixels", "That picture is too large to open here; try a smaller copy.") from None
    except Exception as error:
        if "decompressed data too large" in str(error).lower():  # Pillow's guard on PNG text chunks
            raise _bomb(fmt, max_pixels=max_pixels) from None
        raise _corrupt(fmt) from None


_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation tag (1 when absent); a broken EXIF block is ignored, not fatal."""
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _orient(image: Image.Image, orientation: int) -> Image.Image:
    """Turn the picture the way the camera meant (done on the converted, maybe reduced, copy)."""
    method = _ORIENTATIONS.get(orientation)
    return image if method is None else image.transpose(method)


def _bomb(fmt: str, size: tuple[int, int] | None = None, *, max_pixels: int) -> ImageRejected:
    claim = f" claims to be {size[0]} × {size[1]} pixels, which" if size else ""
    return ImageRejected(
        "decompression_bomb",
        f"That {fmt.upper()} file{claim} would expand to far more pixels than it is safe to open; "
        f"I can read pictures up to {max_pixels / 1e6:g} megapixels.",
    )


def _corrupt(fmt: str) -> ImageRejected:
    return ImageRejected(
        "corrupt",
        f"That {fmt.upper()} file looks damaged or incomplete, so I couldn't decode it. "
        "Try saving or uploading it again.",
    )


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


# -- modes ----------------------------------------------------------------------------------

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def to_rgb(image: Image.Image, *, reduce: int = 1) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: transparency onto white, 16-bit and float scaled, not clipped.

    Works band by band (about a megapixel each) so no full-size intermediate is made; `reduce`
    > 1 box-averages each band by that factor after converting it, so the result is that much
    smaller. An RGB picture that needs no reducing is returned as it is.
    """
    if image.mode == "RGB" and reduce == 1:
        return image
    scale = _high_depth_scale(image)
    width, height = image.size
    out = Image.new("RGB", (math.ceil(width / reduce), math.ceil(height / reduce)))
    rows = max(1, _BAND_PIXELS // max(1, width * reduce)) * reduce  # a whole number of reduced rows
    for top in range(0, height, rows):
        band = _band_to_rgb(image.crop((0, top, width, min(height, top + rows))), scale)
        if reduce > 1:
            band = band.reduce(reduce)
        out.paste(band, (0, top // reduce))
    return out


def _band_to_rgb(band: Image.Image, scale: float | None) -> Image.Image:
    if band.mode == "RGB":
        return band
    if scale is not None:
        return _high_depth_to_rgb(band, scale)
    if band.mode in _ALPHA_MODES or "transparency" in band.info:
        return _composite_on_white(band if band.mode == "RGBA" else band.convert("RGBA"))
    return band.convert("RGB")


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _high_depth_scale(image: Image.Image) -> float | None:
    """What 16-bit and 32-bit grey samples are multiplied by to reach 0..255 (Pillow's convert
    would clip instead); None for the other modes. Decided on the whole picture, not a band.

    "I;16*" is 0..65535. "I" (32-bit) holds 16-bit samples in practice; if all of them fit in
    0..255 it is already 8-bit data and is kept as is. "F" in 0..1 is scaled by 255.
    """
    if image.mode not in _HIGH_DEPTH_MODES:
        return None
    if image.mode.startswith("I;16"):
        return 1 / 257
    low, peak = image.getextrema() if image.width and image.height else (0, 0)
    if image.mode == "I" and peak > 255:
        return 1 / 257
    if image.mode == "F" and peak <= 1.0:
        return 255.0
    return 1.0


def _high_depth_to_rgb(band: Image.Image, scale: float) -> Image.Image:
    """One band of high-depth grey to RGB, in float32 (exact for 16-bit samples) and in place."""
    values = np.array(band, dtype=np.float32)  # a copy: it is changed in place
    if scale == 1 / 257:
        values /= 257.0  # a division, like the reference formula, so the rounding stays exact
    elif scale != 1.0:
        values *= np.float32(scale)
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return Image.fromarray(values.astype(np.uint8)).convert("RGB")
