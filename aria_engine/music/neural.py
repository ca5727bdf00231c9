"""The neural composer: ARIA's / midi-emotion's Music Transformer behind the Composer protocol.

A jam continuing an earlier piece (`JamScore.continues`) is primed with the earlier piece's tokens
(`Vocab.from_midi`) and decodes only the new parts' tokens, along `composed_trajectory`. From_midi
and to_midi do not round-trip a MIDI file exactly (ticks quantise the 8 ms grid, and from_midi
merges shifts and reorders simultaneous events), so the longer piece is the earlier MIDI's notes
verbatim with the new tokens' notes after them, placed where the primer's last event sounds.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Sequence

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.music import Composition, ProgressFn
from aria_engine.options import GenerationOptions

CHECKPOINT_FILES = ("model.pt", "mappings.pt", "model_config.pt")


def _is_checkpoint(folder: Path) -> bool:
    return all((folder / name).is_file() for name in CHECKPOINT_FILES)


def resolve_checkpoint(model_dir: str | Path, mode: str) -> Path:
    """The checkpoint folder to load: `model_dir` itself when it holds model.pt, mappings.pt
    and model_config.pt, else its `mode` subfolder (a models directory)."""
    model_dir = Path(model_dir).expanduser()
    if _is_checkpoint(model_dir):
        return model_dir
    if _is_checkpoint(model_dir / mode):
        return model_dir / mode
    if not model_dir.exists():
        raise FileNotFoundError(f"The models folder {model_dir} does not exist. Run `aria models pull` to download ARIA's models.")
    missing = [name for name in CHECKPOINT_FILES if not (model_dir / mode / name).is_file()]
    raise FileNotFoundError(
        f"No {mode} music model in {model_dir}: {mode}/ lacks {', '.join(missing)}. "
        "Run `aria models pull`, or point --model-dir at a folder holding model.pt, mappings.pt "
        "and model_config.pt."
    )


def _load_refusing_plainly(load, folder: Path):
    """`load(folder)`, with a refused or unreadable file said in one line (torch's own text
    suggests `weights_only=False`, i.e. running the file's code: never shown)."""
    from aria_engine.models import checkpoint_refusal
    from aria_engine.music.transformer import CheckpointError
    from aria_engine.music.vocab import VocabError

    try:
        return load(folder)
    except (CheckpointError, VocabError) as error:
        if error.__cause__ is None:  # ARIA's own words on the file's shape: already one line
            raise
        text = str(error)
        name = next((n for n in CHECKPOINT_FILES if n in text.split(":")[0]), None)
        raise type(error)(checkpoint_refusal(folder / name if name else folder, error)) from None


class TransformerComposer:
    """Composes with a Music Transformer checkpoint; loads it once, on first use."""

    name = "transformer"

    def __init__(self, model_dir: str | Path, mode: str = "continuous_concat", device=None):
        """`device`: a torch.device or name (default: `aria_engine.device.resolve_device()`)."""
        self.model_dir, self.mode = Path(model_dir), mode
        self._device = device
        self._lock = threading.Lock()
        self._loaded = None  # (model, vocab, mode it was trained for, notes)

    def load(self):
        """(model, vocab, the checkpoint's conditioning, notes); loaded once, thread-safe."""
        with self._lock:
            if self._loaded is None:
                from aria_engine.device import describe, resolve_device
                from aria_engine.music.kv_cache import decode_setup
                from aria_engine.music.transformer import load_checkpoint

                device = self._device if hasattr(self._device, "type") else resolve_device(self._device)
                folder = resolve_checkpoint(self.model_dir, self.mode)
                model, vocab, config = _load_refusing_plainly(load_checkpoint, folder)
                model.to(device)
                decode_setup(model)  # stack the decode weights now, not during the first piece
                self.device_name = describe(device)
                notes = []
                if model.conditioning != self.mode:
                    notes.append(f"the checkpoint in {folder} is a {model.conditioning} model; composed with that mode")
                self._loaded = (model, vocab, model.conditioning, notes)
            return self._loaded

    def compose(
        self, emotion: Emotion | Trajectory, options: GenerationOptions, progress: ProgressFn | None = None
    ) -> Composition:
        return self.compose_batch([(emotion, options)], progress)[0]

    def compose_batch(
        self,
        requests: Sequence[tuple[Emotion | Trajectory, GenerationOptions]],
        progress: ProgressFn | None = None,
    ) -> list[Composition]:
        """All requests decode together; each piece is the one `compose` gives it alone."""
        from aria_engine.music.decoding import TokenProgress

        session = self.session()
        pieces = [session.add(emotion, options) for emotion, options in requests]
        report = TokenProgress(pieces, progress)
        while session.live:
            session.step()
            report()
        return [piece.composition for piece in pieces]

    def session(self) -> "CompositionSession":
        """A running batch that pieces join and leave between decode steps (for the engine)."""
        return CompositionSession(self)

    @staticmethod
    def _request(emotion: Emotion | Trajectory, options: GenerationOptions, mode: str, primer: Sequence[int] = ()):
        """The decoding request for one piece, and notes on what was adapted."""
        from aria_engine.music.decoding import DecodeRequest

        notes = []
        if mode == "none":
            emotion = None
            notes.append("this model has no emotion conditioning; the emotion was not used")
        elif mode == "discrete_token" and isinstance(emotion, Trajectory):
            emotion = emotion.at(0.0)
            notes.append("discrete_token models take one emotion; used the trajectory's start")
        request = DecodeRequest(
            emotion=emotion,
            length=options.length,
            temperatures=(options.note_temperature, options.rest_temperature),
            top_p=options.top_p,
            top_k=options.top_k,
            window=options.window,
            seed=options.seed,
            min_instruments=options.min_instruments,
            primer=tuple(primer),
        )
        return request, notes


class Earlier:
    """The earlier piece a continuation primes with: its MIDI (notes kept verbatim), its tokens,
    where its sections start and where the new tokens begin (the primer's last event)."""

    def __init__(self, score, vocab):
        from aria_engine.jam import JamError, check_continuation, earlier_section_starts, read_earlier_midi
        from aria_engine.music.vocab import MAX_PITCH, MIN_PITCH

        check_continuation(score)
        if score.continues.composer != "transformer":
            raise JamError("a piece the built-in composer made continues with the built-in composer")
        self.score = score
        self.midi, _ = read_earlier_midi(score.continues.midi)
        self.tokens = vocab.from_midi(self.midi)
        if not self.tokens:
            raise JamError("the earlier piece has no notes the model can read (pitches 21..108)")
        self.join_s = max(n.end for i in self.midi.instruments for n in i.notes if MIN_PITCH <= n.pitch <= MAX_PITCH)
        self.section_starts = earlier_section_starts(score.continues.midi, score.held)

    def longer_piece(self, vocab, new_tokens: Sequence[int]):
        """The earlier MIDI with the new tokens' notes after `join_s`, each on the earlier track of
        its instrument when there is one with the model's program."""
        import copy

        from aria_engine.music.vocab import PROGRAMS, _vocab_instrument

        midi = copy.deepcopy(self.midi)
        added = vocab.to_midi([vocab.start_id, *new_tokens])
        for track in added.instruments:
            if not track.notes:
                continue
            name = track.name.upper()
            program, is_drum = PROGRAMS[name]
            target = next((i for i in midi.instruments if i.program == program and i.is_drum == is_drum
                           and _vocab_instrument(i) == name), None)
            if target is None:
                target = copy.deepcopy(track)
                target.notes = []
                midi.instruments.append(target)
            for note in track.notes:
                note.start += self.join_s
                note.end += self.join_s
                target.notes.append(note)
        return midi

    def sections(self, vocab, new_tokens: Sequence[int]) -> list[dict]:
        """Every section's start: the earlier ones from its markers, each new one where its first
        token sounds (the new tokens shared equally between the new parts)."""
        count = len(self.score.new_parts)
        cursor, times = 0.0, []
        for token in new_tokens:
            times.append(cursor)
            if vocab.is_timeshift[token]:
                cursor += vocab.idx2tuple[token][1] / 1000.0
        starts = [self.join_s + (times[round(j * len(new_tokens) / count)] if j else 0.0) for j in range(count)]
        return [{"start_s": round(t, 4)} for t in self.section_starts + starts]


class Piece:
    """One piece in a CompositionSession: its progress, then its Composition."""

    def __init__(self, handle, notes: list[str], score=None, earlier: Earlier | None = None):
        self.handle, self.notes = handle, notes
        self.score, self.earlier = score, earlier  # a jam's score; a continuation's earlier piece
        self.composition: Composition | None = None  # set when it has decoded

    @property
    def length(self) -> int:
        return self.handle.length

    @property
    def sampled(self) -> int:
        return self.handle.sampled

    @property
    def progress(self) -> float:
        return self.handle.progress

    @property
    def done(self) -> bool:
        return self.composition is not None

    @property
    def cancelled(self) -> bool:
        return self.handle.cancelled

    def cancel(self) -> None:
        """Leave the session at its next step boundary (callable from any thread)."""
        self.handle.cancel()


class CompositionSession:
    """Pieces of one TransformerComposer decoding together; a piece added while others decode
    joins them at the next step and still comes out as `compose` makes it alone.

    `add` and `Piece.cancel` may be called from any thread; `step` and `run_for` from one
    thread at a time.
    """

    def __init__(self, composer: TransformerComposer):
        from aria_engine.music.decoding import Decoder

        self.composer = composer
        self.model, self.vocab, self.mode, self.load_notes = composer.load()
        self.decoder = Decoder(self.model, self.vocab)
        self._pieces: dict = {}  # decode handle -> Piece, until it leaves

    def add(self, emotion: Emotion | Trajectory, options: GenerationOptions) -> Piece:
        """Queue a piece (options with a seed, or one is drawn). Raises ValueError when the
        model cannot make it."""
        from aria_engine.jam import JamScore

        score = emotion if isinstance(emotion, JamScore) else None
        earlier = Earlier(score, self.vocab) if score is not None and score.continues is not None else None
        if earlier is not None:
            emotion = score.composed_trajectory()
        request, notes = self.composer._request(emotion, options, self.mode, earlier.tokens if earlier else ())
        handle = self.decoder.add(request, decode=options.decode)
        piece = self._pieces[handle] = Piece(handle, notes, score, earlier)
        return piece

    @property
    def live(self) -> int:
        """Pieces decoding or waiting to join."""
        return self.decoder.live

    def step(self) -> list[Piece]:
        """One decode step; returns the pieces that left (composed, or cancelled)."""
        left = [self._pieces.pop(handle) for handle in self.decoder.step()]
        for piece in left:
            if piece.handle.done:
                piece.composition = self._composition(piece)
        return left

    def run_for(self, seconds: float) -> list[Piece]:
        """Steps until `seconds` have passed, a piece left, or nothing is live."""
        deadline = time.perf_counter() + seconds
        left: list[Piece] = []
        while self.live and not left and time.perf_counter() < deadline:
            left = self.step()
        return left

    def _composition(self, piece: Piece) -> Composition:
        from aria_engine.jam import note_sections

        result = piece.handle.result
        stats = {"tokens_per_s": round(result.tokens_per_s, 2), "attempts": result.attempts,
                 "device": self.composer.device_name}
        earlier = piece.earlier
        if earlier is None:
            midi, tokens = self.vocab.to_midi([self.vocab.start_id, *result.tokens]), result.tokens
        else:  # the whole longer piece: the earlier notes as they were, then the new ones
            midi, tokens = earlier.longer_piece(self.vocab, result.tokens), earlier.tokens + result.tokens
            stats["sections"] = earlier.sections(self.vocab, result.tokens)
            stats["primer_tokens"] = len(earlier.tokens)
        composition = Composition(
            midi=midi,
            composer=self.composer.name,
            seed=result.seed,
            mode=self.mode,
            tokens=tokens,
            notes=self.load_notes + piece.notes + result.notes,
            stats=stats,
        )
        if piece.score is not None:  # a jam's sections and credits, on every path (the engine's sessions too)
            note_sections(piece.score, composition, self.vocab)
        return composition
