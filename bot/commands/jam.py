"""`aria jam PICTURE|--mood V A ...` and `aria extend EARLIER PICTURE|--mood V A`: one piece in
sections from contributions given in order, written to --out with its credits and a sidecar
(`NAME.jam.json`) that `aria extend` continues from.

`aria extend` continues an earlier piece (aria_engine.jam's Continuation: the earlier notes kept,
one new section after them, by the composer that made the earlier piece). EARLIER is a jam's
`NAME.jam.json` (its MIDI is the one the sidecar names, else `NAME.mid` beside it) or any ARIA
`.mid`. What it learns of the earlier piece: from the sidecar when there is one (beside the .mid
too): every section's contributor and emotion, the composer, mode, seed, section length; else
from the MIDI: a built-in composer piece carries its closing state (emotion, key, tempo, motif);
a transformer piece carries none, so `--from V A` gives its emotion. A jam's MIDI without its
sidecar is refused (its sections' emotions are not in it). The seed is the earlier piece's unless
--seed says otherwise.

The contributions are read in the order typed, pictures and moods mixed, which argparse cannot
keep, so they are taken off the command line first (`split_contributions`) and the rest is an
ordinary argparse parse. After a contribution, `--by NAME` names its contributor and
`--caption TEXT` captions it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aria_engine.emotion import Emotion
from aria_engine.jam import Contribution, Continuation, JamError, compose_jam, contributions_from_sidecar
from bot.commands.checks import UserError, check_name, read_capped, safe_name, writable_folder
from bot.commands.compose import _add_common, _one_line, _options, _pipeline
from bot.commands.devices import check_device

_FLAGS_WITHOUT_VALUE = {"--json", "-h", "--help"}
_USAGE_JAM = "aria jam (PICTURE | --mood V A) [--by NAME] [--caption TEXT] ... [--seconds S | --tokens N] [options]"
_USAGE_EXTEND = ("aria extend (JAM.jam.json | PIECE.mid) (PICTURE | --mood V A) [--by NAME] [--caption TEXT] "
                 "[--from V A] [options]")


def register(subparsers) -> None:
    for name, usage, helptext, func in (
        ("jam", _USAGE_JAM, "compose one piece from several pictures and moods, in order", run_jam),
        ("extend", _USAGE_EXTEND, "continue an earlier jam or piece with one more picture or mood", run_extend),
    ):
        # No option prefix here: every word is kept, in order, for split_contributions; the
        # options parser (`-h` included) reads what is left.
        parser = subparsers.add_parser(name, help=helptext, usage=usage, description=helptext + ".",
                                       add_help=False, prefix_chars="+")
        parser.add_argument("words", nargs="*", help="contributions and options (see usage)")
        parser.set_defaults(func=func)


def _options_parser(prog: str, usage: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, usage=usage)
    parser.add_argument("--seconds", type=float, help="seconds per section, built-in composer (default 15)")
    parser.add_argument("--tokens", type=int, help="tokens per section, transformer")
    _add_common(parser)
    return parser


def _is_number(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False


def split_contributions(words: list[str]) -> tuple[list[tuple], list[str]]:
    """(contributions as ("picture", path, by, caption) or ("mood", (v, a), by, caption), the
    other words) in the order typed."""
    found: list[list] = []
    rest: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--mood":
            values = words[i + 1:i + 3]
            if len(values) < 2 or not all(_is_number(v) for v in values):
                raise UserError("--mood takes two numbers: valence and arousal, each -1..1")
            found.append(["mood", (float(values[0]), float(values[1])), None, ""])
            i += 3
        elif word in ("--by", "--caption"):
            if not found or i + 1 >= len(words):
                raise UserError(f"{word} follows a picture or a mood, with a value")
            found[-1][2 if word == "--by" else 3] = words[i + 1]
            i += 2
        elif word.startswith("-") and not _is_number(word):
            rest.append(word)
            takes_value = word not in _FLAGS_WITHOUT_VALUE and "=" not in word
            if takes_value and i + 1 < len(words):
                rest.append(words[i + 1])
                i += 1
            i += 1
        else:
            found.append(["picture", Path(word), None, ""])
            i += 1
    return [tuple(f) for f in found], rest


def _contributions(found: list[tuple], start_number: int = 1) -> list[Contribution]:
    from aria_engine.images import DEFAULT_MAX_BYTES

    contributions = []
    for number, (kind, value, by, caption) in enumerate(found, start=start_number):
        if kind == "picture":
            data = read_capped(value, DEFAULT_MAX_BYTES, "picture")
            contributions.append(Contribution(by or value.name, image=data, caption=caption))
        else:
            contributions.append(Contribution(by or f"mood {number}", emotion=Emotion(*value), caption=caption))
    return contributions


def run_jam(args: argparse.Namespace) -> int:
    def build(options_args):
        found, _ = split_contributions(args.words)
        if not found:
            raise UserError("a jam needs at least one picture or --mood V A")
        return _contributions(found), None, options_args.name or "jam"

    return _run(args, "aria jam", _USAGE_JAM, build)


def run_extend(args: argparse.Namespace) -> int:
    def build(options_args):
        if not args.words or args.words[0].startswith("-"):
            raise UserError("aria extend needs the earlier jam's .jam.json or the piece's .mid first")
        path = Path(args.words[0])
        words, from_emotion = _without_from(args.words[1:])
        found, _ = split_contributions(words)
        if len(found) != 1:
            raise UserError("aria extend takes exactly one picture or --mood V A")
        earlier = earlier_piece(path, from_emotion)
        name = options_args.name or safe_name(earlier.stem) + "-extended"
        return earlier.contributions + _contributions(found, len(earlier.contributions) + 1), earlier, name

    return _run(args, "aria extend", _USAGE_EXTEND, build)


class Earlier:
    """What `aria extend` knows of the earlier piece."""

    def __init__(self, stem: str, midi: bytes, contributions: list[Contribution], composer: str,
                 sidecar: dict | None = None):
        self.stem, self.midi, self.contributions, self.composer, self.sidecar = stem, midi, contributions, composer, sidecar

    def continuation(self) -> Continuation:
        return Continuation(self.midi, len(self.contributions), self.composer)


def _without_from(words: list[str]) -> tuple[list[str], Emotion | None]:
    """The words without `--from V A`, and that emotion (the earlier piece's, when its MIDI
    cannot say it)."""
    if "--from" not in words:
        return words, None
    i = words.index("--from")
    values = words[i + 1:i + 3]
    if len(values) < 2 or not all(_is_number(v) for v in values):
        raise UserError("--from takes two numbers: the earlier piece's valence and arousal, each -1..1")
    return words[:i] + words[i + 3:], Emotion(float(values[0]), float(values[1]))


def earlier_piece(path: Path, from_emotion: Emotion | None) -> Earlier:
    """The earlier piece of `aria extend`: a jam's sidecar (and its MIDI), or a MIDI file (and
    the sidecar beside it, if any)."""
    from aria_engine.jam import MAX_EARLIER_MIDI_BYTES, markers_of, read_earlier_midi
    from aria_engine.music.procedural.state import StateError, read_state

    name = path.name
    if name.endswith(".jam.json"):
        sidecar = _read_sidecar(path)
        stem = name.removesuffix(".jam.json")
        recorded = sidecar.get("midi", stem + ".mid")  # a file name beside the sidecar, nothing else
        if not isinstance(recorded, str) or not recorded or Path(recorded).name != recorded or recorded.startswith("."):
            raise UserError(f"{path} names its MIDI file wrongly: {str(recorded)[:80]!r}")
        midi_path = path.parent / recorded
    elif name.lower().endswith((".mid", ".midi")):
        stem = path.stem
        beside = path.with_name(stem + ".jam.json")
        sidecar = _read_sidecar(beside) if beside.is_file() else None
        midi_path = path
    else:
        raise UserError(f"{path} is not a jam file written by aria jam, nor a .mid")
    midi = read_capped(midi_path, MAX_EARLIER_MIDI_BYTES, "MIDI file")
    parsed, _ = read_earlier_midi(midi)  # JamError (exit 2) for a broken or oversized file
    if sidecar is not None:
        contributions = contributions_from_sidecar(sidecar)
        if len(markers_of(midi)) != len(contributions):
            raise UserError(f"{midi_path} does not hold the {len(contributions)} sections its jam file lists")
        return Earlier(stem, midi, contributions, sidecar["composer"], sidecar)
    if markers_of(midi):
        raise UserError(f"{midi_path} is a jam's piece: extend its .jam.json (written beside it by aria jam)")
    try:
        state = read_state(parsed)
    except StateError as error:
        raise UserError(f"{midi_path}: {error}") from None
    if state is None and from_emotion is None:
        raise UserError(f"{midi_path} carries no state of ARIA's built-in composer: "
                        "give the earlier piece's emotion with --from V A (it continues with the transformer)")
    emotion = from_emotion or state.emotion
    composer = "procedural" if state is not None else "transformer"
    return Earlier(stem, midi, [Contribution(name, emotion=emotion)], composer)


def _read_sidecar(path: Path) -> dict:
    try:
        sidecar = json.loads(read_capped(path, 1 << 20, "jam file"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not a jam file written by aria jam") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("sections"), list) or \
            sidecar.get("composer") not in ("procedural", "transformer"):
        raise UserError(f"{path} is not a jam file written by aria jam")
    try:
        contributions_from_sidecar(sidecar)
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(f"{path} is not a jam file written by aria jam ({_one_line(error)})") from None
    return sidecar


def _run(args: argparse.Namespace, prog: str, usage: str, build) -> int:
    words = args.words[1:] if prog == "aria extend" else args.words
    try:
        words, _ = _without_from(words) if prog == "aria extend" else (words, None)
        _, rest = split_contributions(words)
    except (UserError, ValueError) as error:
        print(f"aria: {error}", file=sys.stderr)
        return 2
    options_args = _options_parser(prog, usage).parse_args(rest)  # exits 2 itself on a bad option
    try:
        check_device(options_args)
        contributions, earlier, name = build(options_args)
        check_name(name)
        writable_folder(options_args.out, create=False)
        options = _options(options_args)
        seconds, tokens, continues = options_args.seconds, options_args.tokens, None
        if earlier is not None:
            sidecar = earlier.sidecar or {}
            continues = earlier.continuation()
            options = options.replace(composer=earlier.composer)
            if options_args.seed is None and sidecar.get("seed") is not None:
                options = options.replace(seed=sidecar["seed"])  # the earlier piece's, unless --seed
            if sidecar.get("mode") and earlier.composer == "transformer":
                options = options.replace(mode=sidecar["mode"])
            seconds = sidecar.get("seconds") or seconds
            tokens = tokens or sidecar.get("tokens")
        jam = compose_jam(_pipeline(options_args), contributions, options, seconds=seconds,
                          tokens=tokens, continues=continues)
        paths = write_jam(jam, options_args.out, name)
    except (UserError, JamError, ValueError, FileNotFoundError) as error:
        print(f"aria: {_one_line(error)}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"aria: {_one_line(error)}", file=sys.stderr)
        return 1
    result = jam.result
    if options_args.json:
        print(json.dumps({**result.summary(), "sections": jam.sidecar()["sections"],
                          **{k: str(v) for k, v in paths.items()}}, indent=2))
        return 0
    for section in jam.sections:
        print(section.readout())
    print(f"  {result.backend}, seed {result.options.seed}, {result.audio.duration_s:.1f} s, "
          f"{len(jam.sections)} sections")
    for path in paths.values():
        print(f"  wrote {path}")
    return 0


def write_jam(jam, out: Path, name: str) -> dict[str, Path]:
    """The MIDI (markers), audio, trajectory chart, piano roll, credits and the sidecar."""
    writable_folder(out)
    result = jam.result
    files = {
        "midi": (out / f"{name}.mid", result.midi),
        "audio": (out / f"{name}.{result.audio.format}", result.audio.data),
        "trajectory_chart": (out / f"{name}.trajectory.png", result.emotion_chart),
        "piano_roll": (out / f"{name}.pianoroll.png", result.piano_roll),
        "credits": (out / f"{name}.credits.txt", (jam.credits + "\n").encode()),
        "sidecar": (out / f"{name}.jam.json", json.dumps({**jam.sidecar(), "midi": f"{name}.mid"}, indent=2).encode()),
    }
    for path, data in files.values():
        try:
            path.write_bytes(data)
        except OSError as error:
            raise UserError(f"cannot write {path}: {error.strerror or error}") from None
    return {key: path for key, (path, _) in files.items()}
