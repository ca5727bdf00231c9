"""The FluidSynth calls pyfluidsynth does not wrap, and its log routed to Python logging."""

from __future__ import annotations

import logging
from ctypes import CDLL, CFUNCTYPE, c_char_p, c_int, c_void_p

import fluidsynth


# FluidSynth calls pyfluidsynth does not wrap. Float output keeps the headroom that its
# 16-bit output would clip (and dither).
# (synth, len, lout, loff, lincr, rout, roff, rincr); declared plainly (no parameter flags), as
# it is called between every two events. It releases Python's lock while it synthesizes.
_write_float = CFUNCTYPE(c_int, c_void_p, c_int, c_void_p, c_int, c_int, c_void_p, c_int, c_int)(
    ("fluid_synth_write_float", CDLL(fluidsynth.lib))
)
_add_sfont = fluidsynth.cfunc("fluid_synth_add_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1))
_remove_sfont = fluidsynth.cfunc(
    "fluid_synth_remove_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1)
)
_LogFunction = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
_set_log_function = fluidsynth.cfunc(
    "fluid_set_log_function", c_void_p, ("level", c_int, 1), ("fun", _LogFunction, 1), ("data", c_void_p, 1)
)
FLUID_PANIC, FLUID_ERR, FLUID_WARN = 0, 1, 2

logger = logging.getLogger("aria_engine.render")


@_LogFunction
def _log_from_fluidsynth(level: int, message: bytes, data) -> None:
    """FluidSynth's errors go to our log; its warnings (presets a font lacks) only at debug level."""
    text = (message or b"").decode("utf-8", "replace")
    logger.log(logging.ERROR if level <= FLUID_ERR else logging.DEBUG, "fluidsynth: %s", text)


def _route_fluidsynth_logs() -> None:
    """Send FluidSynth's messages to Python logging instead of stderr (process-wide, idempotent)."""
    for level in (FLUID_PANIC, FLUID_ERR, FLUID_WARN):
        _set_log_function(level, _log_from_fluidsynth, None)


