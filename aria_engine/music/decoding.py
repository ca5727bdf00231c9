"""Cached, batched decoding of the Music Transformer, with the reference sampler.

The reference (midi-emotion's `generate`) runs the whole input window through the model for
every token. Here a prompt is prefilled once, then each step runs only the newest token
against a key/value cache. Relative attention needs no more than that: the new query i meets
cached key j through q_i . E[2047 - (i - j)], which depends only on i - j, so cached keys stay
valid as long as the window's absolute positions do not move.

Sampling follows the reference operation by operation (see `sample_next`), each request with its
own `torch.Generator`, so one request seeded with `generator.manual_seed(s)` reproduces the
reference run made after `torch.manual_seed(s)`, token for token. Batch mates never change a
request's logits, not even in the last bit (see "decode setup" below), so its tokens are the
ones it gets alone. That holds however the batch changes: a `Decoder` takes new requests and
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

Emotion trajectories (continuous modes): step s uses the trajectory at s / (length - 1). Every
position of the reference's input is conditioned on the current value, so a change of value
invalidates the cache. `exact` therefore re-encodes the window at every step whose value
differs from the last; `fast` holds the value for `trajectory_refresh` steps and re-prefills
the window with the new value at each refresh.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.music import ProgressFn
from aria_engine.music.products import MAX_TILE, Product, default_kernel, default_tile
from aria_engine.music.transformer import MusicTransformer, relative_attention
from aria_engine.music.vocab import Vocab

PENALTY_COEFF = 0.5  # the reference's repetition penalty coefficient
DECODE_STRATEGIES = ("fast", "exact")
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TRAJECTORY_REFRESH = 64
DEFAULT_MAX_ROWS = 16  # requests decoding at once in one Decoder, on a CPU
MAX_CUDA_ROWS = 256  # on a GPU: as many as fit in its free memory (`rows_that_fit`), up to this
GPU_MEMORY_SHARE = 0.8  # of the free GPU memory, for the key/value cache


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


@dataclass
class DecodeResult:
    tokens: list[int]  # generated token indices after <START>, `length` of them
    attempts: int
    instruments: int
    notes: list[str] = field(default_factory=list)
    tokens_per_s: float = 0.0
    seed: int | None = None


@dataclass
class StepInfo:
    """What the model saw at one step, for tests and diagnostics (`observe=`)."""

    request: int
    step: int  # 0 predicts the first token after <START>
    window_start: int  # index into the sequence (<START> = 0) of the first token in the input
    sequence: list[int]  # the sequence so far, <START> first
    condition: tuple[float, float] | None
    action: str  # "prefill", "decode" or "full"
    logits: torch.Tensor  # [V], before sampling


# -- the sampler ---------------------------------------------------------------------------------


@dataclass
class SamplerState:
    """Per-request sampling settings and the repetition counter r."""

    temperatures: tuple[float, float]
    top_p: float
    top_k: int
    generator: torch.Generator
    repeats: int = 0


def sample_next(logits: torch.Tensor, after_timeshift: bool, state: SamplerState, special_ids: torch.Tensor) -> int:
    """One reference sampling step on one row of logits [V]; updates state.repeats.

    Operations, shapes ([1, V] and a [1, 1] temperature) and dtypes are the reference's for a
    batch of one, so the same generator state draws the same token.
    """
    out = logits.reshape(1, -1).clone()
    out[out != out] = 0  # NaN -> 0
    out[:, special_ids] = float("-inf")
    out = F.log_softmax(out, dim=-1)

    temperature = torch.tensor([[state.temperatures[0] if after_timeshift else state.temperatures[1]]])
    repeats = torch.tensor([float(state.repeats)])
    multiplier = torch.maximum(torch.zeros_like(repeats), torch.log((repeats + 1) / 4) * PENALTY_COEFF)
    temperature += multiplier * temperature
    out /= temperature.t()

    k = out.size(-1) if state.top_k <= 0 or state.top_k > out.size(-1) else state.top_k
    out, top_ids = torch.topk(out, k)
    if 0 < state.top_p < 1:
        cumulative = torch.cumsum(F.softmax(out, dim=-1), dim=-1)
        remove = cumulative > state.top_p
        remove[:, 0] = False  # always keep the most likely token
        out[remove] = float("-inf")
    probs = F.softmax(out, dim=-1)
    choice = torch.multinomial(probs, 1, replacement=True, generator=state.generator)
    token = int(top_ids.gather(1, choice))

    kept = int((probs > 0).sum())
    state.repeats = state.repeats + 1 if kept <= 2 else state.repeats // 2
    return token


def discard_draw(state: SamplerState, vocab_size: int) -> None:
    """The reference samples once more after its last kept token and throws the draw away.
    Drawing the same amount keeps a retry on the reference's random stream (a multinomial of
    one sample consumes the generator according to the probability tensor's shape only)."""
    k = vocab_size if state.top_k <= 0 or state.top_k > vocab_size else state.top_k
    torch.multinomial(torch.ones(1, k), 1, replacement=True, generator=state.generator)


