"""Cached, batched decoding of the Music Transformer, with the reference sampler.

One module on purpose (~540 lines): the per-request state and the `Decoder` that steps it are one
state machine; the cache (`kv_cache`), the sampler and the tiled products are their own modules.

The reference (midi-emotion's `generate`) runs the whole input window through the model for
every token. Here a prompt is prefilled once, then each step runs only the newest token
against a key/value cache (`kv_cache`). This module decides, request by request and step by
step, what to run: a cached step, a prefill, or a full re-encode.

Sampling follows the reference operation by operation (`sampler`), each request with its own
`torch.Generator`, so one request seeded with `generator.manual_seed(s)` reproduces the
reference run made after `torch.manual_seed(s)`, token for token. Batch mates never change a
request's logits, not even in the last bit (`products`), so its tokens are the ones it gets
alone. That holds however the batch changes: a `Decoder` takes new requests and
lets finished or cancelled ones go at every step boundary (continuous batching); `generate`
runs a fixed list through one.

Beyond the context window (`window` = the reference's max_input_len; the token modes spend 2 of
those positions on the emotion, so C = window - 2 tokens fit, else C = window):

- `exact`: as the reference. Until the sequence first exceeds C tokens, steps are cached; after
  that every step re-encodes the last C tokens at positions 0.. (the window slides, so every
  absolute position changes and no cached key survives): reference speed, reference logits.
- `fast` (default): when the cache is full, keep the last ceil(C/2) tokens, re-prefill them at
  positions 0.., and continue cached. Each token is then predicted from between C/2 and C tokens
  of context instead of exactly C; the logits after a re-prefill are exactly the oracle's over
  the kept tokens.

A primer (`DecodeRequest.primer`, Extend: an earlier piece's tokens) follows `<START>`; decoding
starts after it, `length` counts only the new tokens, and the window rules above apply to the whole
sequence, so the model sees the last C tokens of the primer at most. `exact` re-encodes the last C
tokens at every step once the sequence exceeds C, as the reference would with that sequence; `fast`
starts with the last C tokens prefilled and halves as usual. A retry starts again from the primer,
and the min-instruments count is the new tokens' own (an earlier piece's instruments do not make a
new part with none). The first step's temperature follows the primer's last token (a TIMESHIFT or not).

Emotion trajectories (continuous modes): step s uses the trajectory at s / (length - 1). Every
position of the reference's input is conditioned on the current value, so a change of value
invalidates the cache. `exact` therefore re-encodes the window at every step whose value
differs from the last; `fast` holds the value for `trajectory_refresh` steps and re-prefills
the window with the new value at each refresh.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.music import ProgressFn
from aria_engine.music.kv_cache import KVCache, decode_setup, decode_step, model_device, prefill, rows_that_fit
from aria_engine.music.sampler import SamplerState, discard_draw, sample_next
from aria_engine.music.transformer import MusicTransformer
from aria_engine.music.vocab import Vocab
from aria_engine.options import DECODE_STRATEGIES

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TRAJECTORY_REFRESH = 64
DEFAULT_MAX_ROWS = 16  # requests decoding at once in one Decoder, on a CPU
MAX_CUDA_ROWS = 256  # on a GPU: as many as fit in its free memory (`rows_that_fit`), up to this


# -- requests and results ------------------------------------------------------------------------


@dataclass
class DecodeRequest:
    """One piece to generate. `temperatures` is the reference's list: [0] applies after a
    TIMESHIFT, [1] otherwise (ARIA passes [note_temp, rest_temp])."""

    emotion: Emotion | Trajectory | None = None  # None only for conditioning "none"
    length: int = 512  # tokens to generate after <START>
    temperatures: tuple[float, float] = (1.2, 1.2)
    top_p: float = 0.7
    top_k: int = 0  # 0 = the whole vocabulary
    window: int = 1216  # the reference's max_input_len
    seed: int | None = None
    generator: torch.Generator | None = None  # overrides seed; drawn from, never reseeded
    min_instruments: int = 1
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    primer: tuple[int, ...] = ()  # tokens after <START> to continue (not counted in length)


@dataclass
class DecodeResult:
    tokens: list[int]  # generated token indices after <START> and the primer, `length` of them
    attempts: int
    instruments: int
    notes: list[str] = field(default_factory=list)
    tokens_per_s: float = 0.0
    seed: int | None = None


@dataclass
class StepInfo:
    """What the model saw at one step, for tests and diagnostics (`observe=`)."""

    request: int
    step: int  # 0 predicts the first token after <START> (and the primer)
    window_start: int  # index into the sequence (<START> = 0) of the first token in the input
    sequence: list[int]  # the sequence so far, <START> first
    condition: tuple[float, float] | None
    action: str  # "prefill", "decode" or "full"
    logits: torch.Tensor  # [V], before sampling


# -- conditions ----------------------------------------------------------------------------------


def step_conditions(emotion: Emotion | Trajectory, length: int) -> list[tuple[float, float]]:
    """(valence, arousal) for steps 0..length (the last is the reference's discarded step).
    A trajectory is read at s / (length - 1), so the last kept token gets its final value."""
    if isinstance(emotion, Emotion):
        return [(emotion.valence, emotion.arousal)] * (length + 1)
    span = max(1, length - 1)
    points = [emotion.at(min(1.0, s / span)) for s in range(length + 1)]
    return [(p.valence, p.arousal) for p in points]


def _as_float32(pairs: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The values the reference's FloatTensor holds (so equal-looking conditions compare equal);
    one conversion for the whole list, as requests are added from the engine's event loop."""
    return [(v, a) for v, a in torch.tensor(pairs, dtype=torch.float32).tolist()]



# -- one request in flight -----------------------------------------------------------------------


class _InFlight:
    """A request's decoding state across steps and attempts."""

    def __init__(self, index: int, request: DecodeRequest, model: MusicTransformer, vocab: Vocab, decode: str, refresh: int):
        self.index, self.request, self.decode, self.refresh = index, request, decode, refresh
        self.prefix = model.config.prefix_len
        self.capacity = request.window - self.prefix  # C: window tokens that fit
        self.seed = request.seed
        generator = request.generator
        if generator is None:
            if self.seed is None:
                self.seed = secrets.randbelow(2**31)
            generator = torch.Generator().manual_seed(self.seed)
        self.sampler = SamplerState(tuple(request.temperatures), request.top_p, request.top_k, generator)
        self.conditions = None  # per-step (valence, arousal): continuous modes
        self.emotion_ids = None  # [1, 2]: discrete_token
        if model.conditioning in ("continuous_token", "continuous_concat"):
            self.conditions = _as_float32(step_conditions(request.emotion, request.length))
        elif model.conditioning == "discrete_token":
            self.emotion_ids = torch.tensor([vocab.emotion_ids(*request.emotion.bins)])
        self.varying = self.conditions is not None and len(set(self.conditions[: request.length])) > 1
        self.start_id = vocab.start_id
        self.primer = tuple(int(t) for t in request.primer)
        self.attempts = 0
        self.best: tuple[int, list[int]] | None = None  # (instruments, tokens) of the best attempt
        self.sampled = 0
        self.joined_at = 0.0  # perf_counter when it took a row in the batch
        self.finished_at = 0.0  # seconds from joining to the end of the latest attempt
        self.slot = -1  # this row's cache row, while it holds one (the Decoder assigns it)
        self.cancelled = False  # set from any thread; the row leaves at the next step boundary
        self.result: DecodeResult | None = None
        self.new_attempt()

    def new_attempt(self) -> None:
        """Start again from <START> (and the primer); the generator carries on where it was (as
        the reference)."""
        self.attempts += 1
        self.sampler.repeats = 0
        self.sequence = [self.start_id, *self.primer]
        # sequence index of the first token in the cache: fast mode starts a long primer with
        # its last C tokens (exact mode re-encodes them in full steps instead)
        self.window_start = max(0, len(self.sequence) - self.capacity) if self.decode == "fast" else 0
        self.cached: int | None = None  # tokens held in the cache from window_start; None: none valid
        self.cache_condition = None
        self.full = False  # exact mode past the window: re-encode every step

    @property
    def step(self) -> int:
        return len(self.sequence) - 1 - len(self.primer)

    @property
    def done(self) -> bool:
        return self.step >= self.request.length

    @property
    def holds_cache(self) -> bool:
        return not (self.done or self.full)

    def condition(self) -> tuple[float, float] | None:
        """This step's condition; fast mode holds a trajectory's value between refreshes."""
        if self.conditions is None:
            return None
        s = self.step
        return self.conditions[s - s % self.refresh if self.decode == "fast" else s]

    def plan(self) -> str:
        """decode (cached step), prefill (rebuild the cache) or full (re-encode, no cache)."""
        if self.full:
            return "full"
        n = len(self.sequence)
        room = n - self.window_start <= self.capacity
        valid = self.cached == n - 1 - self.window_start and self.condition() == self.cache_condition
        if valid and room:
            return "decode"
        if self.decode == "exact":
            if self.cached is None and room:  # the first step
                return "prefill"
            self.full = True  # the window slid, or the condition moved: nothing cached survives
            return "full"
        if not room:  # fast: keep the last half and carry on cached
            self.window_start = n - (self.capacity + 1) // 2
        return "prefill"

    def position(self) -> int:
        """Where the newest token goes in a cached step."""
        return self.prefix + len(self.sequence) - 1 - self.window_start

    def window(self) -> list[int]:
        """The tokens the model sees this step (after the condition prefix)."""
        return self.sequence[-self.capacity :] if self.full else self.sequence[self.window_start :]

    def cache_needed(self) -> int:
        """Cache positions this row can occupy: the prefix and up to C tokens."""
        if self.decode == "exact" and self.varying:
            return self.prefix + min(self.capacity, len(self.primer) + 1)  # only the first step is cached
        return self.prefix + min(self.capacity, len(self.primer) + self.request.length + 1)


# -- the batched loop ----------------------------------------------------------------------------
#
# A Decoder is a batch that requests join and leave between steps (continuous batching). Each
# step first settles the batch (cancelled rows leave, waiting requests take free rows, rows that
# need a cache row get one after those holding theirs), then runs the step as described under
# "decode setup": prefills and full re-encodes one row at a time, one cached step for the rest.
# Nothing a row computes depends on when it joined or which rows share its step, so a request
# joining mid-decode gets the tokens it gets alone.


class DecodeHandle:
    """A request in a Decoder: its progress while it decodes, its result once done."""

    def __init__(self, row: _InFlight):
        self._row = row

    @property
    def index(self) -> int:
        return self._row.index

    @property
    def length(self) -> int:
        return self._row.request.length

    @property
    def sampled(self) -> int:
        """Tokens sampled so far, at most `length` (a retry does not count again)."""
        return min(self._row.sampled, self._row.request.length)

    @property
    def progress(self) -> float:
        return self.sampled / self.length

    @property
    def result(self) -> DecodeResult | None:
        return self._row.result

    @property
    def done(self) -> bool:
        return self._row.result is not None

    @property
    def cancelled(self) -> bool:
        return self._row.cancelled and self._row.result is None

    def cancel(self) -> None:
        """Leave the batch at the next step boundary (callable from any thread)."""
        self._row.cancelled = True


class Decoder:
    """Requests decoding together; new ones join at step boundaries.

        decoder = Decoder(model, vocab)
        first = decoder.add(request)
        while decoder.live:
            decoder.step()          # another thread may decoder.add(...) or handle.cancel()
        first.result.tokens

    Up to `max_rows` requests decode at once; more wait in arrival order and join as rows free.
    `tile` is the row count of every decode-step product (see `products`). A request whose attempt has too
    few instruments starts its next attempt in its row at the next step.
    """

    def __init__(
        self,
        model: MusicTransformer,
        vocab: Vocab,
        *,
        decode: str = "fast",
        observe: Callable[[StepInfo], None] | None = None,
        trajectory_refresh: int = DEFAULT_TRAJECTORY_REFRESH,
        max_rows: int | None = None,
        tile: int | None = None,
    ):
        _check_strategy(decode)
        if trajectory_refresh < 1:
            raise ValueError("trajectory_refresh must be at least 1")
        self.model, self.vocab = model, vocab
        self.decode, self.observe, self.trajectory_refresh = decode, observe, trajectory_refresh
        self.setup = decode_setup(model, tile)
        self.device = self.setup.device
        if max_rows is None:
            max_rows = DEFAULT_MAX_ROWS
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                max_rows = min(MAX_CUDA_ROWS, rows_that_fit(model, 2048, free))
        self.max_rows = max(1, max_rows)
        self.special_ids = torch.tensor(vocab.special_ids, dtype=torch.long)
        self.active: list[_InFlight] = []  # decoding, in joining order
        self.holders: list[_InFlight] = []  # rows holding a cache row, in cache-row order
        self.cache: KVCache | None = None
        self._waiting: list[_InFlight] = []  # added, not yet joined
        self._handles: dict[_InFlight, DecodeHandle] = {}  # of every request not yet left
        self._lock = threading.Lock()  # guards _waiting and index allocation
        self._added = 0

    def add(self, request: DecodeRequest, decode: str | None = None) -> DecodeHandle:
        """Queue a request (any thread); it joins at the next step with a free row. `decode`
        overrides the decoder's strategy for this request. Raises ValueError for a bad request."""
        decode = self.decode if decode is None else decode
        _check_strategy(decode)
        _check(request, self.model, self.vocab)
        with self._lock:
            index, self._added = self._added, self._added + 1
        row = _InFlight(index, request, self.model, self.vocab, decode, self.trajectory_refresh)
        handle = self._handles[row] = DecodeHandle(row)
        with self._lock:
            self._waiting.append(row)
        return handle

    @property
    def live(self) -> int:
        """Requests decoding or waiting to join."""
        return len(self.active) + len(self._waiting)

    def step(self) -> list[DecodeHandle]:
        """One token for every request in the batch; returns the handles that left it during
        this step (done, or cancelled before it)."""
        with torch.inference_mode():
            left = self._settle()
            if self.active:
                left += self._sample_all()
            if not self.active:
                self.holders, self.cache = [], None  # an idle decoder holds no memory
        return [self._handles.pop(row) for row in left]

    # -- the step boundary --------------------------------------------------------------------

    def _settle(self) -> list[_InFlight]:
        """Cancelled rows leave, waiting requests join, cache rows are (re)assigned."""
        with self._lock:
            cancelled = [row for row in self._waiting + self.active if row.cancelled]  # one reading
            self._waiting = [row for row in self._waiting if row not in cancelled]
            self.active = [row for row in self.active if row not in cancelled]
            joining = self._waiting[: self.max_rows - len(self.active)]
            del self._waiting[: len(joining)]
        now = time.perf_counter()
        for row in joining:
            row.joined_at = now
        self.active += joining
        if self.active:
            self._assign_cache_rows()
        return cancelled

    def _assign_cache_rows(self) -> None:
        """Rows still holding a cache row move to the front, in order; then rows that need one
        (joined, or retrying) take the next, the cache growing if it must."""
        live = set(self.active)
        kept = [row for row in self.holders if row in live and row.holds_cache]
        needing = [row for row in self.active if row.holds_cache and row not in set(kept)]
        if self.cache is not None and kept != self.holders:
            self.cache.keep([row.slot for row in kept])
        self.holders = kept + needing
        for slot, row in enumerate(self.holders):
            row.slot = slot
        if needing:
            rows = len(self.holders)
            capacity = max(row.cache_needed() for row in self.holders)
            if self.cache is None:
                self.cache = KVCache(self.model, rows, capacity, self.setup.tile)
            elif rows > self.cache.rows_held or capacity > self.cache.capacity:
                # Room for joiners to come: double the rows (up to a full batch) when growing.
                doubled = min(2 * self.cache.rows_held, self.max_rows)
                self.cache.grow(max(rows, doubled), capacity)

    # -- the step -----------------------------------------------------------------------------

    def _sample_all(self) -> list[_InFlight]:
        """Logits for every row, one sample each; rows whose attempt ends retry or finish."""
        plans = {row: row.plan() for row in self.active}
        logits = _step_logits(self.model, self.cache, self.active, self.holders, plans)
        finished = []
        for row in self.active:
            if self.observe is not None:
                self.observe(_step_info(row, plans[row], logits[row]))
            after_timeshift = self.vocab.is_timeshift[row.sequence[-1]]
            row.sequence.append(sample_next(logits[row], after_timeshift, row.sampler, self.special_ids))
            row.sampled += 1
            if row.done:
                discard_draw(row.sampler, len(self.vocab))
                row.finished_at = time.perf_counter() - row.joined_at
                if _needs_retry(row, self.vocab):
                    row.new_attempt()
                else:
                    row.result = _result(row)
                    finished.append(row)
        if finished:
            self.active = [row for row in self.active if row.result is None]
        return finished


def generate(
    model: MusicTransformer,
    vocab: Vocab,
    requests: Sequence[DecodeRequest],
    *,
    decode: str = "fast",
    progress: ProgressFn | None = None,
    observe: Callable[[StepInfo], None] | None = None,
    trajectory_refresh: int = DEFAULT_TRAJECTORY_REFRESH,
) -> list[DecodeResult]:
    """Generate every request together; each gets the tokens it would get alone.

    A request whose piece names fewer than `min_instruments` instruments is generated again,
    continuing its random stream, up to `max_attempts`; then the best attempt is returned with
    a note.
    """
    decoder = Decoder(model, vocab, decode=decode, observe=observe, trajectory_refresh=trajectory_refresh)
    for request in requests:  # every request checked before any work
        _check(request, model, vocab)
    handles = [decoder.add(request) for request in requests]
    report = TokenProgress(handles, progress)
    while decoder.live:
        decoder.step()
        report()
    return [handle.result for handle in handles]


class TokenProgress:
    """Reports the fraction of all requested tokens sampled, in steps of at least 1%.
    `handles` have .sampled and .length (DecodeHandle, or the composer's)."""

    def __init__(self, handles: Sequence, callback: ProgressFn | None):
        self.handles, self.callback, self.last = list(handles), callback, -1.0
        self.total = max(1, sum(handle.length for handle in self.handles))

    def __call__(self) -> None:
        if self.callback is None:
            return
        fraction = min(1.0, sum(handle.sampled for handle in self.handles) / self.total)
        if fraction - self.last >= 0.01 or fraction == 1.0 > self.last:
            self.last = fraction
            self.callback(fraction)


def _check_strategy(decode: str) -> None:
    if decode not in DECODE_STRATEGIES:
        raise ValueError(f"decode must be one of {', '.join(DECODE_STRATEGIES)}")

def _check(request: DecodeRequest, model: MusicTransformer, vocab: Vocab) -> None:
    mode = model.conditioning
    if mode != "none" and request.emotion is None:
        raise ValueError(f"a {mode} model needs an emotion")
    if mode == "discrete_token" and isinstance(request.emotion, Trajectory):
        raise ValueError("a discrete_token model takes one emotion, not a trajectory")
    if request.length < 1:
        raise ValueError("length must be at least 1 token")
    if not model.config.prefix_len + 1 <= request.window <= 2048:
        raise ValueError(f"window must be between {model.config.prefix_len + 1} and 2048")
    if len(request.temperatures) != 2 or min(request.temperatures) <= 0:
        raise ValueError("temperatures must be two positive numbers")
    if not 0 < request.top_p <= 1:
        raise ValueError("top_p must be in (0, 1]")
    if request.max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    if request.primer:
        special = set(vocab.special_ids)
        if any(not isinstance(t, int) or not 0 <= t < len(vocab) or t in special for t in request.primer):
            raise ValueError("a primer holds the model's note and time-shift tokens only")


def _step_logits(model, cache: KVCache, active, holders, plans) -> dict:
    """Logits for every active row: one batched cached step over the cache rows; prefills and
    full re-encodes one row at a time (see "batch invariance" above)."""
    out = {}
    device = model_device(model)
    decoding = [row for row in holders if plans[row] == "decode"]
    if decoding:
        # Every cache row takes part; rows not decoding now are idle (the products pad the
        # batch to whole tiles on their own).
        members = [row if plans[row] == "decode" else None for row in holders]
        tokens = torch.tensor([row.sequence[-1] if row else 0 for row in members], device=cache.k.device)
        positions = [row.position() if row else None for row in members]
        condition = _conditions(model, [row or decoding[0] for row in members])
        logits = decode_step(model, cache, tokens, positions, condition)
        for row in decoding:
            out[row] = logits[row.slot]
            row.cached += 1
    for row in active:
        plan = plans[row]
        if plan == "decode":
            continue
        window = row.window()
        tokens = torch.tensor([window], device=device)
        emotion_ids = None if row.emotion_ids is None else row.emotion_ids.to(device)
        if plan == "prefill":
            slot = torch.tensor([row.slot], device=device)
            logits = prefill(model, tokens, _conditions(model, [row]), emotion_ids, cache, slot)
            row.cached, row.cache_condition = len(window), row.condition()
        else:
            logits = prefill(model, tokens, _conditions(model, [row]), emotion_ids)
        out[row] = logits[0]
    if device.type != "cpu":  # the reference sampler runs on the CPU, with CPU generators
        out = dict(zip(out, torch.stack(list(out.values())).float().cpu())) if out else out
    return out


def _conditions(model, rows) -> torch.Tensor | None:
    if model.conditioning not in ("continuous_token", "continuous_concat"):
        return None
    return torch.tensor([row.condition() for row in rows], dtype=torch.float32, device=model_device(model))


def _step_info(row: _InFlight, action: str, logits) -> StepInfo:
    start = len(row.sequence) - len(row.window())
    return StepInfo(row.index, row.step, start, list(row.sequence), row.condition(), action, logits.clone())


def _needs_retry(row: _InFlight, vocab: Vocab) -> bool:
    tokens = row.sequence[1 + len(row.primer):]
    instruments = vocab.count_instruments(tokens)
    if row.best is None or instruments > row.best[0]:
        row.best = (instruments, tokens)
    return instruments < row.request.min_instruments and row.attempts < row.request.max_attempts


def _result(row: _InFlight) -> DecodeResult:
    instruments, tokens = row.best
    notes = []
    if instruments < row.request.min_instruments:
        notes.append(
            f"asked for at least {row.request.min_instruments} instruments; the best of "
            f"{row.attempts} attempts has {instruments}"
        )
    rate = row.sampled / row.finished_at if row.finished_at > 0 else 0.0
    return DecodeResult(tokens, row.attempts, instruments, notes, rate, row.seed)
