"""The Music Transformer of midi-emotion / ARIA, parameter for parameter.

One module covers the four conditioning modes. Parameter names and shapes are the published
ones, so `load_state_dict(strict=True)` accepts the released `model.pt` files. `forward` is the
plain full-sequence pass of the specification: the oracle the cached decoder is tested against.

Modes: `none` (no condition), `discrete_token` (two emotion tokens prepended by the caller, as
ordinary tokens), `continuous_token` (two condition vectors prepended on the sequence axis),
`continuous_concat` (a condition vector concatenated to every position's embedding).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from aria_engine.music.vocab import Vocab

MAX_SEQ = 2048  # fixed by the format: rows of each layer's relative embedding E
PAD_ID = 0
CONDITIONINGS = ("none", "discrete_token", "continuous_token", "continuous_concat")


class CheckpointError(ValueError):
    """A checkpoint folder whose files do not fit the published format."""


@dataclass(frozen=True)
class ModelConfig:
    """The keys of model_config.pt the architecture needs."""

    vocab_size: int
    n_layer: int
    n_head: int
    d_model: int
    d_inner: int
    d_condition: int  # -1 unless continuous_concat
    conditioning: str

    @classmethod
    def from_dict(cls, cfg: dict) -> "ModelConfig":
        needed = ("vocab_size", "n_layer", "n_head", "d_model", "d_inner", "conditioning")
        missing = [key for key in needed if key not in cfg]
        if missing:
            raise CheckpointError(f"model config lacks {', '.join(missing)}")
        if cfg["conditioning"] not in CONDITIONINGS:
            raise CheckpointError(f"unknown conditioning {cfg['conditioning']!r}")
        if cfg.get("regression", False):
            raise CheckpointError("this is an emotion regression model, not a music generator")
        d_condition = int(cfg.get("d_condition", -1) if cfg["conditioning"] == "continuous_concat" else -1)
        config = cls(
            vocab_size=int(cfg["vocab_size"]),
            n_layer=int(cfg["n_layer"]),
            n_head=int(cfg["n_head"]),
            d_model=int(cfg["d_model"]),
            d_inner=int(cfg["d_inner"]),
            d_condition=d_condition,
            conditioning=cfg["conditioning"],
        )
        if config.d_model % config.n_head:
            raise CheckpointError("d_model must be a multiple of n_head")
        if config.conditioning == "continuous_concat" and not 0 < config.d_condition < config.d_model:
            raise CheckpointError("continuous_concat needs 0 < d_condition < d_model")
        return config

    @property
    def condition_width(self) -> int:
        """Channels of each position taken by the concatenated condition (0 outside concat)."""
        return max(self.d_condition, 0)

    @property
    def prefix_len(self) -> int:
        """Positions the condition occupies before the tokens (2 for the token modes)."""
        return 2 if self.conditioning in ("continuous_token", "discrete_token") else 0


def sinusoid_table(max_seq: int, d: int) -> torch.Tensor:
    """Absolute positions: channel i even sin(pos / 10000^(i/d)), odd cos(pos / 10000^((i-1)/d)).
    Computed in float64 and rounded once, as the reference does."""
    pos = torch.arange(max_seq, dtype=torch.float64)[:, None]
    i = torch.arange(d)
    angle = pos / torch.pow(10000.0, (i - i % 2).to(torch.float64) / d)
    table = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32)


def relative_attention(q, k, v, E, q_pos, key_is_pad=None):
    """Music Transformer relative global attention.

    q: [B, H, Lq, dh] at absolute positions q_pos [B, Lq]; k, v: [B, H, Lk, dh] at positions
    0..Lk-1. logit[i, j] = (q_i . k_j + q_i . E[2047 - (i - j)]) / sqrt(dh); keys j > i, and keys
    whose token is <PAD> (key_is_pad [B, Lk]), are masked.
    """
    Lk, dh = k.size(-2), q.size(-1)
    distance = q_pos[:, None, :, None] - torch.arange(Lk, device=q.device)  # [B, 1, Lq, Lk]: i - j
    # q . E[m] for the last Lk rows of E (column c is row 2048 - Lk + c); then each (i, j)
    # picks row 2047 - (i - j), that is column Lk - 1 - (i - j).
    qe = q @ E[E.size(0) - Lk :].transpose(0, 1)  # [B, H, Lq, Lk]
    rel = qe.gather(-1, (Lk - 1 - distance).clamp(0, Lk - 1).expand(-1, q.size(1), -1, -1))
    logits = (q @ k.transpose(-2, -1) + rel) / math.sqrt(dh)
    masked = distance < 0
    if key_is_pad is not None:
        masked = masked | key_is_pad[:, None, None, :]
    logits = logits.masked_fill(masked, float("-inf"))
    return torch.softmax(logits, dim=-1) @ v


class RelativeGlobalAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head, self.dh = n_head, d_model // n_head
        self.Wq = nn.Linear(d_model, d_model)
        self.Wk = nn.Linear(d_model, d_model)
        self.Wv = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)
        self.E = nn.Parameter(torch.randn(MAX_SEQ, self.dh))

    def heads(self, x):  # [B, L, d] -> [B, H, L, dh]
        return x.view(x.size(0), x.size(1), self.n_head, self.dh).transpose(1, 2)

    def forward(self, x, q_pos, key_is_pad=None, cache=None):
        """`cache`, when given, keeps this call's keys and values (see kv_cache.KVCache)."""
        q, k, v = self.heads(self.Wq(x)), self.heads(self.Wk(x)), self.heads(self.Wv(x))
        if cache is None:
            y = relative_attention(q, k, v, self.E, q_pos, key_is_pad)
        else:
            y = cache.attend(q, k, v, q_pos, self.E)
        return self.fc(y.transpose(1, 2).reshape(x.shape))