# -- decode setup: the layers' products on fixed tiles ------------------------------------------
#
# Batch mates must never change a request's logits (see `products`): every decode-step product
# runs on tiles of one fixed row count, whatever the batch. Prefills and full re-encodes run one
# request at a time; the concat condition is embedded row by row.


@dataclass
class DecodeLayer:
    """One encoder layer's weights as a decode step uses them."""

    qkv: Product
    out: Product
    ffn_pre: Product
    ffn_suf: Product
    E: torch.Tensor
    norm1: torch.nn.LayerNorm
    norm2: torch.nn.LayerNorm
    n_head: int
    dh: int


@dataclass
class DecodeSetup:
    tile: int  # rows of every decode-step product
    kernel: str  # "onednn" or "blas"
    device: torch.device
    layers: list[DecodeLayer]
    head: Product  # the output projection to logits


_setups: "weakref.WeakKeyDictionary[MusicTransformer, dict]" = weakref.WeakKeyDictionary()
_setups_lock = threading.Lock()


def model_device(model: MusicTransformer) -> torch.device:
    return model.positions.device


def decode_setup(model: MusicTransformer, tile: int | None = None) -> DecodeSetup:
    """The decode-step products of a model for a tile size (default: `default_tile`), made on
    first use and kept with the model. They share the model's weights except the stacked
    Wq/Wk/Wv, which are a copy: a model's weights must not change after it first decodes."""
    device = model_device(model)
    tile = default_tile(device) if tile is None else tile
    if not 1 <= tile <= MAX_TILE:
        raise ValueError(f"tile must be from 1 to {MAX_TILE} rows")
    with _setups_lock:
        setups = _setups.setdefault(model, {})
        if tile not in setups:
            with torch.inference_mode():
                setups[tile] = _build_setup(model, tile, default_kernel(device))
        return setups[tile]


def _build_setup(model: MusicTransformer, tile: int, kernel: str) -> DecodeSetup:
    def product(*linears):
        return Product(linears, tile, kernel)

    layers = [
        DecodeLayer(
            qkv=product(l.rga.Wq, l.rga.Wk, l.rga.Wv),
            out=product(l.rga.fc),
            ffn_pre=product(l.FFN_pre),
            ffn_suf=product(l.FFN_suf),
            E=l.rga.E,
            norm1=l.layernorm1,
            norm2=l.layernorm2,
            n_head=l.rga.n_head,
            dh=l.rga.dh,
        )
        for l in model.enc_layers
    ]
    head = product(model.fc)
    return DecodeSetup(tile, head.kernel, model_device(model), layers, head)


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


# -- the key/value cache and the two passes ------------------------------------------------------


