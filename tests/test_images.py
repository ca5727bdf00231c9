"""Safe image loading: what is accepted, what is refused (and how politely), and what comes out."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from aria_engine.images import ImageLimits, ImageRejected, load_image, sniff_format, to_rgb


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG with a valid IHDR claiming `width` x `height` and no pixel data at all."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def rejected(data: bytes, **limits) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        load_image(data, **limits)
    error = caught.value
    assert str(error) == error.message
    assert error.message[0].isupper() and error.message.endswith(".")
    assert "Traceback" not in error.message and "PIL" not in error.message
    return error


RED = (255, 0, 0)
BLUE = (0, 0, 255)


def near(pixel, expected, tolerance=12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(pixel, expected))


# -- accepted formats -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_each_accepted_format_decodes_to_rgb(fmt):
    source = Image.new("RGB", (40, 30), RED)
    image = load_image(encode(source, fmt))
    assert image.mode == "RGB"
    assert image.size == (40, 30)
    assert near(image.getpixel((20, 15)), RED, tolerance=20)


def test_format_is_judged_by_content_not_by_name():
    # The API takes bytes, never a name: a PNG that someone called photo.jpg is just a PNG.
    png = encode(Image.new("RGB", (8, 8), BLUE), "PNG")
    assert sniff_format(png) == "png"
    assert load_image(png).getpixel((0, 0)) == BLUE
    # ... and a TIFF called picture.png is still a TIFF.
    tiff = encode(Image.new("RGB", (8, 8), BLUE), "TIFF")
    error = rejected(tiff)
    assert error.code == "unsupported_format"
    assert "TIFF" in error.message and "PNG" in error.message


# -- refusals -------------------------------------------------------------------------------


def test_zero_bytes_is_empty():
    error = rejected(b"")
    assert error.code == "empty"
    assert "empty" in error.message


def test_byte_limit_is_checked_first():
    data = encode(Image.new("RGB", (64, 64), RED), "PNG")
    error = rejected(data, max_bytes=len(data) - 1)
    assert error.code == "too_large"
    assert "MB" in error.message
    assert rejected(b"x" * 30 * 1024 * 1024).code == "too_large"  # the default limit is 25 MiB


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    # No pixel data follows the header: had the loader decoded, it would report "corrupt".
    error = rejected(png_header_only(8000, 6000))
    assert error.code == "too_many_pixels"
    assert "8000 × 6000" in error.message and "40 megapixels" in error.message
    assert rejected(encode(Image.new("RGB", (20, 20)), "PNG"), max_pixels=399).code == "too_many_pixels"
    assert load_image(encode(Image.new("RGB", (20, 20)), "PNG"), max_pixels=400).size == (20, 20)


def test_absurd_dimensions_are_a_decompression_bomb():
    # 100k x 100k would need 30 GB; Pillow's own guard fires inside Image.open.
    error = rejected(png_header_only(100_000, 100_000))
    assert error.code == "decompression_bomb"
    assert "megapixels" in error.message


def test_header_only_png_within_limits_is_corrupt():
    assert rejected(png_header_only(64, 64)).code == "corrupt"


def test_truncated_jpeg_is_corrupt():
    rng = np.random.default_rng(0)
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    jpeg = encode(noisy, "JPEG", quality=90)
    error = rejected(jpeg[: len(jpeg) // 2])
    assert error.code == "corrupt"
    assert "JPEG" in error.message and "damaged" in error.message


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"<!DOCTYPE html>\n<html><body><img src=x.png></body></html>", "web page"),
        (b"\xef\xbb\xbf  <html lang='en'><head></head></html>", "web page"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>', "SVG"),
        (b"<svg viewBox='0 0 10 10'><rect/></svg>", "SVG"),
        (b'<?xml version="1.0"?><note>hi</note>', "XML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "ZIP"),
        (b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00", "Photoshop"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
    ],
)
def test_recognised_non_images_are_named_in_the_refusal(data, named):
    error = rejected(data)
    assert error.code == "unsupported_format"
    assert named in error.message
    assert "JPEG, PNG, WebP, GIF and BMP" in error.message


@pytest.mark.parametrize("data", [b"hello, this is a text file\n", b"\x00" * 100, b"BMx", b"GIF8", b"\xff\xd8"])
def test_unrecognised_bytes_are_not_an_image(data):
    error = rejected(data)
    assert error.code == "not_an_image"
    assert "doesn't look like a picture" in error.message


def test_sniff_format_names():
    assert sniff_format(encode(Image.new("RGB", (4, 4)), "JPEG")) == "jpeg"
    assert sniff_format(encode(Image.new("RGB", (4, 4)), "WEBP")) == "webp"
    assert sniff_format(encode(Image.new("RGB", (4, 4)), "GIF")) == "gif"
    assert sniff_format(encode(Image.new("RGB", (4, 4)), "BMP")) == "bmp"
    assert sniff_format(b"") is None


# -- frames, orientation, modes -------------------------------------------------------------


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), c) for c in (RED, BLUE, (0, 255, 0))]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_give_their_first_frame(fmt):
    image = load_image(animated(fmt))
    assert image.mode == "RGB" and image.size == (32, 32)
    assert near(image.getpixel((16, 16)), RED)


def _garble_later_frames(data: bytes, fmt: str) -> bytes:
    """Replace the pixel data of every frame after the first with noise, keeping the framing."""
    noise = random.Random(1)
    out = bytearray(data)
    if fmt == "PNG":  # APNG: frames 2+ live in fdAT chunks (length, type, sequence, data, CRC)
        at = out.find(b"fdAT")
        while at != -1:
            length = struct.unpack(">I", out[at - 4 : at])[0]
            for i in range(at + 8, at + 4 + length):
                out[i] = noise.randrange(256)
            at = out.find(b"fdAT", at + 4)
        return bytes(out)
    # GIF: each frame starts with an image descriptor (0x2C); frame 1's begins after the first.
    second = out.find(b"\x2c", out.find(b"\x2c", 13) + 10)
    for i in range(second + 11, len(out) - 1):
        out[i] = noise.randrange(256)
    return bytes(out)


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_later_frames_are_never_decoded(fmt):
    garbled = _garble_later_frames(animated(fmt), fmt)
    with pytest.raises(Exception):  # the damage is real: Pillow fails when asked for frame 2
        broken = Image.open(io.BytesIO(garbled))
        broken.seek(1)
        broken.load()
    assert near(load_image(garbled).getpixel((16, 16)), RED)


def test_exif_orientation_is_applied():
    # Stored landscape, red on the left; orientation 6 means "rotate 90° clockwise to view".
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = load_image(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert image.size == (20, 40)
    assert near(image.getpixel((10, 5)), RED, tolerance=30)
    assert near(image.getpixel((10, 35)), BLUE, tolerance=30)


def test_rgba_is_composited_on_white():
    half_red = Image.new("RGBA", (8, 8), (255, 0, 0, 128))
    pixel = load_image(encode(half_red, "PNG")).getpixel((4, 4))
    assert near(pixel, (255, 127, 127), tolerance=2)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert load_image(encode(clear, "WEBP", lossless=True)).getpixel((4, 4)) == (255, 255, 255)


def test_grey_with_alpha_is_composited_on_white():
    la = Image.new("LA", (8, 8), (0, 0))
    assert load_image(encode(la, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_palette_and_palette_transparency():
    palette = Image.new("RGB", (8, 8), BLUE).convert("P")
    assert load_image(encode(palette, "PNG")).getpixel((0, 0)) == BLUE
    transparent = Image.new("P", (8, 8), 0)
    transparent.putpalette([0, 0, 0, 255, 0, 0])
    transparent.putpixel((1, 1), 1)
    gif = load_image(encode(transparent, "GIF", transparency=0))
    assert gif.getpixel((0, 0)) == (255, 255, 255)  # transparent index -> white, not black
    assert gif.getpixel((1, 1)) == RED


def test_cmyk_jpeg_converts_to_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # full magenta + yellow = red
    image = load_image(encode(cmyk, "JPEG", quality=95))
    assert image.mode == "RGB"
    assert near(image.getpixel((8, 8)), RED, tolerance=20)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    deep = Image.fromarray(np.array([[0, 20000, 40000, 65535]], dtype=np.uint16))
    assert deep.mode == "I;16"
    image = load_image(encode(deep, "PNG"))
    assert [image.getpixel((x, 0))[0] for x in range(4)] == [0, 78, 156, 255]


def test_32_bit_and_float_modes_are_scaled():
    wide = Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.int32))
    assert wide.mode == "I"
    assert [to_rgb(wide).getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]
    eight_bit_in_i = Image.fromarray(np.array([[0, 100, 200]], dtype=np.int32))
    assert to_rgb(eight_bit_in_i).getpixel((1, 0)) == (100, 100, 100)
    unit_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert to_rgb(unit_float).getpixel((1, 0)) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_and_bilevel_convert_to_rgb(mode):
    image = load_image(encode(Image.new(mode, (8, 8), 255), "PNG"))
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)


def test_max_side_shrinks_while_decoding():
    big = Image.new("RGB", (1600, 1200), RED)
    for fmt in ("JPEG", "PNG"):
        image = load_image(encode(big, fmt), max_side=400)
        assert image.size == (400, 300)
        assert near(image.getpixel((200, 150)), RED, tolerance=20)


def test_image_limits_defaults():
    limits = ImageLimits()
    assert (limits.max_bytes, limits.max_pixels, limits.max_side) == (25 * 1024 * 1024, 40_000_000, None)


# -- fuzz-ish: whatever the bytes, only ImageRejected ---------------------------------------


def _valid_samples() -> list[bytes]:
    rng = np.random.default_rng(3)
    picture = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    return [
        encode(picture, "JPEG", quality=80),
        encode(picture, "PNG"),
        encode(picture, "WEBP"),
        encode(picture.convert("P"), "GIF"),
        encode(picture, "BMP"),
        animated("GIF"),
        animated("PNG"),
    ]


def _only_rgb_or_rejected(data: bytes) -> None:
    try:
        image = load_image(data)
    except ImageRejected as error:
        assert error.code in {"empty", "corrupt", "not_an_image", "unsupported_format", "too_many_pixels", "decompression_bomb"}
    else:
        assert image.mode == "RGB" and image.width > 0 and image.height > 0


def test_random_bytes_with_and_without_magic_numbers_only_raise_image_rejected():
    rng = random.Random(42)
    prefixes = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM"]
    for i in range(300):
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        _only_rgb_or_rejected(prefixes[i % len(prefixes)] + noise)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about some damage it survives
def test_truncated_and_bit_flipped_files_only_raise_image_rejected():
    rng = random.Random(7)
    for data in _valid_samples():
        for cut in sorted({rng.randrange(1, len(data)) for _ in range(25)}):
            _only_rgb_or_rejected(data[:cut])
        for _ in range(25):
            flipped = bytearray(data)
            for _ in range(rng.randrange(1, 6)):
                flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
            _only_rgb_or_rejected(bytes(flipped))
