"""ARIA's CLIP emotion encoder: `image_encoder.pt` on a transformers CLIP vision tower.

The released file is the state dict of a module holding a full `CLIPModel` (`clip_model.*`,
text tower included) and two regression heads (`valence_head.*`, `arousal_head.*`). We keep only
what an image needs: the vision tower, its projection and the heads. The vision config is read
off the tensors' shapes (ViT-L/14-336 for the published file), so smaller encoders of the same
form load too; nothing is fetched from the hub.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torch import nn

from aria_engine.emotion import Emotion

_CLIP = "clip_model."
_VISION = _CLIP + "vision_model."
_PROJECTION = _CLIP + "visual_projection.weight"
HEADS = ("valence_head", "arousal_head")
_HEAD_LINEARS = (0, 3, 6)  # Sequential indices of the three Linear layers of a head

# Parts of the released file that image inference never uses.
_UNUSED_PREFIXES = (_CLIP + "text_model.", _CLIP + "text_projection.")
_UNUSED_KEYS = (_CLIP + "logit_scale",)
# Checkpoints saved by transformers < 4.31 also hold the position-id buffers; they are rebuilt.
_POSITION_IDS = re.compile(r"^clip_model\.(text|vision)_model\.embeddings\.position_ids$")

HEAD_WIDTH = 64  # CLIP's attention heads are 64 channels wide; a checkpoint does not store the count


class ClipWeightsError(ValueError):
    """The file is not an ARIA image encoder we can load; the message says why."""


@dataclass(frozen=True)
class ClipVisionShape:
    """The vision tower's hyper-parameters, as read from a checkpoint's tensors."""

    width: int
    layers: int
    heads: int
    patch_size: int
    image_size: int
    intermediate_size: int
    projection_dim: int
    num_channels: int = 3

    def to_config(self):
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(
            hidden_size=self.width,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            patch_size=self.patch_size,
            image_size=self.image_size,
            intermediate_size=self.intermediate_size,
            projection_dim=self.projection_dim,
            num_channels=self.num_channels,
            hidden_act="quick_gelu",  # OpenAI CLIP's activation
            layer_norm_eps=1e-5,
        )


# openai/clip-vit-large-patch14-336, the tower inside ARIA's published image_encoder.pt.
VIT_L_14_336 = ClipVisionShape(
    width=1024, layers=24, heads=16, patch_size=14, image_size=336, intermediate_size=4096, projection_dim=768
)


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The file's `model_state_dict`, read without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise ClipWeightsError(f"No image encoder weights at {path}. Run `aria models pull` to download them.")
    try:
        try:  # memory-mapped, so the text tower we drop is never read into memory
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # legacy, non-zip format
    except Exception as error:  # unpickling refused, truncated file, not a torch file...
        from aria_engine.models import checkpoint_refusal

        raise ClipWeightsError(checkpoint_refusal(path.name, error)) from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model_state_dict"), dict):
        raise ClipWeightsError(f"{path.name} has no 'model_state_dict': it is not an ARIA image encoder file.")
    return checkpoint["model_state_dict"]


def vision_part(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries image inference uses; refuses anything it does not recognise."""
    kept, unexpected = {}, []
    for key, tensor in state_dict.items():
        if key.startswith(_UNUSED_PREFIXES) or key in _UNUSED_KEYS or _POSITION_IDS.match(key):
            continue
        if key.startswith((_VISION, _PROJECTION)) or key.startswith(tuple(h + "." for h in HEADS)):
            kept[key] = tensor
        else:
            unexpected.append(key)
    if unexpected:
        raise ClipWeightsError(f"Unexpected entries in the image encoder: {', '.join(sorted(unexpected)[:5])}")
    if not any(k.startswith(_VISION) for k in kept):
        raise ClipWeightsError("The image encoder has no CLIP vision tower (clip_model.vision_model.*).")
    for head in HEADS:
        if not any(k.startswith(head + ".") for k in kept):
            raise ClipWeightsError(f"The image encoder has no {head}: it is not an ARIA image encoder.")
    return kept