class KVCache:
    """Keys and values of every layer for a batch of rows: [n_layer, rows, H, capacity, dh].

    Zero-filled, so unused slots always hold finite numbers. A prefill writes whole windows
    from position 0 of the cache rows in `rows` (through the model's layers); a decode step
    writes one position per row (`decode_step`).
    """

    def __init__(self, model: MusicTransformer, rows: int, capacity: int, tile: int | None = None):
        cfg = model.config
        dh = cfg.d_model // cfg.n_head
        shape = (cfg.n_layer, rows, cfg.n_head, capacity, dh)
        self.setup = decode_setup(model, tile)
        self.k = torch.zeros(shape, device=self.setup.device)
        self.v = torch.zeros(shape, device=self.setup.device)
        self.capacity = capacity
        self.rows: torch.Tensor | slice = slice(None)
        self.layers = [_PrefillWriter(self, i) for i in range(cfg.n_layer)]

    @property
    def rows_held(self) -> int:
        return self.k.size(1)

    def grow(self, rows: int, capacity: int) -> None:
        """Make room for at least `rows` rows of `capacity` positions, keeping what is held."""
        rows, capacity = max(rows, self.rows_held), max(capacity, self.capacity)
        for name in ("k", "v"):
            old = getattr(self, name)
            new = old.new_zeros(old.size(0), rows, old.size(2), capacity, old.size(4))
            new[:, : old.size(1), :, : old.size(3)] = old
            setattr(self, name, new)
        self.capacity = capacity

    def keep(self, rows: Sequence[int]) -> None:
        """Move the given rows to the front (in order); the rest become free."""
        if list(rows) != list(range(len(rows))):
            index = torch.tensor(list(rows), dtype=torch.long, device=self.k.device)
            self.k[:, : len(rows)] = self.k[:, index]
            self.v[:, : len(rows)] = self.v[:, index]


