"""`aria compose IMAGE` and `aria mood VALENCE AROUSAL`: one piece, written to --out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.option_schema import NUMBER
from aria_engine.options import AUDIO_FORMATS, COMPOSERS, DECODE_STRATEGIES, ENCODERS, MODES, GenerationOptions
from aria_engine.pipeline import STAGES, Pipeline, Request, Result
from bot.commands.checks import UserError, check_name, read_capped, safe_name, writable_folder
from bot.commands.devices import add_device_argument, check_device
from bot.texts import ACCEPTED_PICTURES

# How much of a run each stage takes, roughly, for a progress bar that moves evenly.
_STAGE_WEIGHTS = {"decoding image": 0.05, "safety": 0.0, "reading emotion": 0.1, "composing": 0.6, "drawing": 0.05, "rendering": 0.2}


GENERATION_FIELDS = ("seed", "duration_s", "min_instruments", "length", "window", "note_temperature",
                     "rest_temperature", "top_p", "top_k")


def register(subparsers) -> None:
    compose = subparsers.add_parser(
        "compose", help="compose music from a picture", description="Read a picture's emotion and compose music for it."
    )
    compose.add_argument("image", type=Path, help=f"a {ACCEPTED_PICTURES} picture")
    _add_common(compose)
    compose.set_defaults(func=run_compose)

    mood = subparsers.add_parser(
        "mood", help="compose music for an explicit emotion", description="Compose music for a valence and arousal."
    )
    mood.add_argument("valence", type=float, help="-1 (unpleasant) .. 1 (pleasant)")
    mood.add_argument("arousal", type=float, help="-1 (calm) .. 1 (energetic)")
    mood.add_argument(
        "--to", nargs=2, type=float, metavar=("VALENCE", "AROUSAL"),
        help="glide to this emotion by the end of the piece (a trajectory)",
    )
    _add_common(mood)
    mood.set_defaults(func=run_mood)


def _add_common(parser: argparse.ArgumentParser) -> None:
    defaults = GenerationOptions()
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("out"), help="folder for the files (default: out/)")
    out.add_argument("--name", help="base name of the files (default: the picture's name)")
    out.add_argument("--json", action="store_true", help="print one JSON object instead of the readout")
    out.add_argument("--format", choices=AUDIO_FORMATS, default=defaults.audio_format, help="audio format")

    gen = parser.add_argument_group("generation")
    for field in GENERATION_FIELDS:  # the option schema's flags, types and help
        option = NUMBER[field]
        gen.add_argument(option.flag, dest=field, type=option.kind, default=getattr(defaults, field),
                         metavar=option.metavar, help=option.help)
    gen.add_argument("--decode", choices=DECODE_STRATEGIES, default=defaults.decode,
                     help="exact: re-encode the window as the reference does; fast: cached (default)")

    backends = parser.add_argument_group("backends")
    backends.add_argument("--encoder", choices=ENCODERS, default="auto")
    backends.add_argument("--encoder-weights", type=Path, help="ARIA image_encoder.pt (default: in the models directory)")
    backends.add_argument("--composer", choices=COMPOSERS, default="auto")
    backends.add_argument("--mode", choices=MODES, default=defaults.mode, help="conditioning mode (transformer)")
    backends.add_argument("--model-dir", type=Path, help="one checkpoint folder, or a models directory")
    backends.add_argument("--models-dir", type=Path, help="the models directory (default: ARIA_MODELS_DIR or the user data dir)")
    backends.add_argument("--soundfont", type=Path, help="a .sf2 SoundFont (default: FluidR3_GM, else TimGM6mb)")
    add_device_argument(backends)


def _options(args: argparse.Namespace) -> GenerationOptions:
    return GenerationOptions(composer=args.composer, encoder=args.encoder, mode=args.mode, decode=args.decode,
                             audio_format=args.format, **{field: getattr(args, field) for field in GENERATION_FIELDS})


def _pipeline(args: argparse.Namespace) -> Pipeline:
    return Pipeline(
        models_dir=args.models_dir,
        model_dir=args.model_dir,
        encoder_weights=args.encoder_weights,
        soundfont=args.soundfont,
        device=args.device,
    )


def run_compose(args: argparse.Namespace) -> int:
    def build() -> tuple[Request, str]:
        from aria_engine.images import DEFAULT_MAX_BYTES

        data = read_capped(args.image, DEFAULT_MAX_BYTES, "picture")
        return Request(image=data, options=_options(args)), args.name or safe_name(args.image.stem)

    return _run(args, build)


def run_mood(args: argparse.Namespace) -> int:
    def build() -> tuple[Request, str]:
        start = Emotion(args.valence, args.arousal)
        emotion: Emotion | Trajectory = start
        if args.to:
            emotion = Trajectory.linear([start, Emotion(*args.to)])
        name = args.name or f"mood_{args.valence:+.2f}_{args.arousal:+.2f}"
        return Request(emotion=emotion, options=_options(args)), name

    return _run(args, build)


def _run(args: argparse.Namespace, build) -> int:
    """Check every input before the work (exit 2, one line), then compose and write."""
    from aria_engine.images import ImageRejected
    from aria_engine.render import SoundFontError, find_soundfont

    try:
        if args.soundfont is not None:
            find_soundfont(args.soundfont)
        check_device(args)
        request, name = build()
        check_name(name)
        writable_folder(args.out, create=False)
        with _ProgressBar(enabled=not args.json and sys.stderr.isatty()) as bar:
            result = _pipeline(args).run(request, bar.update)
        paths = write_result(result, args.out, name)
    except SoundFontError as error:  # bad input when it is the --soundfont given; else the setup
        print(f"aria: {_one_line(error)}", file=sys.stderr)
        return 2 if args.soundfont is not None else 1
    except (UserError, ImageRejected, ValueError, FileNotFoundError) as error:
        print(f"aria: {_one_line(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:  # the setup, not the input, is wrong
        print(f"aria: {_one_line(error)}", file=sys.stderr)
        return 1

    if args.json:
        print(json.dumps({**result.summary(), **{k: str(v) for k, v in paths.items()}}, indent=2))
    else:
        print(result.emotion.readout())
        print(f"  {result.backend}, seed {result.options.seed}, {result.audio.duration_s:.1f} s, "
              f"{', '.join(result.composition.instruments) or 'no instruments'}")
        for note in result.summary()["notes"]:
            print(f"  note: {note}")
        for path in paths.values():
            print(f"  wrote {path}")
    return 0


def _one_line(error: BaseException) -> str:
    """An error's first line: whatever a library put after it is not for the user."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def write_result(result: Result, out: Path, name: str) -> dict[str, Path]:
    """Write the four files (MIDI, audio, emotion chart, piano roll); returns their paths."""
    writable_folder(out)
    files = {
        "midi": (out / f"{name}.mid", result.midi),
        "audio": (out / f"{name}.{result.audio.format}", result.audio.data),
        "emotion_chart": (out / f"{name}.emotion.png", result.emotion_chart),
        "piano_roll": (out / f"{name}.pianoroll.png", result.piano_roll),
    }
    for path, data in files.values():
        try:
            path.write_bytes(data)
        except OSError as error:  # a folder in the file's place, a full disk...
            raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    return {key: path for key, (path, _) in files.items()}


class _ProgressBar:
    """A stage-weighted tqdm bar on a terminal; nothing otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar = None
        self._done = 0.0

    def __enter__(self) -> "_ProgressBar":
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=100, file=sys.stderr, leave=False, bar_format="{desc:<16} {bar} {percentage:3.0f}%")
        return self

    def update(self, stage: str, fraction: float) -> None:
        if self._bar is None:
            return
        before = sum(_STAGE_WEIGHTS[s] for s in STAGES[: STAGES.index(stage)])
        self._done = max(self._done, before + _STAGE_WEIGHTS[stage] * min(max(fraction, 0.0), 1.0))
        self._bar.set_description_str(stage)
        self._bar.n = round(self._done * 100, 1)
        self._bar.refresh()

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()
