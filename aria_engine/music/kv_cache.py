"""The key/value cache and the two passes over it: prefill (whole windows) and the decode step.

Relative attention needs no more than a cache: the new query i meets cached key j through
q_i . E[2047 - (i - j)], which depends only on i - j, so cached keys stay valid as long as the
window's absolute positions do not move. The decode step is the model's arithmetic for the
newest position written lean, with every matrix product on fixed tiles (`products`), so a
request's logits never depend on its batch mates.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from aria_engine.music.products import MAX_TILE, Product, default_kernel, default_tile
from aria_engine.music.transformer import MusicTransformer, relative_attention

GPU_MEMORY_SHARE = 0.8  # of the free GPU memory, for the key/value cache


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


