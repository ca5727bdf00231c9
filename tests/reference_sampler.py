"""The reference generation loop, restated literally from the specification: the test oracle.

Deliberately naive: one request, the whole input window through the model's full forward at
every step, the global RNG seeded with `torch.manual_seed`, time-major tensors and Python lists as
the original keeps them. Nothing here is shared with aria_engine.music.decoding's sampler.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_generate(
    model,
    maps: dict,
    *,
    conditioning: str,
    seed: int,
    gen_len: int,
    condition: tuple[float, float] | None = None,
    varying_condition: list[tuple[float, float]] | None = None,
    discrete_condition: tuple[str, str] | None = None,
    max_input_len: int = 1216,
    temperatures=(1.2, 1.2),
    top_k: int = -1,
    top_p: float = 0.7,
    penalty_coeff: float = 0.5,
    min_n_instruments: int = 1,
    max_attempts: int = 5,
    repeat_trace: list[int] | None = None,
) -> tuple[list[int], int]:
    """torch.manual_seed(seed), then generate (retrying while too few instruments, as the
    original's driver loop does, capped). Returns (the last attempt's tokens after <START>,
    attempts). `gen_len` counts <START>, as the original's does. `repeat_trace`, if given,
    collects the repetition counter before each step (for tests that need the penalty to bite)."""
    torch.manual_seed(seed)
    for attempt in range(1, max_attempts + 1):
        song = _generate_once(
            model, maps, conditioning, gen_len, condition, varying_condition, discrete_condition,
            max_input_len, list(temperatures), top_k, top_p, penalty_coeff, repeat_trace,
        )
        if _n_instruments(song, maps) >= min_n_instruments:
            break
    return song[1:], attempt


def _generate_once(model, maps, conditioning, gen_len, condition, varying_condition, discrete_condition,
                   max_input_len, temperatures, top_k, top_p, penalty_coeff, repeat_trace=None) -> list[int]:
    batch_size = 1
    repeat_counts = [0 for _ in range(batch_size)]
    exclude_symbols = [symbol for symbol in maps["tuple2idx"].keys() if symbol[0] == "<"]
    gen_song_tensor = torch.LongTensor([])
    gen_inds = torch.LongTensor([[maps["tuple2idx"]["<START>"]]]).t()  # [time, batch]

    conditions_tensor = None
    if conditioning in ("continuous_token", "continuous_concat") and condition is not None:
        conditions_tensor = torch.FloatTensor([list(condition)])
    if conditioning == "continuous_token":
        max_input_len -= 2
    if conditioning == "discrete_token":
        discrete_tensor = torch.LongTensor([[maps["tuple2idx"][s] for s in discrete_condition]]).t()
        max_input_len -= discrete_tensor.size(0)

    with torch.no_grad():
        i = 0
        while i < gen_len:
            i += 1
            gen_song_tensor = torch.cat((gen_song_tensor, gen_inds), 0)
            input_ = gen_song_tensor
            if len(gen_song_tensor) > max_input_len:
                input_ = input_[-max_input_len:, :]
            if conditioning == "discrete_token":
                input_ = torch.cat((discrete_tensor, input_), 0)
            if varying_condition is not None:
                conditions_tensor = torch.FloatTensor([list(varying_condition[i - 1])])

            if conditioning in ("continuous_token", "continuous_concat"):
                output = model(input_.t(), valence=conditions_tensor[:, 0], arousal=conditions_tensor[:, 1])
            else:
                output = model(input_.t())
            output = output.permute((1, 0, 2))
            output = output[-1, :, :]
            output[output != output] = 0

            for symbol_exclude in exclude_symbols:
                output[:, maps["tuple2idx"][symbol_exclude]] = -float("inf")

            effective_temps = []
            for j in range(batch_size):
                gen_tuple = maps["idx2tuple"][gen_inds[0, j].item()]
                effective_temp = temperatures[1]
                if isinstance(gen_tuple, tuple):
                    if "TIMESHIFT" in maps["idx2event"][gen_tuple[0]]:
                        effective_temp = temperatures[0]
                effective_temps.append(effective_temp)
            temp_tensor = torch.Tensor([effective_temps])

            output = F.log_softmax(output, dim=-1)
            if repeat_trace is not None:
                repeat_trace.append(repeat_counts[0])
            if penalty_coeff > 0:
                repeat_counts_array = torch.Tensor(repeat_counts)
                temp_multiplier = torch.maximum(
                    torch.zeros_like(repeat_counts_array), torch.log((repeat_counts_array + 1) / 4) * penalty_coeff
                )
                temp_tensor += temp_multiplier * temp_tensor
            output /= temp_tensor.t()

            top_k_eff = output.size(-1) if top_k <= 0 or top_k > output.size(-1) else top_k
            output, top_inds = torch.topk(output, top_k_eff)
            if 0 < top_p < 1:
                cumulative_probs = torch.cumsum(F.softmax(output, dim=-1), dim=-1)
                remove_inds = cumulative_probs > top_p
                remove_inds[:, 0] = False
                output[remove_inds] = -float("inf")
            output = F.softmax(output, dim=-1)
            inds_sampled = torch.multinomial(output, 1, replacement=True)
            gen_inds = top_inds.gather(1, inds_sampled).t()

            num_choices = torch.sum((output > 0).int(), -1)
            for j in range(batch_size):
                if num_choices[j] <= 2:
                    repeat_counts[j] += 1
                else:
                    repeat_counts[j] = repeat_counts[j] // 2
    return gen_song_tensor[:, 0].tolist()


def _n_instruments(song: list[int], maps: dict) -> int:
    names = set()
    for idx in song:
        token = maps["idx2tuple"][idx]
        if isinstance(token, tuple):
            parts = f"{maps['idx2event'][token[0]]}_{token[1]}".split("_")
            if len(parts) == 3:
                names.add(parts[1])
    return len(names)