def rows_that_fit(model: MusicTransformer, capacity: int, free_bytes: int, share: float = GPU_MEMORY_SHARE) -> int:
    """Cache rows of `capacity` positions (keys and values of every layer) that fit in `share`
    of `free_bytes`: how many requests a GPU decodes at once, computed from its free memory."""
    cfg = model.config
    element = model.positions.element_size()
    per_row = 2 * cfg.n_layer * capacity * cfg.d_model * element
    return max(1, int(free_bytes * share) // per_row)


class _PrefillWriter:
    """What the model's attention layer calls during a prefill: store, then attend as usual."""

    def __init__(self, cache: KVCache, layer: int):
        self.cache, self.layer = cache, layer

    def attend(self, q, k, v, q_pos, E):
        self.cache.k[self.layer, self.cache.rows, :, : k.size(2)] = k
        self.cache.v[self.layer, self.cache.rows, :, : k.size(2)] = v
        return relative_attention(q, k, v, E, q_pos)


def newest_query_attention(q, k, v, E):
    """relative_attention for the newest query only: q [b, H, dh] at position p over keys
    k, v [b, H, p + 1, dh]; returns [b, H, 1, dh].

    Every distance p - j is >= 0 and key j meets E row 2047 - (p - j) = 2047 - p + j, so the
    relative term is a plain product with rows 2047 - p .. 2047 of E: no gather, no mask. The
    content term is added inside the batched product (baddbmm), which saves a pass; the sum is
    the same to rounding.

    Every product here is batched by row: one [b*H, dh] @ E.T product would let the BLAS pick
    its kernel by b for short spans, and a row's bits would depend on its batch mates.
    """
    b, H, span, dh = k.shape
    rel = torch.bmm(q.reshape(b, H, dh), E[E.size(0) - span :].t().expand(b, dh, span)).view(b * H, 1, span)
    q = q.reshape(b * H, 1, dh)
    logits = torch.baddbmm(rel, q, k.reshape(b * H, span, dh).transpose(1, 2)).div_(math.sqrt(dh))
    return torch.bmm(torch.softmax(logits, dim=-1), v.reshape(b * H, span, dh)).view(b, H, 1, dh)


def model_input(model: MusicTransformer, tokens: torch.Tensor, condition, emotion_ids) -> torch.Tensor:
    """Embeddings of windows [b, n] -> [b, P + n, d], the condition placed as the mode wants."""
    if model.conditioning == "discrete_token":
        tokens = torch.cat([emotion_ids, tokens], dim=1)
    x = model.embed_tokens(tokens, condition)
    if model.conditioning == "continuous_token":
        x = torch.cat([model.condition_prefix(condition), x], dim=1)
    return x


def prefill(model, tokens, condition=None, emotion_ids=None, cache: KVCache | None = None, rows=None):
    """Run whole windows [b, n] from position 0; return the last position's logits [b, V].
    With a cache, keys and values go to cache rows `rows` (a LongTensor; default 0..b-1)."""
    x = model_input(model, tokens, condition, emotion_ids)
    q_pos = torch.arange(x.size(1), device=x.device).expand(x.size(0), -1)
    if cache is not None:
        cache.rows = slice(0, x.size(0)) if rows is None else rows
    h = model.run_layers(x, q_pos, None, None if cache is None else cache.layers)
    return model.fc(h[:, -1])


def decode_step(model, cache: KVCache, tokens, positions: Sequence[int | None], condition=None):
    """One new token for each cache row 0..b-1: tokens [b] at positions (None: an idle row,
    whose logits are meaningless and whose cache row gets a meaningless key at a live row's
    position); returns logits [b, V].

    The same arithmetic as the model's layers for the newest position, written lean: per layer
    three products (on the cache's tiles, see `products`), the cache writes, one attention per
    run of rows at the same position, the output product, two LayerNorms and the feed-forward
    products.
    """
    live = [p for p in positions if p is not None]
    if not live or max(live) >= cache.capacity:
        raise ValueError(f"positions {positions} do not fit a cache of {cache.capacity}")
    # Idle rows sit at a live row's position: their writes land in slots no live row reads (a
    # row that is not decoding now is re-prefilled before its next decode step).
    positions = [live[0] if p is None else p for p in positions]
    runs = _runs(positions)
    if model.conditioning == "continuous_concat":  # row by row: see "decode setup"
        x = torch.cat([model.embed_tokens(tokens[r : r + 1, None], condition[r : r + 1]) for r in range(tokens.size(0))])
    else:
        x = model.embed_tokens(tokens[:, None], condition)
    x = x[:, 0] + model.positions[positions]
    setup = cache.setup
    for i, layer in enumerate(setup.layers):
        x = _decode_layer(layer, x, cache.k[i], cache.v[i], runs)
    return setup.head(x)


def _runs(positions: list[int]) -> list[tuple[int, int, int]]:
    """(first row, end row, position) of each run of consecutive rows at the same position."""
    runs: list[tuple[int, int, int]] = []
    for row, p in enumerate(positions):
        if runs and runs[-1][2] == p:
            runs[-1] = (runs[-1][0], row + 1, p)
        else:
            runs.append((row, row + 1, p))
    return runs


def _decode_layer(layer: DecodeLayer, x, kb, vb, runs):
    """EncoderLayer.forward for one new position per row: x [b, d] -> [b, d]."""
    b, H, dh = x.size(0), layer.n_head, layer.dh
    q, k, v = layer.qkv(x).view(b, 3, H, dh).unbind(1)
    if len(runs) == 1:
        p = runs[0][2]
        kb[:b, :, p] = k
        vb[:b, :, p] = v
        y = newest_query_attention(q, kb[:b, :, : p + 1], vb[:b, :, : p + 1], layer.E)
    else:
        y = x.new_empty(b, H, 1, dh)
        for first, end, p in runs:
            kb[first:end, :, p] = k[first:end]
            vb[first:end, :, p] = v[first:end]
            y[first:end] = newest_query_attention(q[first:end], kb[first:end, :, : p + 1], vb[first:end, :, : p + 1], layer.E)
    x1 = _layer_norm(layer.out(y.view(b, H * dh)).add_(x), layer.norm1)
    return _layer_norm(layer.ffn_suf(layer.ffn_pre(x1).relu_()).add_(x1), layer.norm2)


def _layer_norm(x, norm):
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


# -- one request in flight -----------------------------------------------------------------------


class _Row:
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
        """Start again from <START>; the generator carries on where it was (as the reference)."""
        self.attempts += 1
        self.sampler.repeats = 0
        self.sequence = [self.start_id]
        self.window_start = 0  # sequence index of the first token in the cache
        self.cached: int | None = None  # tokens held in the cache from window_start; None: none valid
        self.cache_condition = None
        self.full = False  # exact mode past the window: re-encode every step

    @property
    def step(self) -> int:
        return len(self.sequence) - 1

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
            return self.prefix + 1  # only the first step is cached
        return self.prefix + min(self.capacity, self.request.length + 1)


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

    def __init__(self, row: _Row):
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
        self.rows: list[_Row] = []  # decoding, in joining order
        self.holders: list[_Row] = []  # rows holding a cache row, in cache-row order
        self.cache: KVCache | None = None
        self._waiting: list[_Row] = []  # added, not yet joined
        self._handles: dict[_Row, DecodeHandle] = {}  # of every request not yet left
        self._lock = threading.Lock()  # guards _waiting and index allocation
        self._added = 0

    def add(self, request: DecodeRequest, decode: str | None = None) -> DecodeHandle:
        """Queue a request (any thread); it joins at the next step with a free row. `decode`
        overrides the decoder's strategy for this request. Raises ValueError for a bad request."""
        decode = self.decode if decode is None else decode
        _check_strategy(decode)
        _check(request, self.model)
        with self._lock:
            index, self._added = self._added, self._added + 1
        row = _Row(index, request, self.model, self.vocab, decode, self.trajectory_refresh)
        handle = self._handles[row] = DecodeHandle(row)
        with self._lock:
            self._waiting.append(row)
        return handle

    @property
    def live(self) -> int:
        """Requests decoding or waiting to join."""
        return len(self.rows) + len(self._waiting)

    def step(self) -> list[DecodeHandle]:
        """One token for every request in the batch; returns the handles that left it during
        this step (done, or cancelled before it)."""
        with torch.inference_mode():
            left = self._settle()
            if self.rows:
                left += self._sample_all()
            if not self.rows:
                self.holders, self.cache = [], None  # an idle decoder holds no memory
        return [self._handles.pop(row) for row in left]

    # -- the step boundary --------------------------------------------------------------------

    def _settle(self) -> list[_Row]:
        """Cancelled rows leave, waiting requests join, cache rows are (re)assigned."""
        with self._lock:
            cancelled = [row for row in self._waiting + self.rows if row.cancelled]  # one reading
            self._waiting = [row for row in self._waiting if row not in cancelled]
            self.rows = [row for row in self.rows if row not in cancelled]
            joining = self._waiting[: self.max_rows - len(self.rows)]
            del self._waiting[: len(joining)]
        now = time.perf_counter()
        for row in joining:
            row.joined_at = now
        self.rows += joining
        if self.rows:
            self._assign_cache_rows()
        return cancelled

    def _assign_cache_rows(self) -> None:
        """Rows still holding a cache row move to the front, in order; then rows that need one
        (joined, or retrying) take the next, the cache growing if it must."""
        live = set(self.rows)
        kept = [row for row in self.holders if row in live and row.holds_cache]
        needing = [row for row in self.rows if row.holds_cache and row not in set(kept)]
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

    def _sample_all(self) -> list[_Row]:
        """Logits for every row, one sample each; rows whose attempt ends retry or finish."""
        plans = {row: row.plan() for row in self.rows}
        logits = _step_logits(self.model, self.cache, self.rows, self.holders, plans)
        finished = []
        for row in self.rows:
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
            self.rows = [row for row in self.rows if row.result is None]
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
        _check(request, model)
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

def _check(request: DecodeRequest, model: MusicTransformer) -> None:
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


def _step_info(row: _Row, action: str, logits) -> StepInfo:
    start = len(row.sequence) - len(row.window())
    return StepInfo(row.index, row.step, start, list(row.sequence), row.condition(), action, logits.clone())


def _needs_retry(row: _Row, vocab: Vocab) -> bool:
    tokens = row.sequence[1:]
    instruments = vocab.count_instruments(tokens)
    if row.best is None or instruments > row.best[0]:
        row.best = (instruments, tokens)
    return instruments < row.request.min_instruments and row.attempts < row.request.max_attempts


def _result(row: _Row) -> DecodeResult:
    instruments, tokens = row.best
    notes = []
    if instruments < row.request.min_instruments:
        notes.append(
            f"asked for at least {row.request.min_instruments} instruments; the best of "
            f"{row.attempts} attempts has {instruments}"
        )
    rate = row.sampled / row.finished_at if row.finished_at > 0 else 0.0
    return DecodeResult(tokens, row.attempts, instruments, notes, rate, row.seed)