def _shape(state_dict: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise ClipWeightsError(f"The image encoder is missing {key}.")
    return tuple(state_dict[key].shape)


def infer_vision_shape(state_dict: dict[str, torch.Tensor], heads: int | None = None) -> ClipVisionShape:
    """Read the vision tower's hyper-parameters off the tensor shapes.

    The head count is the one number a state dict cannot tell (q/k/v are width x width whatever
    the split): we take CLIP's convention, width / 64, unless `heads` is given.
    """
    width, channels, patch, patch_w = _shape(state_dict, _VISION + "embeddings.patch_embedding.weight")
    num_positions, _ = _shape(state_dict, _VISION + "embeddings.position_embedding.weight")
    grid = math.isqrt(num_positions - 1)
    if patch != patch_w or grid * grid != num_positions - 1:
        raise ClipWeightsError("The image encoder's patch or position embeddings are not those of a square ViT.")
    layer_key = re.compile(re.escape(_VISION) + r"encoder\.layers\.(\d+)\.")
    layer_ids = {int(m.group(1)) for key in state_dict if (m := layer_key.match(key))}
    if not layer_ids or layer_ids != set(range(len(layer_ids))):
        raise ClipWeightsError("The image encoder's transformer layers are missing or not numbered 0..n-1.")
    intermediate, _ = _shape(state_dict, _VISION + "encoder.layers.0.mlp.fc1.weight")
    projection_dim, projected_width = _shape(state_dict, _PROJECTION)
    if projected_width != width:
        raise ClipWeightsError(f"visual_projection expects width {projected_width}, the tower has {width}.")
    heads = heads if heads is not None else max(1, width // HEAD_WIDTH)
    if width % heads:
        raise ClipWeightsError(f"Width {width} does not split into {heads} attention heads.")
    return ClipVisionShape(
        width=width,
        layers=len(layer_ids),
        heads=heads,
        patch_size=patch,
        image_size=grid * patch,
        intermediate_size=intermediate,
        projection_dim=projection_dim,
        num_channels=channels,
    )


def emotion_head(in_features: int, hidden: tuple[int, int]) -> nn.Sequential:
    """ARIA's regression head: Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear-Tanh."""
    h1, h2 = hidden
    return nn.Sequential(
        nn.Linear(in_features, h1), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(h1, h2), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(h2, 1), nn.Tanh(),
    )  # fmt: skip


def infer_head_hidden(state_dict: dict[str, torch.Tensor], head: str, in_features: int) -> tuple[int, int]:
    """The two hidden widths of a head, checked against the published structure."""
    (h1, i0), (h2, i3), (out, i6) = (_shape(state_dict, f"{head}.{i}.weight") for i in _HEAD_LINEARS)
    if (i0, i3, i6, out) != (in_features, h1, h2, 1):
        raise ClipWeightsError(
            f"{head} has layer shapes [{h1}x{i0}, {h2}x{i3}, {out}x{i6}]; expected "
            f"[h1x{in_features}, h2xh1, 1xh2] to follow the projection of width {in_features}."
        )
    return h1, h2


def _strip(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v.to(torch.float32) for k, v in state_dict.items() if k.startswith(prefix)}


def _load_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    try:
        module.load_state_dict(state_dict, strict=True, assign=True)
    except RuntimeError as error:
        raise ClipWeightsError(f"The image encoder's {what} does not match its inferred shape: {error}") from error


def build_vision_tower(state_dict: dict[str, torch.Tensor], shape: ClipVisionShape) -> nn.Module:
    """CLIPVisionModelWithProjection holding the checkpoint's tensors (built on the meta device,
    so no time is spent initialising weights that are overwritten at once)."""
    from transformers import CLIPVisionModelWithProjection

    with torch.device("meta"):
        tower = CLIPVisionModelWithProjection(shape.to_config())
    tower_state = {"vision_model." + k: v for k, v in _strip(state_dict, _VISION).items()}
    tower_state["visual_projection.weight"] = state_dict[_PROJECTION].to(torch.float32)
    _load_strict(tower, tower_state, "vision tower")
    # The one non-persistent buffer: position ids 0..n-1 (never stored in the file).
    embeddings = tower.vision_model.embeddings
    embeddings.position_ids = torch.arange(embeddings.num_positions).expand((1, -1))
    leftover = [name for name, t in [*tower.named_parameters(), *tower.named_buffers()] if t.is_meta]
    assert not leftover, f"tensors left unloaded: {leftover}"
    return tower


def image_processor(image_size: int):
    """CLIP preprocessing for a tower of this size: shortest side to `image_size` (bicubic),
    centre crop, CLIP mean/std. The PIL backend: no torchvision."""
    try:
        from transformers import CLIPImageProcessorPil as Processor  # transformers >= 5
    except ImportError:  # transformers 4: the plain processor is the PIL one
        from transformers import CLIPImageProcessor as Processor
    return Processor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        resample=Image.Resampling.BICUBIC,
    )


class ClipEmotionEncoder:
    """Image -> Emotion with ARIA's `image_encoder.pt`.

    The vision tower runs in `precision` (see `aria_engine.device.inference_dtype`: by default
    bf16 on GPUs, fp32 on CPUs); the two small heads always run in fp32 on fp32 features.
    """

    name = "clip"

    def __init__(
        self,
        weights: Path | dict[str, torch.Tensor],
        device: str | torch.device = "cpu",
        *,
        heads: int | None = None,
        batch_size: int | None = None,
        precision: str | None = None,
    ):
        """`weights`: the path of `image_encoder.pt`, or its `model_state_dict` already read."""
        from aria_engine.device import inference_dtype

        state_dict = vision_part(weights if isinstance(weights, dict) else load_checkpoint(weights))
        self.shape = infer_vision_shape(state_dict, heads)
        self.device = torch.device(device)
        self.dtype = inference_dtype(self.device, precision)
        self.batch_size = batch_size or (64 if self.device.type == "cuda" else 16)
        self.tower = build_vision_tower(state_dict, self.shape).to(self.device, self.dtype).eval()
        self.heads = nn.ModuleDict()
        for head in HEADS:
            width = self.shape.projection_dim
            module = emotion_head(width, infer_head_hidden(state_dict, head, width))
            _load_strict(module, _strip(state_dict, head + "."), head)
            self.heads[head] = module
        self.heads.to(self.device).eval()
        self.processor = image_processor(self.shape.image_size)

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rgb = [image.convert("RGB") for image in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)

    @torch.inference_mode()
    def predict(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 2] valence, arousal for preprocessed pixels."""
        features = self.tower(pixel_values=pixel_values.to(self.dtype)).image_embeds.float()  # projected pooled
        return torch.cat([self.heads[head](features) for head in HEADS], dim=-1)

    def encode(self, images: Sequence[Image.Image]) -> list[Emotion]:
        emotions: list[Emotion] = []
        for start in range(0, len(images), self.batch_size):
            values = self.predict(self.pixel_values(images[start : start + self.batch_size]))
            emotions.extend(Emotion.clamped(v, a) for v, a in values.cpu().tolist())
        return emotions