class EncoderLayer(nn.Module):
    """Post-norm: x1 = LN1(attn(x) + x); x2 = LN2(x1 + FFN(x1))."""

    def __init__(self, d_model: int, d_inner: int, n_head: int):
        super().__init__()
        self.rga = RelativeGlobalAttention(d_model, n_head)
        self.FFN_pre = nn.Linear(d_model, d_inner)
        self.FFN_suf = nn.Linear(d_inner, d_model)
        self.layernorm1 = nn.LayerNorm(d_model, eps=1e-6)
        self.layernorm2 = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x, q_pos, key_is_pad=None, cache=None):
        x1 = self.layernorm1(self.rga(x, q_pos, key_is_pad, cache) + x)
        return self.layernorm2(x1 + self.FFN_suf(F.relu(self.FFN_pre(x1))))


class MusicTransformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d, dc = config.d_model, config.condition_width
        self.embedding = nn.Embedding(config.vocab_size, d - dc, padding_idx=PAD_ID)
        if config.conditioning == "continuous_concat":
            self.fc_condition = nn.Linear(2, dc)
        elif config.conditioning == "continuous_token":
            self.fc_condition = nn.ModuleList([nn.Linear(1, d), nn.Linear(1, d)])  # valence, arousal
        self.enc_layers = nn.ModuleList(
            EncoderLayer(d, config.d_inner, config.n_head) for _ in range(config.n_layer)
        )
        self.fc = nn.Linear(d, config.vocab_size)
        self.register_buffer("positions", sinusoid_table(MAX_SEQ, d), persistent=False)

    @classmethod
    def from_config(cls, cfg: dict | ModelConfig) -> "MusicTransformer":
        return cls(cfg if isinstance(cfg, ModelConfig) else ModelConfig.from_dict(cfg))

    @property
    def conditioning(self) -> str:
        return self.config.conditioning

    # -- the pieces of the forward pass, shared with the cached decoder ----------------------

    def condition_vector(self, valence=None, arousal=None):
        """[B, 2] float32 (valence, arousal) for the continuous modes, else None."""
        if self.conditioning not in ("continuous_token", "continuous_concat"):
            return None
        if valence is None or arousal is None:
            raise ValueError(f"a {self.conditioning} model needs valence and arousal")
        device = self.positions.device
        v = torch.as_tensor(valence, dtype=torch.float32, device=device).reshape(-1)
        a = torch.as_tensor(arousal, dtype=torch.float32, device=device).reshape(-1)
        return torch.stack([v, a], dim=-1)

    def embed_tokens(self, tokens, condition=None):
        """Token embeddings scaled by sqrt(d - dc), with the concat condition appended."""
        x = self.embedding(tokens) * math.sqrt(self.config.d_model - self.config.condition_width)
        if self.conditioning == "continuous_concat":
            c = self.fc_condition(condition)
            x = torch.cat([x, c[:, None, :].expand(-1, x.size(1), -1)], dim=-1)
        return x

    def condition_prefix(self, condition):
        """continuous_token: the two condition vectors placed before the tokens, [B, 2, d]."""
        return torch.stack([self.fc_condition[0](condition[:, 0:1]), self.fc_condition[1](condition[:, 1:2])], dim=1)

    def run_layers(self, x, q_pos, key_is_pad=None, caches=None):
        """Add the absolute sinusoid at q_pos [B, L] and run every layer."""
        x = x + self.positions[q_pos]
        for i, layer in enumerate(self.enc_layers):
            x = layer(x, q_pos, key_is_pad, None if caches is None else caches[i])
        return x

    # -- the oracle --------------------------------------------------------------------------

    def forward(self, tokens, valence=None, arousal=None):
        """Full-sequence logits [B, L', V], batch first, exactly as the specification states.

        For continuous_token L' = L + 2 (the two condition positions come first); for
        discrete_token the caller puts the two emotion tokens at the start of `tokens`.
        """
        condition = self.condition_vector(valence, arousal)
        if condition is not None and condition.size(0) == 1 < tokens.size(0):
            condition = condition.expand(tokens.size(0), -1)
        x = self.embed_tokens(tokens, condition)
        key_is_pad = tokens == PAD_ID
        if self.conditioning == "continuous_token":
            x = torch.cat([self.condition_prefix(condition), x], dim=1)
            key_is_pad = F.pad(key_is_pad, (2, 0), value=False)
        q_pos = torch.arange(x.size(1), device=x.device).expand(x.size(0), -1)
        return self.fc(self.run_layers(x, q_pos, key_is_pad))


