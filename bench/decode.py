"""Decode benchmark at the published size (random weights), measured side by side in one run.

    .venv/bin/python bench/decode.py            # the full run (a few minutes on 2 cores)
    .venv/bin/python bench/decode.py --quick    # shorter generation, fewer repeats
    .venv/bin/python bench/decode.py --precision int8   # also dynamic int8 linear layers
    python bench/decode.py --device cuda        # the GPU figures (see bench/gpu_check.sh)

Figures on the CPU (goals from issue 10), with the CPU model they ran on:
- oracle forward at context 512: what the reference pays for every token;
- cached step (decode + sampling) at context 512, and the ratio (goal >= 30x);
- a whole generation of --length tokens from <START> through `generate` (goal <= 60 s);
- the weight-stream floor: every decode weight streamed once at batch 1, through the faster of
  MKL (F.linear) and oneDNN, and the cached step against it (goal <= 1.3x);
- the price of batch invariance: the batch-1 step at each decode tile (`ARIA_DECODE_TILE`);
- aggregate tokens/s at batch 1, 4 and 8 (goal: batch 8 >= 6x batch 1), two ways: cached
  steps at context 512, where reading 8 rows' keys and values costs about as much as the
  weights, and whole pieces of --batch-length tokens from <START> through `generate`;
- peak resident memory.
On a GPU: ms per step and tokens/s at batch 1, 8, 64 and 256 at context 512, the reference
forward on the same GPU, a 512-token piece at batch 1, and peak GPU memory.
"""

from __future__ import annotations

import argparse
import copy
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aria_engine.device import describe, resolve_device  # noqa: E402
from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.music.decoding import DecodeRequest, generate  # noqa: E402
from aria_engine.music.kv_cache import KVCache, decode_setup, decode_step, prefill  # noqa: E402
from aria_engine.music.sampler import SamplerState, sample_next  # noqa: E402
from aria_engine.music.products import onednn_available  # noqa: E402
from aria_engine.music.transformer import MusicTransformer, published_config  # noqa: E402
from aria_engine.music.vocab import Vocab  # noqa: E402

EMOTION = Emotion(0.4, 0.3)


def build(mode: str, device: torch.device, seed: int = 0) -> MusicTransformer:
    torch.manual_seed(seed)
    return MusicTransformer.from_config(published_config(mode)).eval().requires_grad_(False).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_times(fns: dict, rounds: int, device: torch.device = torch.device("cpu")) -> dict[str, float]:
    """Best-of-`rounds` seconds of each function, run interleaved so that interference from
    other work on a shared machine spreads over all of them alike."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def decode_linears(model: MusicTransformer) -> list:
    layers = [m for layer in model.enc_layers for m in (layer.rga.Wq, layer.rga.Wk, layer.rga.Wv, layer.rga.fc, layer.FFN_pre, layer.FFN_suf)]
    return layers + [model.fc]


def weight_streams(model: MusicTransformer) -> tuple[dict, float]:
    """Functions streaming every decode weight once at batch 1, one per kernel; megabytes."""
    linears = decode_linears(model)
    device = model.positions.device
    inputs = {n: torch.randn(1, n, device=device) for n in {m.in_features for m in linears}}
    megabytes = sum(m.weight.numel() + m.bias.numel() for m in linears) * 4 / 1e6

    def stream(linear):
        def run():
            for m in linears:
                linear(inputs[m.in_features], m.weight, m.bias)
        return run

    kernels = {"F.linear": stream(F.linear)}
    if device.type == "cpu" and onednn_available():
        kernels["oneDNN"] = stream(lambda x, w, b: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""))
    return kernels, megabytes


def oracle_forward(model: MusicTransformer, context: int):
    """A function running the reference's per-token work: a full forward of the window."""
    tokens = torch.randint(2, 1000, (1, context), device=model.positions.device)
    return lambda: model(tokens, valence=EMOTION.valence, arousal=EMOTION.arousal)


class SteadyDecoder:
    """Rows sitting at a context of `context` tokens, stepping together with sampling, as
    `generate` does between window events."""

    def __init__(self, model: MusicTransformer, vocab: Vocab, batch: int, context: int, steps: int, tile: int | None = None):
        device = model.positions.device
        self.model, self.vocab, self.batch, self.context = model, vocab, batch, context
        self.cache = KVCache(model, batch, context + steps + 1, tile)
        self.condition = torch.tensor([[EMOTION.valence, EMOTION.arousal]] * batch, device=device)
        prompt = torch.randint(2, 1000, (1, context - 1), device=device)
        prefill(model, prompt, self.condition[:1], cache=self.cache, rows=torch.tensor([0], device=device))
        self.cache.k[:, 1:batch] = self.cache.k[:, :1]  # every row the same context (same cost)
        self.cache.v[:, 1:batch] = self.cache.v[:, :1]
        self.samplers = [SamplerState((1.2, 1.2), 0.7, 0, torch.Generator().manual_seed(i)) for i in range(batch)]
        self.special = torch.tensor(vocab.special_ids)
        self.last = [int(prompt[0, -1])] * batch
        self.position = context - 1
        self.limit = context + steps
        self.device = device

    def step(self) -> None:
        if self.position >= self.limit:  # stay near the context asked for
            self.position = self.context - 1
        tokens = torch.tensor(self.last, device=self.device)
        logits = decode_step(self.model, self.cache, tokens, [self.position] * self.batch, self.condition)
        logits = logits.float().cpu()
        self.last = [
            sample_next(logits[r], self.vocab.is_timeshift[self.last[r]], self.samplers[r], self.special)
            for r in range(self.batch)
        ]
        self.position += 1


