"""ARIA engine: image -> emotion -> music -> audio and pictures. No chat-platform imports."""

import contextlib as _contextlib
import io as _io

# pyfluidsynth prints where it found its library when $CI is set, and pretty_midi imports it, so
# the first import of either would put that line on stdout ahead of `aria ... --json`. Import it
# once here, quietly; later imports get the loaded module.
with _contextlib.redirect_stdout(_io.StringIO()):
    try:
        import fluidsynth as _fluidsynth  # noqa: F401
    except ImportError:  # no libfluidsynth: the renderer reports that when it is used
        pass

__version__ = "0.1.0"
