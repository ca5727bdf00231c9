"""Requests, results and events as bytes, for the trip through Redis.

One module on purpose (~550 lines): it is the whole trust boundary with Redis, every format and its
checks on read side by side, so a reviewer reads it in one place (SECURITY.md points here).

Nothing read from Redis is unpickled or executed: whoever can write one key must not be able to
run code in a bot (which holds the platform tokens) or a worker. Everything travels as data with
a schema, and is validated on read, so a malformed or hostile message raises WireError, which
fails that one job with the reason.

Requests travel as JSON plus raw bytes beside it, each in its own field of the job's hash: the
picture, and for a jam that continues an earlier piece (Extend) that piece's MIDI. Readable in
`redis-cli`, versioned (REQUEST_VERSION) and validated again (types, then Emotion,
GenerationOptions and a jam's parts) when a worker reads them. A jam's score (`JamScore`)
travels whole, its parts and continuation with it, so a worker composes it as the in-process
engine does: sections, markers and credits.

Readings are the jam's other trip: a contribution's picture read for its readout by a worker
(`reading_to_json` / `reading_from_json` one way, `reading_answer` / `load_reading_answer`
back), small JSON with the picture beside it, as requests.

Events travel as stream entries: a `type` field and one JSON value per field of the event.

Results travel as a versioned envelope:

    b"ARIAWIRE" | header length (4 bytes, big-endian) | header (UTF-8 JSON) | sections

The header holds `format` ("aria-result"), `version` (RESULT_VERSION), the byte length of each
section and every other field of the Result. The sections follow it in SECTIONS order: the
standard MIDI file, the audio clip, the two PNGs and (a jam's result that continues an earlier
piece) the earlier piece's MIDI, so the result's trajectory is the whole JamScore again. Each section has its own size limit
(SECTION_LIMITS), the header too, and the whole frame is at most MAX_RESULT_BYTES. The
composition's pretty_midi object is rebuilt from the MIDI section (after bounding its ticks and
its length in seconds, so a tiny file cannot make pretty_midi allocate gigabytes, nor pin tens
of MB in the bot's result cache); everything a .mid does not keep (composer,
seed, mode, tokens, notes, stats) is in the header.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
from dataclasses import asdict, fields
from typing import Any

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.engine.jobs import Cancelled, Done, Event, Failed, Progress, Queued, Started
from aria_engine.jam import MAX_CONTRIBUTIONS, SECONDS_RANGE, Continuation, JamScore, Part
from aria_engine.options import MODES, GenerationOptions
from aria_engine.pipeline import STAGES, Origin, Request, Result

MiB = 1024 * 1024
MAGIC = b"ARIAWIRE"
RESULT_FORMAT = "aria-result"
RESULT_VERSION = 2  # 2: a jam's whole score, and the `continues` section
SECTIONS = ("midi", "audio", "emotion_chart", "piano_roll", "continues")
_SECTIONS_OF_VERSION = {1: SECTIONS[:4], 2: SECTIONS}  # version 1: an earlier release's results
REQUEST_VERSION = 2  # 2: a jam's whole score; 1 (no version field): an earlier release's requests
READING_FORMAT = "aria-reading"
READING_VERSION = 1
# The earlier piece a jam continues is an earlier result's MIDI (at most SECTION_LIMITS["midi"]),
# markers added; the margin is for a bot that kept a longer one.
MAX_CONTINUATION_BYTES = 2 * MiB
# A 600 s procedural piece is under 200 KB of MIDI; a 600 s clip under 25 MB even as 320 kbps MP3.
SECTION_LIMITS = {"midi": 1 * MiB, "audio": 64 * MiB, "emotion_chart": 8 * MiB, "piano_roll": 8 * MiB,
                  "continues": MAX_CONTINUATION_BYTES}
MAX_CAPTION_CHARS = 120  # what bot.jams keeps of a caption (CAPTION_CHARS)
MAX_NAME_CHARS = 200  # a contributor's name as the platform shows it, as the origin's ids
MAX_READING_ANSWER_BYTES = 4096
MAX_HEADER_BYTES = 1 * MiB
MAX_RESULT_BYTES = 80 * MiB
# A piece is at most 600 s (the renderer refuses longer), and its MIDI ends with its last note:
# the limit leaves room for a tail. pretty_midi keeps an 8-byte entry per tick of the longest
# track for as long as the object lives (so in the bot's result cache), and real pieces have
# far fewer: the procedural composer's 600 s at 160 BPM and 480 ticks a beat is 768,001 ticks;
# the transformer's MIDI (220 ticks a beat at 120 BPM) 264,000. 2**21 ticks is a 16 MB table.
MAX_PIECE_SECONDS = 660.0
MAX_MIDI_TICKS = 2**21
MAX_REQUEST_BYTES = 64 * 1024
MAX_EVENT_FIELD_BYTES = 8 * 1024
_PNG = b"\x89PNG\r\n\x1a\n"
_PREFIX = struct.Struct(">8sI")
_AUDIO_MIME = {"ogg": "audio/ogg", "mp3": "audio/mpeg"}
_WORD = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_MAX_TEXT = 4000
_MAX_ITEMS = 10_000


class WireError(ValueError):
    """A message from Redis that this version did not write; the job it belongs to fails."""


# -- checks ---------------------------------------------------------------------------------------


def _object(value: Any, where: str, keys, required=None) -> dict:
    """A JSON object with no key but these, and all of `required` (by default, all of them)."""
    if not isinstance(value, dict):
        raise WireError(f"{where} must be an object, not {_kind(value)}")
    unknown = sorted(_shown(k) for k in value if k not in keys)
    if unknown:
        raise WireError(f"{where} has unknown fields: {', '.join(unknown[:5])}")
    missing = [k for k in (keys if required is None else required) if k not in value]
    if missing:
        raise WireError(f"{where} lacks {', '.join(missing)}")
    return value


def _text(value: Any, where: str, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise WireError(f"{where} must be text, not {_kind(value)}")
    if len(value) > limit:
        raise WireError(f"{where} is longer than {limit} characters")
    return value


def _word(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise WireError(f"{where} must be a short lower-case word")
    return value


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(f"{where} must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise WireError(f"{where} must be between {low} and {high}")
    return value


def _number(value: Any, where: str, low: float = -math.inf, high: float = math.inf, *,
            finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireError(f"{where} must be a number, not {_kind(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise WireError(f"{where} is out of range") from None
    if math.isnan(value) or (finite and not math.isfinite(value)) or not low <= value <= high:
        raise WireError(f"{where} must be a number between {low:g} and {high:g}")
    return value


def _optional(check, value: Any, *args, **kwargs):
    return None if value is None else check(value, *args, **kwargs)


def _list(value: Any, where: str, limit: int = _MAX_ITEMS) -> list:
    if not isinstance(value, list):
        raise WireError(f"{where} must be a list, not {_kind(value)}")
    if len(value) > limit:
        raise WireError(f"{where} has more than {limit} items")
    return value


def _texts(value: Any, where: str) -> list[str]:
    return [_text(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where, 100))]


def _seconds(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or len(value) > 100:
        raise WireError(f"{where} must be an object of at most 100 timings")
    return {_text(k, f"a key of {where}", 100): _number(v, f"{where}[{k!r}]") for k, v in value.items()}


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """Free-form JSON (a composer's stats), nested at most four deep."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _text(value, where)
    if depth >= 4:
        raise WireError(f"{where} is nested too deep")
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(_list(value, where))]
    if isinstance(value, dict):
        if len(value) > 1000:
            raise WireError(f"{where} has more than 1000 fields")
        return {_text(k, f"a key of {where}", 200): _plain(v, f"{where}.{k}", depth + 1) for k, v in value.items()}
    raise WireError(f"{where} must be plain JSON, not {_kind(value)}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _shown(value: Any) -> str:
    """A name from the message, fit to quote back in a reason: short, word characters only."""
    return re.sub(r"[^\w.-]", "?", str(value)[:40])


def _built(make, where: str, *args, **kwargs):
    """Construct a value object; its own checks (ranges, names) become a WireError."""
    try:
        return make(*args, **kwargs)
    except WireError:
        raise
    except (ValueError, TypeError) as error:
        raise WireError(f"{where}: {error}") from None


def _json(data: str | bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise WireError(f"{where} is not valid JSON ({type(error).__name__})") from None


# -- emotions and options -------------------------------------------------------------------------


def _emotion_to_json(emotion: Emotion) -> dict:
    return {"valence": emotion.valence, "arousal": emotion.arousal}


def _emotion_from_json(value: Any, where: str) -> Emotion:
    value = _object(value, where, ("valence", "arousal"))
    return _built(Emotion, where, _number(value["valence"], f"{where}.valence", -1, 1),
                  _number(value["arousal"], f"{where}.arousal", -1, 1))


def _trajectory_to_json(trajectory: Trajectory) -> list:
    return [[t, _emotion_to_json(e)] for t, e in trajectory.keyframes]


def _trajectory_from_json(value: Any, where: str) -> Trajectory:
    frames = []
    for i, frame in enumerate(_list(value, where, 1000)):
        if not isinstance(frame, list) or len(frame) != 2:
            raise WireError(f"{where}[{i}] must be a [fraction, emotion] pair")
        frames.append((_number(frame[0], f"{where}[{i}] fraction", 0, 1),
                       _emotion_from_json(frame[1], f"{where}[{i}] emotion")))
    return _built(Trajectory, where, tuple(frames))


def _conditioning_to_json(value: Emotion | Trajectory | None) -> Any:
    if value is None:
        return None
    if isinstance(value, Emotion):
        return _emotion_to_json(value)
    return _trajectory_object(value)


def _conditioning_from_json(value: Any, continuation: bytes | None = None) -> Emotion | Trajectory | None:
    if value is None or not isinstance(value, dict) or "keyframes" not in value:
        _no_continuation(continuation)
        return _optional(_emotion_from_json, value, "the emotion")
    return _trajectory_from_object(value, continuation, "the emotion")


def _trajectory_object(trajectory: Trajectory) -> dict:
    """A trajectory's keyframes; a jam's score adds its parts, section length and continuation
    (whose MIDI travels apart, as raw bytes: `score_continuation`)."""
    value: dict[str, Any] = {"keyframes": _trajectory_to_json(trajectory)}
    if isinstance(trajectory, JamScore):
        cont = trajectory.continues
        value["jam"] = {
            "parts": [{"contributor": p.contributor, "valence": p.emotion.valence, "arousal": p.emotion.arousal,
                       "caption": p.caption, "encoder": p.encoder} for p in trajectory.parts],
            "seconds": trajectory.seconds,
            "continues": None if cont is None else {"sections": cont.sections, "composer": cont.composer,
                                                    "midi_bytes": len(cont.midi)},
        }
    return value


def _trajectory_from_object(value: Any, continuation: bytes | None, where: str) -> Trajectory:
    value = _object(value, where, ("keyframes", "jam"), required=("keyframes",))
    trajectory = _trajectory_from_json(value["keyframes"], f"{where}'s keyframes")
    if "jam" not in value:
        _no_continuation(continuation)
        return trajectory
    jam = _object(value["jam"], "the jam", ("parts", "seconds", "continues"))
    parts = tuple(_part_from_json(part, f"the jam's part {i + 1}")
                  for i, part in enumerate(_list(jam["parts"], "the jam's parts", MAX_CONTRIBUTIONS)))
    if not parts:
        raise WireError("the jam's parts must not be empty")
    seconds = _number(jam["seconds"], "the jam's seconds per section", *SECONDS_RANGE)
    if jam["continues"] is None:
        _no_continuation(continuation)
        continues = None
    else:
        continues = _continuation_from_json(jam["continues"], continuation, len(parts))
    return _built(JamScore, "the jam", trajectory.keyframes, parts, seconds, continues)


def _part_from_json(value: Any, where: str) -> Part:
    value = _object(value, where, ("contributor", "valence", "arousal", "caption", "encoder"))
    emotion = _emotion_from_json({"valence": value["valence"], "arousal": value["arousal"]}, where)
    return _built(Part, where, _text(value["contributor"], f"{where}'s contributor", MAX_NAME_CHARS), emotion,
                  _text(value["caption"], f"{where}'s caption", MAX_CAPTION_CHARS),
                  _word(value["encoder"], f"{where}'s encoder"))


def _continuation_from_json(value: Any, midi: bytes | None, parts: int) -> Continuation:
    """The earlier piece: its MIDI within MAX_CONTINUATION_BYTES and readable as a piece (the same
    bounded reading as a result's MIDI), holding 1 to all-but-one of the score's parts."""
    value = _object(value, "the continuation", ("sections", "composer", "midi_bytes"))
    if parts < 2:
        raise WireError("a jam that continues an earlier piece needs at least two parts")
    sections = _integer(value["sections"], "the continuation's sections", 1, parts - 1)
    composer = _word(value["composer"], "the continuation's composer")
    size = _integer(value["midi_bytes"], "the continuation's MIDI size", 0, MAX_CONTINUATION_BYTES)
    if not isinstance(midi, (bytes, bytearray)):
        raise WireError("the continuation's MIDI is missing")
    if len(midi) > MAX_CONTINUATION_BYTES:
        raise WireError(f"the continuation's MIDI is {len(midi)} bytes, over its {MAX_CONTINUATION_BYTES}-byte limit")
    if len(midi) != size:
        raise WireError(f"the continuation's MIDI is {len(midi)} bytes, not the {size} its request says")
    midi = bytes(midi)
    _midi_from(midi, "the continuation's MIDI")  # or WireError; the worker's composer reads it again
    return _built(Continuation, "the continuation", midi, sections, composer)


def _no_continuation(midi: bytes | None) -> None:
    if midi:
        raise WireError("the message carries a continuation's MIDI but no jam that continues")


def score_continuation(conditioning: Any) -> bytes | None:
    """The bytes that travel beside a request's or a result's JSON: the MIDI of the earlier
    piece a jam continues, None for anything else."""
    if isinstance(conditioning, JamScore) and conditioning.continues is not None:
        return conditioning.continues.midi
    return None


_OPTION_TYPES = {f.name: str(f.type) for f in fields(GenerationOptions)}


def _options_from_json(value: Any, where: str) -> GenerationOptions:
    """GenerationOptions from its as_dict(), each field of its declared type first."""
    _object(value, where, _OPTION_TYPES, required=())  # absent ones take their defaults
    checked = {}
    for name, raw in value.items():
        declared, here = _OPTION_TYPES[name], f"{where}.{name}"
        base = declared.removesuffix(" | None")
        if raw is None and base != declared:
            checked[name] = None
        elif base == "str":
            checked[name] = _text(raw, here, 100)
        elif base == "int":
            checked[name] = _integer(raw, here, 0, 2**63 - 1)
        elif base == "float":
            checked[name] = _number(raw, here)
        else:
            raise WireError(f"{here} is of a type ({declared}) the wire does not know")
    return _built(GenerationOptions, where, **checked)


# -- requests -----------------------------------------------------------------------------------


_REQUEST_KEYS = ("version", "emotion", "options", "origin", "max_upload_bytes", "has_image")


def request_to_json(request: Request) -> str:
    """Everything but the picture's bytes and a continuation's MIDI (`score_continuation`),
    which travel beside it."""
    return json.dumps({
        "version": REQUEST_VERSION,
        "emotion": _conditioning_to_json(request.emotion),
        "options": request.options.as_dict(),
        "origin": asdict(request.origin),
        "max_upload_bytes": request.max_upload_bytes,
        "has_image": request.image is not None,
    }, sort_keys=True)


def request_from_json(text: str | bytes, image: bytes | None, continuation: bytes | None = None) -> Request:
    """The inverse of `request_to_json` (with the bytes that travelled beside it); raises
    WireError if anything is off."""
    if text is None or len(text) > MAX_REQUEST_BYTES:
        raise WireError(f"the request is missing or over {MAX_REQUEST_BYTES} bytes")
    data = _object(_json(text, "the request"), "the request", _REQUEST_KEYS,
                   required=tuple(k for k in _REQUEST_KEYS if k != "version"))
    version = data.get("version", 1)
    if version not in (1, REQUEST_VERSION) or isinstance(version, bool):
        raise WireError(f"the request's version is {_shown(version)}; this worker reads versions 1 to "
                        f"{REQUEST_VERSION} (are the workers and the bot the same release?)")
    if not isinstance(data["has_image"], bool):
        raise WireError("the request's has_image must be true or false")
    if data["has_image"] and not isinstance(image, bytes):
        raise WireError("the request's picture is missing")
    origin = _object(data["origin"], "the origin", tuple(f.name for f in fields(Origin)))
    return _built(
        Request, "the request",
        image=image if data["has_image"] else None,
        emotion=_conditioning_from_json(data["emotion"], continuation),
        options=_options_from_json(data["options"], "the options"),
        origin=Origin(**{k: _text(v, f"the origin's {k}", 200) for k, v in origin.items()}),
        max_upload_bytes=_optional(_integer, data["max_upload_bytes"], "max_upload_bytes", 0, 2**40),
    )


# -- readings (a jam contribution's picture, read by a worker for its readout) -----------------------

_READING_KEYS = ("format", "version", "options")


def reading_to_json(options: GenerationOptions) -> str:
    """What a worker needs to read one picture: the encoder and the image-safety options (the
    picture travels beside it)."""
    return json.dumps({"format": READING_FORMAT, "version": READING_VERSION, "options": options.as_dict()},
                      sort_keys=True)


def reading_from_json(text: str | bytes | None, image: bytes | None) -> tuple[bytes, GenerationOptions]:
    """The inverse of `reading_to_json`: (the picture, its options); WireError if anything is off."""
    if text is None or len(text) > MAX_REQUEST_BYTES:
        raise WireError(f"the reading is missing or over {MAX_REQUEST_BYTES} bytes")
    data = _object(_json(text, "the reading"), "the reading", _READING_KEYS)
    if data["format"] != READING_FORMAT or data["version"] != READING_VERSION:
        raise WireError(f"the reading is not an {READING_FORMAT} of version {READING_VERSION}")
    if not isinstance(image, bytes) or not image:
        raise WireError("the reading's picture is missing")
    return image, _options_from_json(data["options"], "the reading's options")


def reading_answer(emotion: Emotion | None = None, encoder: str | None = None, *,
                   unsafe: tuple[float, float] | None = None, error: str | None = None) -> str:
    """A worker's answer: the emotion and the encoder that read it; or (score, threshold) of the
    image-safety gate's refusal; or why the picture could not be read, in words for the member."""
    if unsafe is not None:
        return json.dumps({"unsafe": {"score": unsafe[0], "threshold": unsafe[1]}})
    if error is not None:
        return json.dumps({"error": error[:500]})
    return json.dumps({"emotion": _emotion_to_json(emotion), "encoder": encoder})


def load_reading_answer(data: bytes | str) -> tuple[Emotion, str]:
    """The inverse of `reading_answer`: (emotion, encoder), or raises as an in-process reading
    does: ImageUnsafe for the gate's refusal, ValueError (WireError for a malformed answer) with
    why the picture could not be read."""
    from aria_engine.safety import ImageUnsafe

    if not isinstance(data, (bytes, str)) or len(data) > MAX_READING_ANSWER_BYTES:
        raise WireError(f"the reading's answer is not text of at most {MAX_READING_ANSWER_BYTES} bytes")
    answer = _json(data, "the reading's answer")
    if isinstance(answer, dict) and "unsafe" in answer:
        refused = _object(_object(answer, "the answer", ("unsafe",))["unsafe"], "the refusal", ("score", "threshold"))
        raise ImageUnsafe(_number(refused["score"], "the safety score", 0, 1),
                          _number(refused["threshold"], "the safety threshold", 0, 1))
    if isinstance(answer, dict) and "error" in answer:
        raise ValueError(_text(_object(answer, "the answer", ("error",))["error"], "the reading's error", 500))
    answer = _object(answer, "the reading's answer", ("emotion", "encoder"))
    return _emotion_from_json(answer["emotion"], "the read emotion"), _word(answer["encoder"], "the encoder")


# -- results ------------------------------------------------------------------------------------

_RESULT_KEYS = ("format", "version", "sections", "emotion", "trajectory", "encoder", "composition",
                "options", "audio", "timings", "notes")
_COMPOSITION_KEYS = ("composer", "seed", "mode", "tokens", "notes", "stats")
_AUDIO_KEYS = ("format", "mime_type", "sample_rate", "channels", "duration_s", "peak_dbfs", "soundfont",
               "notes", "timings")


def dump_result(result: Result) -> bytes:
    """The envelope for a result; WireError if a part is over its limit (the job then fails)."""
    comp, audio = result.composition, result.audio
    sections = {"midi": result.midi, "audio": audio.data, "emotion_chart": result.emotion_chart,
                "piano_roll": result.piano_roll, "continues": score_continuation(result.trajectory) or b""}
    for name, data in sections.items():
        _within_limit(name, len(data))
    header = json.dumps({
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        "sections": {name: len(data) for name, data in sections.items()},
        "emotion": _emotion_to_json(result.emotion),
        "trajectory": _result_trajectory_to_json(result.trajectory),
        "encoder": result.encoder,
        "composition": {"composer": comp.composer, "seed": comp.seed, "mode": comp.mode,
                        "tokens": comp.tokens, "notes": list(comp.notes), "stats": comp.stats},
        "options": result.options.as_dict(),
        "audio": {"format": audio.format, "mime_type": audio.mime_type, "sample_rate": audio.sample_rate,
                  "channels": audio.channels, "duration_s": audio.duration_s, "peak_dbfs": audio.peak_dbfs,
                  "soundfont": audio.soundfont, "notes": list(audio.notes), "timings": audio.timings},
        "timings": result.timings,
        "notes": list(result.notes),
    }, sort_keys=True).encode()
    if len(header) > MAX_HEADER_BYTES:
        raise WireError(f"the result's header is {len(header)} bytes, over its {MAX_HEADER_BYTES}-byte limit")
    frame = b"".join([_PREFIX.pack(MAGIC, len(header)), header, *(sections[name] for name in SECTIONS)])
    if len(frame) > MAX_RESULT_BYTES:
        raise WireError(f"the result is {len(frame)} bytes, over the {MAX_RESULT_BYTES}-byte limit")
    return frame


def load_result(data: bytes) -> Result:
    """The inverse of `dump_result`; raises WireError naming what is wrong, and runs nothing."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"the result must be bytes, not {_kind(data)}")
    data = bytes(data)
    if len(data) > MAX_RESULT_BYTES:
        raise WireError(f"the result is {len(data)} bytes, over the {MAX_RESULT_BYTES}-byte limit")
    if data[:1] == b"\x80":
        raise WireError("the result is a pickle (an old worker's format), which is never loaded")
    if len(data) < _PREFIX.size or not data.startswith(MAGIC):
        raise WireError("the result is not an ARIA result envelope")
    _, header_size = _PREFIX.unpack_from(data)
    if header_size > MAX_HEADER_BYTES:
        raise WireError(f"the result's header is {header_size} bytes, over its {MAX_HEADER_BYTES}-byte limit")
    start = _PREFIX.size + header_size
    if len(data) < start:
        raise WireError("the result is truncated inside its header")
    head = _object(_json(data[_PREFIX.size:start], "the result's header"), "the result's header", _RESULT_KEYS)
    if head["format"] != RESULT_FORMAT:
        raise WireError(f"the result's format is {_shown(head['format'])!r}, not {RESULT_FORMAT!r}")
    version = head["version"]
    if isinstance(version, bool) or version not in _SECTIONS_OF_VERSION:
        raise WireError(f"the result's version is {_shown(version)}; this bot reads versions 1 to "
                        f"{RESULT_VERSION} (are the workers and the bot the same release?)")
    names = _SECTIONS_OF_VERSION[version]
    sizes = _object(head["sections"], "the result's sections", names)
    sections = {"continues": b""}
    for name in names:
        size = _within_limit(name, _integer(sizes[name], f"the {name} section's size", 0, MAX_RESULT_BYTES))
        sections[name] = data[start:start + size]
        start += size
    if len(data) < start:
        raise WireError(f"the result is truncated: {start - len(data)} bytes of its sections are missing")
    if len(data) > start:
        raise WireError(f"the result has {len(data) - start} bytes after its last section")
    for name in ("emotion_chart", "piano_roll"):
        if not sections[name].startswith(_PNG):
            raise WireError(f"the {name.replace('_', ' ')} is not a PNG")
    return _result_from(head, sections)


def _result_trajectory_to_json(trajectory: Trajectory | None) -> Any:
    """A plain trajectory as its keyframes (as version 1 wrote it); a jam's score whole."""
    if trajectory is None:
        return None
    if isinstance(trajectory, JamScore):
        return _trajectory_object(trajectory)
    return _trajectory_to_json(trajectory)


def _result_trajectory_from_json(value: Any, continuation: bytes | None) -> Trajectory | None:
    if value is None or isinstance(value, list):
        _no_continuation(continuation)
        return _optional(_trajectory_from_json, value, "the trajectory")
    return _trajectory_from_object(value, continuation, "the trajectory")


def _within_limit(section: str, size: int) -> int:
    if size > SECTION_LIMITS[section]:
        raise WireError(f"the {section} section is {size} bytes, over its {SECTION_LIMITS[section]}-byte limit")
    return size


def _result_from(head: dict, sections: dict[str, bytes]) -> Result:
    from aria_engine.music import Composition
    from aria_engine.render import RenderedAudio

    comp = _object(head["composition"], "the composition", _COMPOSITION_KEYS)
    tokens = _optional(_list, comp["tokens"], "the tokens", 65536)
    audio = _object(head["audio"], "the audio", _AUDIO_KEYS)
    audio_format = audio["format"]
    if audio_format not in _AUDIO_MIME:
        raise WireError(f"the audio format must be one of {', '.join(_AUDIO_MIME)}")
    if audio["mime_type"] != _AUDIO_MIME[audio_format]:
        raise WireError(f"the audio's type must be {_AUDIO_MIME[audio_format]} for {audio_format}")
    mode = comp["mode"]
    if mode is not None and mode not in MODES:
        raise WireError(f"the composition's mode must be one of {', '.join(MODES)}")
    composition = Composition(
        midi=_midi_from(sections["midi"]),
        composer=_word(comp["composer"], "the composer"),
        seed=_integer(comp["seed"], "the seed", 0, 2**63 - 1),
        mode=mode,
        tokens=None if tokens is None else [_integer(t, "a token", 0, 2**20) for t in tokens],
        notes=_texts(comp["notes"], "the composition's notes"),
        stats=_plain(_object(comp["stats"], "the stats", comp["stats"]), "the stats"),
    )
    rendered = RenderedAudio(
        data=sections["audio"],
        format=audio_format,
        mime_type=audio["mime_type"],
        sample_rate=_integer(audio["sample_rate"], "the sample rate", 1000, 384_000),
        channels=_integer(audio["channels"], "the channel count", 1, 8),
        duration_s=_number(audio["duration_s"], "the audio's duration", 0, 3600),
        peak_dbfs=_number(audio["peak_dbfs"], "the audio's peak", -math.inf, 24, finite=False),
        soundfont=_text(audio["soundfont"], "the soundfont"),
        notes=_texts(audio["notes"], "the audio's notes"),
        timings=_seconds(audio["timings"], "the audio's timings"),
    )
    return Result(
        emotion=_emotion_from_json(head["emotion"], "the emotion"),
        trajectory=_result_trajectory_from_json(head["trajectory"], sections["continues"] or None),
        encoder=_word(head["encoder"], "the encoder"),
        composition=composition,
        options=_options_from_json(head["options"], "the options"),
        midi=sections["midi"],
        audio=rendered,
        emotion_chart=sections["emotion_chart"],
        piano_roll=sections["piano_roll"],
        timings=_seconds(head["timings"], "the timings"),
        notes=_texts(head["notes"], "the result's notes"),
    )


def _midi_from(data: bytes, what: str = "the MIDI section"):
    """pretty_midi's object for a standard MIDI file, once mido has shown it is small in time."""
    import mido
    import pretty_midi

    try:
        parsed = mido.MidiFile(file=io.BytesIO(data))
    except Exception as error:  # mido raises many kinds on a broken file
        raise WireError(f"{what} is not a MIDI file ({type(error).__name__})") from None
    longest = max((sum(message.time for message in track) for track in parsed.tracks), default=0)
    if longest > MAX_MIDI_TICKS:
        raise WireError(f"{what} is {longest} ticks long, over the {MAX_MIDI_TICKS}-tick limit")
    seconds = _midi_seconds(parsed, longest, what)
    if seconds > MAX_PIECE_SECONDS:
        raise WireError(f"{what} lasts {seconds:.0f} s, over the {MAX_PIECE_SECONDS:.0f}-second limit")
    try:
        if _PRETTY_MIDI_TAKES_MIDO:
            return pretty_midi.PrettyMIDI(mido_object=parsed)
        return pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as error:
        raise WireError(f"{what} cannot be read ({type(error).__name__}: {str(error)[:100]})") from None


def _midi_seconds(parsed, end_tick: int, what: str = "the MIDI section") -> float:
    """How long `end_tick` ticks last, as pretty_midi times them: the tempo changes of the first
    track only, 120 BPM until the first one."""
    resolution = parsed.ticks_per_beat
    if not isinstance(resolution, int) or resolution <= 0:
        raise WireError(f"the resolution of {what} must be a positive number of ticks a beat")
    changes = []
    tick = 0
    for message in parsed.tracks[0] if parsed.tracks else ():
        tick += message.time
        if message.type == "set_tempo":
            changes.append((tick, message.tempo))
    seconds, at, tempo = 0.0, 0, 500_000  # microseconds a beat
    for change_tick, change_tempo in changes:
        if change_tick >= end_tick:
            break
        seconds += (change_tick - at) * tempo / (1e6 * resolution)
        at, tempo = change_tick, change_tempo
    return seconds + max(0, end_tick - at) * tempo / (1e6 * resolution)


def _takes_mido() -> bool:
    import inspect

    import pretty_midi

    return "mido_object" in inspect.signature(pretty_midi.PrettyMIDI).parameters


_PRETTY_MIDI_TAKES_MIDO = _takes_mido()


# -- events -------------------------------------------------------------------------------------

_EVENT_TYPES = {cls.__name__.lower(): cls for cls in (Queued, Started, Progress, Done, Failed, Cancelled)}


def event_to_fields(event: Event) -> dict[str, str]:
    """A flat str -> str mapping for a stream entry; a Done leaves its result out (stored apart)."""
    fields = {"type": type(event).__name__.lower()}
    values = {"cached": event.cached} if isinstance(event, Done) else asdict(event)
    for name, value in values.items():
        if value is not None:
            fields[name] = json.dumps(value)
    return fields


def event_kind(fields: dict) -> str:
    """The entry's event type ("progress", "done", ...); WireError if it names none."""
    kind = fields.get(b"type", fields.get("type"))
    try:
        kind = _decoded(kind)
    except WireError:
        raise WireError("an event has no readable type") from None
    if kind not in _EVENT_TYPES:
        raise WireError(f"an event has the unknown type {_shown(kind)!r}")
    return kind


def event_from_fields(fields: dict, result: Result | None = None) -> Event:
    """The inverse of `event_to_fields`; a done event needs its result passed in. WireError if
    a field is unknown, missing, too long or of the wrong type."""
    kind = event_kind(fields)
    values = {}
    for key, raw in fields.items():
        name = _decoded(key)
        if name == "type":
            continue
        if name in values:
            raise WireError(f"a {kind} event repeats its field {_shown(name)!r}")
        if len(raw) > MAX_EVENT_FIELD_BYTES:
            raise WireError(f"a {kind} event's field {_shown(name)!r} is over {MAX_EVENT_FIELD_BYTES} bytes")
        values[name] = _json(raw, f"a {kind} event's field {_shown(name)!r}")
    return _EVENT_READERS[kind](values, result)


def _decoded(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise WireError("an event field is not UTF-8") from None
    if not isinstance(value, str):
        raise WireError("an event field is missing")
    return value


def _event_values(values: dict, kind: str, required: tuple[str, ...], optional: dict[str, Any]) -> dict:
    """Known fields only, required ones present, absent optional ones at their defaults (None
    is left out when written)."""
    _object(values, f"a {kind} event", (*required, *optional), required)
    return {**optional, **values}


def _queued(values: dict, result) -> Queued:
    v = _event_values(values, "queued", ("position",), {"eta_s": None})
    return Queued(_integer(v["position"], "the queue position", 0, 10**9),
                  _optional(_number, v["eta_s"], "the queue's ETA", 0, 10**9))


def _started(values: dict, result) -> Started:
    v = _event_values(values, "started", ("worker",), {"batch_size": 1})
    return Started(_text(v["worker"], "the worker's name", 200), _integer(v["batch_size"], "the batch size", 1, 10**6))


def _progress(values: dict, result) -> Progress:
    v = _event_values(values, "progress", ("stage", "fraction", "detail"), {})
    if v["stage"] not in STAGES:
        raise WireError(f"a progress event names an unknown stage {_shown(v['stage'])!r}")
    return Progress(v["stage"], _number(v["fraction"], "the progress fraction", 0, 1),
                    _text(v["detail"], "the progress detail", 500))


def _done(values: dict, result) -> Done:
    v = _event_values(values, "done", (), {"cached": False})
    if not isinstance(v["cached"], bool):
        raise WireError("a done event's cached must be true or false")
    if result is None:
        raise WireError("a done event needs its result")
    return Done(result=result, cached=v["cached"])


def _failed(values: dict, result) -> Failed:
    v = _event_values(values, "failed", ("reason",), {"log_id": None, "kind": "error"})
    return Failed(_text(v["reason"], "the failure's reason", 2000),
                  _optional(_text, v["log_id"], "the failure's log id", 64), _word(v["kind"], "the failure's kind"))


def _cancelled(values: dict, result) -> Cancelled:
    v = _event_values(values, "cancelled", ("by",), {})
    return Cancelled(_text(v["by"], "who cancelled", 200))


_EVENT_READERS = {"queued": _queued, "started": _started, "progress": _progress, "done": _done,
                  "failed": _failed, "cancelled": _cancelled}
