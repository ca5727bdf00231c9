"""Requests, results and events as bytes, for the trip through Redis.

Requests travel as JSON plus the raw picture: readable in `redis-cli`, and validated again
(Emotion, GenerationOptions) when a worker reads them. Results travel as a pickle, because a
Result holds a pretty_midi object that no other format keeps exactly; they are read back with
an allow-list unpickler that builds only our own, pretty_midi's and numpy's data classes, so
whoever can write to Redis still cannot make a bot process run code.
"""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import asdict
from typing import Any

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.engine.jobs import Cancelled, Done, Event, Failed, Progress, Queued, Started
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Request, Result

# -- requests -----------------------------------------------------------------------------------


def _conditioning_to_json(value: Emotion | Trajectory | None) -> Any:
    if value is None:
        return None
    if isinstance(value, Emotion):
        return {"valence": value.valence, "arousal": value.arousal}
    return {"keyframes": [[t, {"valence": e.valence, "arousal": e.arousal}] for t, e in value.keyframes]}


def _conditioning_from_json(value: Any) -> Emotion | Trajectory | None:
    if value is None:
        return None
    if "keyframes" in value:
        return Trajectory(tuple((float(t), Emotion(**e)) for t, e in value["keyframes"]))
    return Emotion(float(value["valence"]), float(value["arousal"]))


def request_to_json(request: Request) -> str:
    """Everything but the picture's bytes, which travel beside it."""
    return json.dumps({
        "emotion": _conditioning_to_json(request.emotion),
        "options": request.options.as_dict(),
        "origin": asdict(request.origin),
        "max_upload_bytes": request.max_upload_bytes,
        "has_image": request.image is not None,
    }, sort_keys=True)


def request_from_json(text: str | bytes, image: bytes | None) -> Request:
    """The inverse of `request_to_json`; raises ValueError (or KeyError, TypeError) if malformed."""
    data = json.loads(text)
    return Request(
        image=image if data["has_image"] else None,
        emotion=_conditioning_from_json(data["emotion"]),
        options=GenerationOptions(**data["options"]),
        origin=Origin(**data["origin"]),
        max_upload_bytes=data["max_upload_bytes"],
    )


# -- results ------------------------------------------------------------------------------------

_NUMPY_NAMES = {"dtype", "ndarray", "_frombuffer", "_reconstruct", "scalar"}
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_BUILTINS = {"set", "frozenset", "complex", "slice", "range", "bytearray"}
_CLASS_PREFIXES = ("aria_engine.", "pretty_midi.")


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = (
            (module in _NUMPY_MODULES and name in _NUMPY_NAMES)
            or (module == "builtins" and name in _BUILTINS)
            or (module == "collections" and name == "OrderedDict")
        )
        if allowed:
            return super().find_class(module, name)
        if module.startswith(_CLASS_PREFIXES):
            found = super().find_class(module, name)
            if isinstance(found, type) and not issubclass(found, BaseException):
                return found
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a stored result")


def dump_result(result: Result) -> bytes:
    return pickle.dumps(result, protocol=5)


def load_result(data: bytes) -> Result:
    result = _AllowListUnpickler(io.BytesIO(data)).load()
    if not isinstance(result, Result):
        raise pickle.UnpicklingError(f"a stored result holds a {type(result).__name__}")
    return result


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


def event_from_fields(fields: dict, result: Result | None = None) -> Event:
    """The inverse of `event_to_fields`; a done event needs its result passed in."""
    fields = {_text(k): _text(v) for k, v in fields.items()}
    cls = _EVENT_TYPES[fields.pop("type")]
    values = {name: json.loads(value) for name, value in fields.items()}
    if cls is Done:
        if result is None:
            raise ValueError("a done event needs its result")
        return Done(result=result, cached=bool(values.get("cached", False)))
    return cls(**values)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
