"""Tiny ARIA image encoders in the published `image_encoder.pt` format (random weights).

The published module holds a transformers `CLIPModel` as `clip_model` (text tower included) and
two heads `valence_head` / `arousal_head` (Linear-ReLU-Dropout x2, Linear-Tanh; linear layers at
Sequential indices 0, 3, 6). Here the same module is built at toy size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel


def tiny_clip_config(
    *, image_size: int = 32, patch: int = 8, width: int = 128, layers: int = 2, heads: int = 2, projection_dim: int = 16
) -> CLIPConfig:
    """A CLIPConfig with a small vision tower and an even smaller text tower."""
    vision = dict(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        patch_size=patch,
        image_size=image_size,
        hidden_act="quick_gelu",
    )
    text = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=64,
        vocab_size=99,
        bos_token_id=97,
        eos_token_id=98,
        pad_token_id=1,
        max_position_embeddings=16,
        hidden_act="quick_gelu",
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def aria_head(in_features: int, hidden: tuple[int, int]) -> nn.Sequential:
    h1, h2 = hidden
    return nn.Sequential(
        nn.Linear(in_features, h1), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(h2, 1), nn.Tanh(),
    )  # fmt: skip


class AriaImageEncoderModule(nn.Module):
    """The module whose state dict image_encoder.pt holds."""

    def __init__(self, config: CLIPConfig, head_hidden: tuple[int, int]):
        super().__init__()
        self.clip_model = CLIPModel(config)
        self.valence_head = aria_head(config.projection_dim, head_hidden)
        self.arousal_head = aria_head(config.projection_dim, head_hidden)


def make_clip_module(
    *,
    image_size: int = 32,
    patch: int = 8,
    width: int = 128,
    layers: int = 2,
    heads: int = 2,
    projection_dim: int = 16,
    head_hidden: tuple[int, int] | None = None,
    seed: int = 0,
) -> AriaImageEncoderModule:
    torch.manual_seed(seed)
    config = tiny_clip_config(
        image_size=image_size, patch=patch, width=width, layers=layers, heads=heads, projection_dim=projection_dim
    )
    # The published heads are 768 -> 384 -> 192 -> 1: halve twice.
    hidden = head_hidden or (max(2, projection_dim // 2), max(2, projection_dim // 4))
    module = AriaImageEncoderModule(config, hidden).eval()
    with torch.no_grad():  # larger head weights, so outputs spread over (-1, 1) instead of hugging 0
        for head in (module.valence_head, module.arousal_head):
            for i in (0, 3, 6):
                head[i].weight.mul_(1.5)
    return module


def make_clip_checkpoint(
    path: Path,
    *,
    image_size: int = 32,
    patch: int = 8,
    width: int = 128,
    layers: int = 2,
    heads: int = 2,
    projection_dim: int = 16,
    with_text_tower: bool = True,
    head_hidden: tuple[int, int] | None = None,
    seed: int = 0,
    drop: tuple[str, ...] = (),
) -> AriaImageEncoderModule:
    """Write `{"model_state_dict": ...}` to `path` and return the module it came from.

    `drop` removes entries whose key starts with any of the given prefixes (to make broken files).
    """
    module = make_clip_module(
        image_size=image_size,
        patch=patch,
        width=width,
        layers=layers,
        heads=heads,
        projection_dim=projection_dim,
        head_hidden=head_hidden,
        seed=seed,
    )
    state = module.state_dict()
    if not with_text_tower:
        text = ("clip_model.text_model.", "clip_model.text_projection.", "clip_model.logit_scale")
        state = {k: v for k, v in state.items() if not k.startswith(text)}
    state = {k: v for k, v in state.items() if not k.startswith(drop)}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state_dict": state}, path)
    return module
