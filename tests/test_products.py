"""The decode step's products on fixed tiles: a row's bits never depend on its batch.

These check a property of the machine the suite runs on, at the published layer shapes, for
the batch sizes the decoder really uses (1 to DEFAULT_MAX_ROWS rows, padded to whole tiles)
and at every position a row can take. No CPU's kernel choices are written down here.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from aria_engine.music.decoding import DEFAULT_MAX_ROWS  # noqa: E402
from aria_engine.music.products import DEFAULT_CPU_TILE, MAX_TILE, Product, default_kernel, default_tile  # noqa: E402

# (in, out) of the published model's decode products: Wq|Wk|Wv stacked, fc, FFN_pre, FFN_suf, head
PUBLISHED_SHAPES = [(768, 2304), (768, 768), (768, 3072), (3072, 768), (768, 390)]


def product(shape, tile, seed=0):
    g = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(*shape)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(shape[1], shape[0], generator=g) * 0.02)
        linear.bias.copy_(torch.randn(shape[1], generator=g) * 0.02)
    return Product([linear], tile, default_kernel(torch.device("cpu")))


@pytest.mark.parametrize("shape", PUBLISHED_SHAPES)
def test_a_row_gets_the_same_bits_at_every_batch_size_and_position(shape):
    tile = default_tile(torch.device("cpu"))
    p = product(shape, tile)
    g = torch.Generator().manual_seed(1)
    row = torch.randn(1, shape[0], generator=g)
    with torch.inference_mode():
        alone = p(row)[0]
        for batch in range(2, DEFAULT_MAX_ROWS + 1):
            for position in sorted({0, batch // 2, batch - 1}):
                x = torch.randn(batch, shape[0], generator=g)
                x[position] = row[0]
                assert torch.equal(p(x)[position], alone), (batch, position)


def test_products_are_the_linear_layers_at_every_tile():
    linears = [torch.nn.Linear(96, 40) for _ in range(3)]
    x = torch.randn(11, 96)
    expected = torch.cat([m(x) for m in linears], dim=-1)
    for tile in (1, 2, 5, 11, 16):
        for kernel in ("onednn", "blas"):
            got = Product(linears, tile, kernel)(x)
            assert got.shape == (11, 120)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore")  # torch.ao quantization's deprecation notices
def test_a_product_of_modules_that_are_not_float_linears_calls_them():
    quantized = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(16, 8)), {torch.nn.Linear})
    p = Product([quantized[0]], 4, "onednn")
    x = torch.randn(3, 16)
    assert p.kernel == "blas" and torch.equal(p(x), quantized[0](x))


def test_the_tile_comes_from_the_environment_or_the_device(monkeypatch):
    monkeypatch.delenv("ARIA_DECODE_TILE", raising=False)
    assert default_tile(torch.device("cpu")) == DEFAULT_CPU_TILE
    monkeypatch.setenv("ARIA_DECODE_TILE", "3")
    assert default_tile(torch.device("cpu")) == 3
    for bad in ("0", "-1", "eight", str(MAX_TILE + 1)):
        monkeypatch.setenv("ARIA_DECODE_TILE", bad)
        with pytest.raises(ValueError, match="ARIA_DECODE_TILE must be a whole number from 1 to"):
            default_tile(torch.device("cpu"))
