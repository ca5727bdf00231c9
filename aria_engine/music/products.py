"""Batch-invariant matrix products for the decode step: every call has one shape.

A request must get the same logits, to the last bit, whether it decodes alone or beside others,
or a sample on a knife edge could differ. Row-wise work (embedding, LayerNorm, softmax, the
per-row attention) is safe by nature; a matrix product x @ W.T is not: a BLAS picks its kernel
by the shape of the call, and another kernel blocks the sum differently. Measured on an
AVX-512 AMD EPYC (torch 2.13, 2 threads): MKL's sgemm gives row 0 different bits at 1, 2..3
and 4+ rows; oneDNN runs an AVX2 kernel for one row and an AVX-512 one from two.

So a decode step never lets the batch choose the shape. Every product runs on tiles of exactly
`tile` rows: b rows are padded with zero rows to a multiple of the tile and multiplied one tile
per call. Each call has the same shape whatever the batch, so the library runs the same kernel
with the same blocking; what is left, that a row's bits do not depend on where it sits in its
tile or on its tile mates, holds for every GEMM that loops rows alike (each output row reads
one input row) and is checked on the machine by the tests (`tests/test_products.py`).

The price is that one request pays for a whole tile: on the CPU a tile of T rows streams the
weights once, as one row does, plus T rows of arithmetic. `tile` is therefore a setting
(`ARIA_DECODE_TILE`, or `Decoder(tile=...)`); `bench/decode.py --tile` measures the trade.

Kernels: on x86 CPUs oneDNN's matmul (`torch.ops.mkldnn._linear_pointwise`), which dispatches
by instruction set whatever the CPU's vendor; it was 1.5-3x faster than MKL's sgemm for 2-16
rows on the AMD CPU above (bench/decode.py prints both). Elsewhere, and on GPUs, F.linear.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F

DEFAULT_CPU_TILE = 8  # rows per product on the CPU: a batch of 8 costs little more than one
DEFAULT_CUDA_TILE = 64  # on a GPU a tile's arithmetic is nearly free up to here
MAX_TILE = 256
KERNELS = ("onednn", "blas")


def default_tile(device: torch.device) -> int:
    """`ARIA_DECODE_TILE` when set, else the device's default."""
    value = os.environ.get("ARIA_DECODE_TILE", "").strip()
    if value:
        tile = int(value) if value.isdigit() else 0
        if not 1 <= tile <= MAX_TILE:
            raise ValueError(f"ARIA_DECODE_TILE must be a whole number from 1 to {MAX_TILE}, not {value!r}")
        return tile
    return DEFAULT_CUDA_TILE if device.type == "cuda" else DEFAULT_CPU_TILE


def onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def default_kernel(device: torch.device) -> str:
    return "onednn" if device.type == "cpu" and onednn_available() else "blas"


def _onednn_linear(x, weight, bias):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class Product:
    """x @ W.T + b for x [rows, in] on tiles of `tile` rows, from weights stacked on the output
    axis (Wq, Wk and Wv make one product). Modules other than float nn.Linear (an int8 dynamic
    quantized one, say) are called as they are: they make no promise of batch invariance."""

    def __init__(self, linears: Sequence[torch.nn.Module], tile: int, kernel: str = "blas"):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}")
        self.linears = list(linears)
        self.in_features = self.linears[0].in_features
        self.tile, self.kernel = tile, kernel
        self.weight = self.bias = None
        if all(isinstance(m, torch.nn.Linear) for m in self.linears):
            many = len(self.linears) > 1
            self.weight = torch.cat([m.weight for m in self.linears]) if many else self.linears[0].weight
            self.bias = torch.cat([m.bias for m in self.linears]) if many else self.linears[0].bias
        if self.weight is None or self.weight.dtype != torch.float32 or self.weight.device.type != "cpu":
            self.kernel = "blas"
        self._linear = _onednn_linear if self.kernel == "onednn" else F.linear

    @property
    def out_features(self) -> int:
        return sum(m.out_features for m in self.linears)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            return self.reference(x)
        rows, tile = x.size(0), self.tile
        padded = -(-rows // tile) * tile
        if padded != rows:
            x = torch.cat([x, x.new_zeros(padded - rows, x.size(1))])
        if padded == tile:
            return self._linear(x, self.weight, self.bias)[:rows]
        out = x.new_empty(padded, self.weight.size(0))
        for start in range(0, padded, tile):
            out[start : start + tile] = self._linear(x[start : start + tile], self.weight, self.bias)
        return out[:rows]

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The same product from the modules themselves."""
        outs = [m(x) for m in self.linears]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
