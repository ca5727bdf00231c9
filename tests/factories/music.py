"""Tiny music checkpoints in the published format (model.pt, mappings.pt, model_config.pt).

Weights are random but scaled so that sampling is lively: logits spread over many tokens,
TIMESHIFTs and several instruments appear, and the emotion visibly changes the output.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from aria_engine.music.transformer import MusicTransformer
from aria_engine.music.vocab import Vocab


def tiny_config(conditioning: str, *, n_layer=2, n_head=2, d_model=32, d_inner=64, d_condition=8) -> dict:
    """model_config.pt as the training script writes it (with keys the model ignores)."""
    return {
        "vocab_size": len(Vocab.build(conditioning)),
        "n_layer": n_layer,
        "n_head": n_head,
        "d_model": d_model,
        "d_inner": d_inner,
        "dropout": 0.1,
        "d_condition": d_condition if conditioning == "continuous_concat" else -1,
        "conditioning": conditioning,
        "regression": False,
        "overwrite_dropout": False,
        "attn_type": None,
        "fast_transformers": False,
        "batch_size": 4,
        "lr": 2e-5,
    }


def randomize(model: MusicTransformer, seed: int = 0) -> MusicTransformer:
    """Fill every parameter with scaled normal noise from a private generator."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g)
            if name.endswith(".E"):
                p.copy_(0.5 * noise)
            elif "layernorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            elif name == "embedding.weight":
                p.copy_(noise / math.sqrt(p.size(1)))
            elif name.startswith("fc_condition"):
                p.copy_(noise)  # strong, so the emotion matters
            elif name == "fc.weight":
                p.copy_(1.5 * noise / math.sqrt(p.size(1)))
            elif name.endswith("weight"):
                p.copy_(noise / math.sqrt(p.size(1)))
            else:
                p.copy_(0.1 * noise)
    return model


def make_music_checkpoint(
    folder: str | Path,
    conditioning: str,
    *,
    n_layer: int = 2,
    n_head: int = 2,
    d_model: int = 32,
    d_inner: int = 64,
    d_condition: int = 8,
    seed: int = 0,
) -> Path:
    """Write a random-weight checkpoint of one conditioning mode into `folder`; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_config(
        conditioning, n_layer=n_layer, n_head=n_head, d_model=d_model, d_inner=d_inner, d_condition=d_condition
    )
    model = randomize(MusicTransformer.from_config(config), seed)
    torch.save(model.state_dict(), folder / "model.pt")
    Vocab.build(conditioning).save_mappings(folder / "mappings.pt")
    torch.save(config, folder / "model_config.pt")
    return folder