def generation_time(model, vocab, length: int, batch: int = 1) -> float:
    """Seconds for `batch` pieces of `length` tokens. No retries for too few instruments
    (min_instruments=0): with random weights a retry would only measure the seed's luck."""
    requests = [DecodeRequest(emotion=EMOTION, length=length, window=1216, seed=i, min_instruments=0)
                for i in range(batch)]
    device = model.positions.device
    synchronize(device)
    start = time.perf_counter()
    generate(model, vocab, requests)
    synchronize(device)
    return time.perf_counter() - start


def argmax_agreement(fp32, int8, vocab, context: int, steps: int) -> float:
    """Teacher-forced: both models see the fp32 model's greedy tokens; share of equal argmaxes."""
    caches = [KVCache(m, 1, context + steps + 1) for m in (fp32, int8)]
    condition = torch.tensor([[EMOTION.valence, EMOTION.arousal]])
    prompt = torch.randint(2, 1000, (1, context - 1))
    for m, cache in zip((fp32, int8), caches):
        prefill(m, prompt, condition, cache=cache, rows=torch.tensor([0]))
    token, agree = int(prompt[0, -1]), 0
    for s in range(steps):
        picks = [int(decode_step(m, cache, torch.tensor([token]), [context - 1 + s], condition)[0].argmax())
                 for m, cache in zip((fp32, int8), caches)]
        agree += picks[0] == picks[1]
        token = picks[0]
    return agree / steps


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def row(label: str, value: str, goal: str = "", verdict: bool | None = None) -> str:
    mark = "" if verdict is None else ("ok" if verdict else "MISSED")
    return f"  {label:<50} {value:>18}   {goal:<10} {mark}"


