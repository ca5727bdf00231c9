"""What the image-safety tests of both bots share: the refusal a member reads, word for word,
and real photographs (scikit-image's sample pictures) for the classifier to judge."""

from __future__ import annotations

import io

import pytest

REFUSAL = ("I can't use that picture: ARIA's image-safety check flagged it as possibly explicit, and this "
           "server asks ARIA to turn such pictures down. Nothing was kept, and it didn't count toward your "
           "daily quota. If you think this is a mistake, please ask a moderator.")


def photograph(name: str = "coffee") -> bytes:
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(getattr(data, name)()).convert("RGB").resize((160, 120)).save(buffer, format="PNG")
    return buffer.getvalue()
