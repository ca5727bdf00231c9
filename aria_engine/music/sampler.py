"""The reference sampler (midi-emotion's `generate`), one request's row of logits at a time.

Operations, shapes and dtypes are the reference's for a batch of one, so a request seeded with
`generator.manual_seed(s)` draws the tokens the reference run draws after `torch.manual_seed(s)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

PENALTY_COEFF = 0.5  # the reference's repetition penalty coefficient


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


