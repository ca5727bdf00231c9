"""The CUDA path on a real GPU; every test is skipped where torch sees none (CI, most machines).

`bench/gpu_check.sh` runs this file without pytest (`python tests/test_cuda.py`) on a machine
that has torch with CUDA but not the project's test dependencies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import pytest

    torch = pytest.importorskip("torch")
    needs_cuda = pytest.mark.skipif(not torch.cuda.is_available() and "ARIA_CUDA_TEST_DEVICE" not in os.environ,
                                    reason="needs a CUDA GPU")
except ImportError:  # run by bench/gpu_check.sh, where there is no pytest
    pytest = None
    import torch

    def needs_cuda(test):
        return test


from aria_engine.emotion import Emotion, Trajectory  # noqa: E402
from aria_engine.music.decoding import DecodeRequest, Decoder, generate  # noqa: E402
from aria_engine.music.transformer import MusicTransformer  # noqa: E402
from aria_engine.music.vocab import Vocab  # noqa: E402

# A dry run of these tests' logic on the CPU: ARIA_CUDA_TEST_DEVICE=cpu python tests/test_cuda.py
CUDA = torch.device(os.environ.get("ARIA_CUDA_TEST_DEVICE", "cuda:0"))


def small_model(mode: str, device) -> tuple[MusicTransformer, Vocab]:
    vocab = Vocab.build(mode)
    torch.manual_seed(0)
    config = {"vocab_size": len(vocab), "n_layer": 4, "n_head": 4, "d_model": 128, "d_inner": 256,
              "d_condition": 32 if mode == "continuous_concat" else -1, "conditioning": mode}
    return MusicTransformer.from_config(config).eval().requires_grad_(False).to(device), vocab


def requests(count: int, length: int = 40) -> list[DecodeRequest]:
    return [DecodeRequest(emotion=Emotion(0.1 * (i % 7) - 0.3, 0.5 - 0.1 * (i % 5)), length=length, window=64, seed=i)
            for i in range(count)]


@needs_cuda
def test_a_seed_reproduces_its_piece_on_the_gpu():
    model, vocab = small_model("continuous_concat", CUDA)
    first = generate(model, vocab, requests(3))
    again = generate(model, vocab, requests(3))
    assert [r.tokens for r in first] == [r.tokens for r in again]


@needs_cuda
def test_on_the_gpu_a_piece_alone_is_the_piece_batched_and_joining_mid_decode():
    model, vocab = small_model("continuous_concat", CUDA)
    batch = requests(70)  # more than one 64-row tile
    alone = [generate(model, vocab, [r])[0].tokens for r in batch[:5]] + [generate(model, vocab, [batch[-1]])[0].tokens]
    together = generate(model, vocab, batch)
    assert [r.tokens for r in together[:5]] + [together[-1].tokens] == alone
    decoder = Decoder(model, vocab)
    handles = [decoder.add(r) for r in batch[:3]]
    for _ in range(7):
        decoder.step()
    handles.append(decoder.add(batch[-1]))
    while decoder.live:
        decoder.step()
    assert handles[-1].result.tokens == alone[-1] and handles[0].result.tokens == alone[0]


@needs_cuda
def test_the_gpu_decodes_every_mode_and_a_trajectory():
    for mode in ("continuous_token", "discrete_token", "none"):
        model, vocab = small_model(mode, CUDA)
        emotion = None if mode == "none" else Emotion(0.4, -0.2)
        (result,) = generate(model, vocab, [DecodeRequest(emotion=emotion, length=30, window=32, seed=2)])
        assert len(result.tokens) == 30
    model, vocab = small_model("continuous_concat", CUDA)
    rising = Trajectory.linear([Emotion(-0.6, -0.6), Emotion(0.6, 0.6)])
    (result,) = generate(model, vocab, [DecodeRequest(emotion=rising, length=80, window=48, seed=3)])
    assert len(result.tokens) == 80


@needs_cuda
def test_gpu_logits_are_near_the_cpus():
    from aria_engine.music.decoding import StepInfo

    cpu_model, vocab = small_model("continuous_concat", "cpu")
    gpu_model, _ = small_model("continuous_concat", CUDA)
    seen: dict[str, list[StepInfo]] = {"cpu": [], "cuda": []}
    generate(cpu_model, vocab, requests(1, 20), observe=seen["cpu"].append)
    tokens = seen["cpu"][-1].sequence
    # teacher-forced: the GPU's logits for the CPU's sequence
    gpu_logits = gpu_model(torch.tensor([tokens], device=CUDA), valence=-0.3, arousal=0.5)[0].float().cpu()
    cpu_logits = cpu_model(torch.tensor([tokens]), valence=-0.3, arousal=0.5)[0]
    assert (gpu_logits - cpu_logits).abs().max() < 1e-2


def main() -> int:
    """Run every test here without pytest; prints one line each, returns the failures."""
    if CUDA.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU: nothing to test")
        return 1
    failures = 0
    for name, test in sorted(globals().items()):
        if name.startswith("test_") and callable(test):
            try:
                test()
                print(f"PASS {name}")
            except Exception as error:  # report every test, then the count
                failures += 1
                print(f"FAIL {name}: {type(error).__name__}: {error}")
    print(f"{len([n for n in globals() if n.startswith('test_')]) - failures} passed, {failures} failed")
    return failures


if __name__ == "__main__":
    sys.exit(1 if main() else 0)
