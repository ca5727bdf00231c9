"""The neural composer: ARIA's / midi-emotion's Music Transformer behind the Composer protocol."""

from __future__ import annotations

import threading
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


class TransformerComposer:
    """Composes with a Music Transformer checkpoint; loads it once, on first use."""

    name = "transformer"

    def __init__(self, model_dir: str | Path, mode: str = "continuous_concat"):
        self.model_dir, self.mode = Path(model_dir), mode
        self._lock = threading.Lock()
        self._loaded = None  # (model, vocab, mode it was trained for, notes)

    def load(self):
        """(model, vocab, the checkpoint's conditioning, notes); loaded once, thread-safe."""
        with self._lock:
            if self._loaded is None:
                from aria_engine.music.decoding import decode_setup
                from aria_engine.music.transformer import load_checkpoint

                folder = resolve_checkpoint(self.model_dir, self.mode)
                model, vocab, config = load_checkpoint(folder)
                decode_setup(model)  # pack the decode weights now, not during the first piece
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
        """All requests decode together (grouped by decode strategy); each piece is the one
        `compose` gives it alone."""
        from aria_engine.music.decoding import generate

        model, vocab, mode, load_notes = self.load()
        prepared = [self._request(emotion, options, mode) for emotion, options in requests]
        results: list = [None] * len(requests)
        strategies = sorted({options.decode for _, options in requests})
        total = sum(options.length for _, options in requests)
        done = 0
        for strategy in strategies:
            indices = [i for i, (_, options) in enumerate(requests) if options.decode == strategy]
            weight = sum(requests[i][1].length for i in indices)
            offset = done

            def report(fraction: float, offset=offset, weight=weight) -> None:
                if progress is not None:
                    progress((offset + fraction * weight) / total)

            outputs = generate(model, vocab, [prepared[i][0] for i in indices], decode=strategy, progress=report)
            for i, output in zip(indices, outputs):
                results[i] = output
            done += weight
        return [
            Composition(
                midi=vocab.to_midi([vocab.start_id, *result.tokens]),
                composer=self.name,
                seed=result.seed,
                mode=mode,
                tokens=result.tokens,
                notes=load_notes + notes + result.notes,
                stats={"tokens_per_s": round(result.tokens_per_s, 2), "attempts": result.attempts},
            )
            for result, (_, notes) in zip(results, prepared)
        ]

    @staticmethod
    def _request(emotion: Emotion | Trajectory, options: GenerationOptions, mode: str):
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
        )
        return request, notes
