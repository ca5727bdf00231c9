"""What can go wrong when rendering, in words fit for a user."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable


if TYPE_CHECKING:
    from aria_engine.render import RenderedAudio




# Called with the fraction done (0..1) as a long render goes; it may raise to abandon the render
# (the engine does when nobody waits for the piece any more), and the exception comes out.
RenderProgress = Callable[[float], None]


class _Stopped(Exception):
    """A synth told to stop because the render was abandoned elsewhere."""


class RenderError(RuntimeError):
    """A piece could not be turned into audio; the message is fit to show a user."""


class AudioTooLarge(RenderError):
    """The clip cannot fit the byte budget at any quality or length.

    When raised after rendering, `unfitted` holds the whole clip at full quality, for a caller
    that keeps it anyway (and says it did not fit).
    """

    unfitted: "RenderedAudio | None" = None


class SoundFontError(RenderError):
    """No usable SoundFont: the message names the path and what is wrong with it."""