def cpu_run(args, model, vocab, length, batch_length, rounds) -> None:
    tile = decode_setup(model, args.tile).tile
    streams, megabytes = weight_streams(model)
    decoders = {b: SteadyDecoder(model, vocab, b, args.context, 8, tile) for b in (1, 4, 8)}
    sweep = {t: SteadyDecoder(model, vocab, 1, args.context, 8, t) for t in args.tiles if t != tile}
    fns = {f"floor {name}": fn for name, fn in streams.items()}
    fns["oracle"] = oracle_forward(model, args.context)
    fns |= {f"batch {b}": decoder.step for b, decoder in decoders.items()}
    fns |= {f"tile {t}": decoder.step for t, decoder in sweep.items()}
    for fn in fns.values():  # warm up
        fn()
    best = best_times(fns, rounds)
    floors = {name: best[f"floor {name}"] for name in streams}
    floor = min(floors.values())
    oracle, cached = best["oracle"], best["batch 1"]
    batch_steps = {b: best[f"batch {b}"] for b in decoders}
    tiles = {tile: cached} | {t: best[f"tile {t}"] for t in sweep}
    del decoders, sweep
    whole = generation_time(model, vocab, length)
    pieces = {b: generation_time(model, vocab, batch_length, b) for b in (1, 4, 8)}
    rss_fp32 = peak_rss_mb()
    int8 = None
    if args.precision == "int8":
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
        pair = best_times({"fp32": SteadyDecoder(model, vocab, 1, args.context, 8).step,
                           "int8": SteadyDecoder(quantized, vocab, 1, args.context, 8).step}, rounds * 2)
        agreement = argmax_agreement(model, quantized, vocab, args.context // 2, 50 if args.quick else 200)
        int8 = (pair["fp32"], pair["int8"], agreement)

    rates = {b: b / t for b, t in batch_steps.items()}
    print(f"  {'measure':<50} {'value':>18}   {'goal':<10}")
    print(row(f"oracle forward, context {args.context} (reference, per token)", f"{oracle * 1000:.0f} ms"))
    print(row(f"cached step + sampling, context {args.context}, tile {tile}", f"{cached * 1000:.1f} ms"))
    print(row("  speed-up over the reference", f"{oracle / cached:.1f}x", ">= 30x", oracle / cached >= 30))
    print(row(f"whole generation, {length} tokens from <START>", f"{whole:.1f} s",
              "<= 60 s" if length == 1024 else "", whole <= 60 if length == 1024 else None))
    print(row("  = tokens/s", f"{length / whole:.1f}"))
    for name, seconds in floors.items():
        print(row(f"weight stream at batch 1 ({megabytes:.0f} MB), {name}", f"{seconds * 1000:.1f} ms"))
    print(row("  cached step / the faster stream (the floor)", f"{cached / floor:.2f}x", "<= 1.3x", cached / floor <= 1.3))
    for t in sorted(tiles):
        print(row(f"batch-1 step at tile {t} (ARIA_DECODE_TILE={t})", f"{tiles[t] * 1000:.1f} ms / {tiles[t] / floor:.2f}x floor"))
    for b in (1, 4, 8):
        print(row(f"batch {b}, context {args.context}: step / tokens/s", f"{batch_steps[b] * 1000:.0f} ms / {rates[b]:.1f}"))
    print(row("  batch 8 / batch 1 tokens/s", f"{rates[8] / rates[1]:.1f}x", ">= 6x", rates[8] / rates[1] >= 6))
    piece_rates = {b: b * batch_length / t for b, t in pieces.items()}
    for b in (1, 4, 8):
        print(row(f"batch {b}, {batch_length}-token pieces: time / tokens/s", f"{pieces[b]:.1f} s / {piece_rates[b]:.1f}"))
    print(row("  batch 8 / batch 1 tokens/s", f"{piece_rates[8] / piece_rates[1]:.1f}x", ">= 6x", piece_rates[8] / piece_rates[1] >= 6))
    if int8 is not None:
        fp32_step, int8_step, agreement = int8
        print(row(f"int8 dynamic: cached step, context {args.context}", f"{int8_step * 1000:.1f} ms"))
        print(row("  speed-up over fp32 (measured alongside)", f"{fp32_step / int8_step:.2f}x", ">= 1.7x", fp32_step / int8_step >= 1.7))
        print(row("  next-token argmax agrees with fp32", f"{agreement:.1%}", ">= 98%", agreement >= 0.98))
    kv_mb = 2 * model.config.n_layer * args.context * model.config.d_model * 4 / 1e6
    print(row(f"keys and values read per row at context {args.context}", f"{kv_mb:.0f} MB"))
    print(row("peak memory (RSS), fp32 measurements", f"{rss_fp32:.0f} MB"))
    if int8 is not None:
        print(row("peak memory (RSS), with the int8 copy", f"{peak_rss_mb():.0f} MB"))


def cuda_run(args, model, vocab, device, rounds) -> None:
    """Steps at batch 1, 8, 64 and 256 on the GPU, the reference forward beside them."""
    tile = decode_setup(model, args.tile).tile
    torch.cuda.reset_peak_memory_stats(device)
    batches = (1, 8, 64, 256)
    fns = {"oracle": oracle_forward(model, args.context)}
    decoders = {b: SteadyDecoder(model, vocab, b, args.context, 8, tile) for b in batches}
    fns |= {f"batch {b}": decoder.step for b, decoder in decoders.items()}
    for fn in fns.values():
        fn()
    best = best_times(fns, rounds, device)
    del decoders
    piece = generation_time(model, vocab, 512)
    peak_gb = torch.cuda.max_memory_allocated(device) / 1e9
    print(f"  {'measure':<50} {'value':>18}   {'goal':<10}")
    print(row(f"oracle forward, context {args.context} (reference, per token)", f"{best['oracle'] * 1000:.1f} ms"))
    for b in batches:
        step = best[f"batch {b}"]
        goal = ">= 20000" if b == 256 else ""
        print(row(f"batch {b}, context {args.context}: ms per step / tokens/s", f"{step * 1000:.2f} ms / {b / step:.0f}",
                  goal, b / step >= 20000 if b == 256 else None))
    print(row("  cached step at batch 1 vs the reference forward", f"{best['oracle'] / best['batch 1']:.1f}x"))
    print(row("a 512-token piece at batch 1, from <START>", f"{piece:.2f} s", "<= 1 s", piece <= 1))
    print(row("peak GPU memory", f"{peak_gb:.1f} GB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter generation and fewer repeats")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", default="continuous_concat")
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--tile", type=int, default=None, help="rows per decode product (default: ARIA_DECODE_TILE or the device's)")
    parser.add_argument("--tiles", default="1,2,4,8,16", help="tiles to price at batch 1 on the CPU")
    parser.add_argument("--length", type=int, default=None, help="tokens of the whole generation (default 1024; 256 with --quick)")
    parser.add_argument("--batch-length", type=int, default=None, help="tokens per piece in the batch runs (default 256; 64 with --quick)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32", help="int8: also measure dynamic int8 linears")
    args = parser.parse_args()
    args.tiles = [int(t) for t in args.tiles.split(",") if t.strip()]
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    length = args.length or (256 if args.quick else 1024)
    batch_length = args.batch_length or (64 if args.quick else 256)
    rounds = 4 if args.quick else 10

    model, vocab = build(args.mode, device), Vocab.build(args.mode)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"Decode benchmark: {args.mode}, published size ({n_params / 1e6:.1f}M parameters, random weights), "
          f"on {describe(device)}, {args.threads} threads, torch {torch.__version__}")
    print("Step timings are the best of interleaved rounds; on a shared machine they are noisy.\n")
    with torch.inference_mode():
        if device.type == "cuda":
            cuda_run(args, model, vocab, device, rounds)
        else:
            cpu_run(args, model, vocab, length, batch_length, rounds)


if __name__ == "__main__":
    main()