# -- checkpoints on disk ------------------------------------------------------------------------

CHECKPOINT_FILES = ("model.pt", "mappings.pt", "model_config.pt")
_STATE_DICT_KEYS = ("model_state_dict", "state_dict", "model")


def _load_trusted_format(path: Path):
    """torch.load with weights_only=True (tensors, dicts, lists, tuples, strings, numbers only).
    weights_only=False is never used: an untrusted file cannot run code."""
    from aria_engine.models import load_data_only

    try:
        return load_data_only(path)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path.name} holds objects outside the checkpoint format: {exc}") from exc
    except Exception as exc:  # a damaged or foreign file: torch raises nearly anything (KeyError, EOFError...)
        raise CheckpointError(f"{path.name} could not be read ({type(exc).__name__}: {exc})") from exc


def _unwrap_state_dict(obj) -> dict:
    """model.pt is a bare state dict; tolerate one wrapped under a common key."""
    if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for key in _STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError("model.pt does not hold a state dict of tensors")
    if obj and all(name.startswith("module.") for name in obj):  # saved from DataParallel
        obj = {name[len("module.") :]: t for name, t in obj.items()}
    return obj


def load_checkpoint(folder: str | Path) -> tuple[MusicTransformer, Vocab, dict]:
    """Read model.pt, mappings.pt and model_config.pt from one folder: (model, vocab, config).
    The weights must match the architecture exactly (strict=True)."""
    folder = Path(folder)
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a music checkpoint: missing {', '.join(missing)}")
    config = _load_trusted_format(folder / "model_config.pt")
    if not isinstance(config, dict):
        raise CheckpointError("model_config.pt does not hold a dict")
    vocab = Vocab.load(folder / "mappings.pt")
    if int(config.get("vocab_size", -1)) != len(vocab):
        raise CheckpointError(f"model_config says vocab_size {config.get('vocab_size')}, mappings.pt has {len(vocab)} tokens")
    state = _unwrap_state_dict(_load_trusted_format(folder / "model.pt"))
    with torch.device("meta"):  # no random init of weights about to be replaced
        model = MusicTransformer.from_config(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise CheckpointError(f"model.pt does not match model_config.pt: {exc}") from exc
    model.positions = sinusoid_table(MAX_SEQ, model.config.d_model)
    model.float().eval().requires_grad_(False)
    return model, vocab, config


def published_config(conditioning: str = "continuous_concat", vocab_size: int | None = None) -> dict:
    """model_config.pt as the published models have it (20 layers, d 768, 16 heads)."""
    if vocab_size is None:
        vocab_size = len(Vocab.build(conditioning))
    return {
        "vocab_size": vocab_size,
        "n_layer": 20,
        "n_head": 16,
        "d_model": 768,
        "d_inner": 3072,
        "dropout": 0.1,
        "d_condition": 192 if conditioning == "continuous_concat" else -1,
        "conditioning": conditioning,
        "regression": False,
        "overwrite_dropout": False,
        "attn_type": None,
        "fast_transformers": False,
    }
