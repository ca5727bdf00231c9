"""ARIA's CLIP emotion encoder against a direct transformers computation, on tiny checkpoints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

pytest.importorskip("transformers")
pytestmark = pytest.mark.neural

from transformers import CLIPConfig, CLIPModel  # noqa: E402

from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.encoders import Encoder  # noqa: E402
from aria_engine.encoders.clip import (  # noqa: E402
    VIT_L_14_336,
    ClipEmotionEncoder,
    ClipVisionShape,
    ClipWeightsError,
    infer_vision_shape,
    load_checkpoint,
    vision_part,
)
from tests.factories.clip import aria_head, make_clip_checkpoint, tiny_clip_config  # noqa: E402

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def random_images(sizes, seed=0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


IMAGE_SIZES = [(48, 40), (40, 71), (32, 32)]  # (width, height): landscape, portrait, already square


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "image_encoder.pt"
    make_clip_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint):
    return ClipEmotionEncoder(checkpoint, precision="float32")


def reference_valence_arousal(path, config: CLIPConfig, pixel_values: torch.Tensor) -> torch.Tensor:
    """The computation written out with a full transformers CLIPModel, text tower and all."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model_state_dict"]
    clip = CLIPModel(config).eval()
    clip.load_state_dict({k.removeprefix("clip_model."): v for k, v in state.items() if k.startswith("clip_model.")})
    values = []
    with torch.no_grad():
        output = clip.get_image_features(pixel_values=pixel_values)
        features = output if isinstance(output, torch.Tensor) else output.pooler_output
        for head_name in ("valence_head", "arousal_head"):
            weights = {k.removeprefix(head_name + "."): v for k, v in state.items() if k.startswith(head_name + ".")}
            head = aria_head(config.projection_dim, (weights["0.weight"].shape[0], weights["3.weight"].shape[0]))
            head.load_state_dict(weights)
            values.append(head.eval()(features))
    return torch.cat(values, dim=-1)


def manual_preprocess(image: Image.Image, size: int) -> torch.Tensor:
    """CLIP preprocessing by hand: shortest side to `size` (bicubic), centre crop, mean/std."""
    w, h = image.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    resized = np.asarray(image.resize((new_w, new_h), Image.Resampling.BICUBIC), dtype=np.float64) / 255.0
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = resized[top : top + size, left : left + size]
    return torch.tensor(((crop - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1), dtype=torch.float32)


def test_inferred_shape_equals_the_factorys(checkpoint):
    shape = infer_vision_shape(vision_part(load_checkpoint(checkpoint)))
    assert shape == ClipVisionShape(
        width=128, layers=2, heads=2, patch_size=8, image_size=32, intermediate_size=512, projection_dim=16
    )


def test_published_tower_shape_is_vit_l_14_336():
    """The shapes of openai/clip-vit-large-patch14-336 (built on the meta device) give the default."""
    config = CLIPConfig(
        vision_config=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           patch_size=14, image_size=336),
        text_config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
        projection_dim=768,
    )  # fmt: skip
    with torch.device("meta"):
        clip = CLIPModel(config)
    state = {"clip_model." + k: v for k, v in clip.state_dict().items()}
    for head in ("valence_head", "arousal_head"):
        for i, shape in ((0, (384, 768)), (3, (192, 384)), (6, (1, 192))):
            state[f"{head}.{i}.weight"] = torch.empty(shape, device="meta")
    assert infer_vision_shape(vision_part(state)) == VIT_L_14_336


def test_encoder_protocol_and_outputs(encoder):
    as_protocol: Encoder = encoder  # type-checks as the engine's Encoder
    assert as_protocol.name == "clip"
    emotions = encoder.encode(random_images(IMAGE_SIZES))
    assert len(emotions) == 3 and all(isinstance(e, Emotion) for e in emotions)
    assert len({(e.valence, e.arousal) for e in emotions}) == 3  # different pictures, different points


def test_preprocessing_is_clip_preprocessing(encoder):
    images = random_images(IMAGE_SIZES, seed=1)
    pixels = encoder.pixel_values(images)
    assert pixels.shape == (3, 3, 32, 32)
    for got, image in zip(pixels, images):
        torch.testing.assert_close(got, manual_preprocess(image, 32), atol=1e-5, rtol=0)


def test_same_valence_arousal_as_direct_transformers(encoder, checkpoint):
    images = random_images(IMAGE_SIZES, seed=2)
    pixels = torch.stack([manual_preprocess(image, 32) for image in images])
    expected = reference_valence_arousal(checkpoint, tiny_clip_config(), pixels)
    got = torch.tensor([[e.valence, e.arousal] for e in encoder.encode(images)])
    assert expected.abs().max() > 0.05  # the comparison is between real, non-trivial values
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_batch_equals_singles(encoder):
    images = random_images(IMAGE_SIZES, seed=3)
    batched = encoder.encode(images)
    singles = [encoder.encode([image])[0] for image in images]
    for b, s in zip(batched, singles):
        assert b.valence == pytest.approx(s.valence, abs=1e-5) and b.arousal == pytest.approx(s.arousal, abs=1e-5)


def test_batches_larger_than_batch_size(checkpoint):
    images = random_images(IMAGE_SIZES * 2, seed=4)
    small_batches = ClipEmotionEncoder(checkpoint, batch_size=2, precision="float32").encode(images)
    one_batch = ClipEmotionEncoder(checkpoint, batch_size=16, precision="float32").encode(images)
    flat = lambda emotions: [x for e in emotions for x in (e.valence, e.arousal)]  # noqa: E731
    assert flat(small_batches) == pytest.approx(flat(one_batch), abs=1e-5)


def test_keeps_only_the_vision_tower(encoder):
    names = [name for name, _ in encoder.tower.named_parameters()]
    assert names and not any("text" in name for name in names)


def test_file_without_text_tower_gives_the_same_result(tmp_path, encoder):
    path = tmp_path / "vision_only.pt"
    make_clip_checkpoint(path, with_text_tower=False)
    images = random_images(IMAGE_SIZES, seed=5)
    assert ClipEmotionEncoder(path, precision="float32").encode(images) == encoder.encode(images)


def test_other_sizes_load(tmp_path):
    path = tmp_path / "other.pt"
    make_clip_checkpoint(path, image_size=28, patch=7, width=192, layers=3, heads=3, projection_dim=24)
    encoder = ClipEmotionEncoder(path, precision="float32")
    assert encoder.shape == ClipVisionShape(
        width=192, layers=3, heads=3, patch_size=7, image_size=28, intermediate_size=768, projection_dim=24
    )
    images = random_images(IMAGE_SIZES, seed=6)
    pixels = torch.stack([manual_preprocess(image, 28) for image in images])
    expected = reference_valence_arousal(
        path, tiny_clip_config(image_size=28, patch=7, width=192, layers=3, heads=3, projection_dim=24), pixels
    )
    got = torch.tensor([[e.valence, e.arousal] for e in encoder.encode(images)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_head_count_outside_the_convention_is_given_explicitly(tmp_path):
    """width 64 with 2 heads is not CLIP's width/64 rule: the count must be passed."""
    path = tmp_path / "narrow_heads.pt"
    make_clip_checkpoint(path, width=64, heads=2)
    images = random_images(IMAGE_SIZES, seed=7)
    pixels = torch.stack([manual_preprocess(image, 32) for image in images])
    expected = reference_valence_arousal(path, tiny_clip_config(width=64, heads=2), pixels)
    assert ClipEmotionEncoder(path, precision="float32").shape.heads == 1
    got = torch.tensor([[e.valence, e.arousal] for e in ClipEmotionEncoder(path, heads=2, precision="float32").encode(images)])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_legacy_position_ids_are_accepted(tmp_path, checkpoint, encoder):
    state = torch.load(checkpoint, weights_only=True)["model_state_dict"]
    state["clip_model.vision_model.embeddings.position_ids"] = torch.arange(17).expand((1, -1))
    state["clip_model.text_model.embeddings.position_ids"] = torch.arange(16).expand((1, -1))
    path = tmp_path / "legacy.pt"
    torch.save({"model_state_dict": state}, path)
    images = random_images(IMAGE_SIZES[:1], seed=8)
    assert ClipEmotionEncoder(path, precision="float32").encode(images) == encoder.encode(images)


# ---- files that are not ARIA image encoders -------------------------------------------------


def edited_checkpoint(tmp_path, source, edit) -> str:
    state = torch.load(source, weights_only=True)["model_state_dict"]
    edit(state)
    path = tmp_path / "edited.pt"
    torch.save({"model_state_dict": state}, path)
    return path


def test_missing_heads_is_a_clear_error(tmp_path):
    path = tmp_path / "no_heads.pt"
    make_clip_checkpoint(path, drop=("arousal_head.",))
    with pytest.raises(ClipWeightsError, match="no arousal_head"):
        ClipEmotionEncoder(path, precision="float32")


def test_head_of_the_wrong_width_is_a_clear_error(tmp_path, checkpoint):
    def widen(state):
        state["valence_head.0.weight"] = torch.zeros(8, 20)

    with pytest.raises(ClipWeightsError, match=r"valence_head has layer shapes \[8x20"):
        ClipEmotionEncoder(edited_checkpoint(tmp_path, checkpoint, widen))


def test_head_with_a_missing_layer_is_a_clear_error(tmp_path, checkpoint):
    def drop_bias(state):
        del state["arousal_head.3.bias"]

    with pytest.raises(ClipWeightsError, match="arousal_head does not match"):
        ClipEmotionEncoder(edited_checkpoint(tmp_path, checkpoint, drop_bias))


def test_tower_tensor_of_the_wrong_shape_is_a_clear_error(tmp_path, checkpoint):
    def transpose(state):
        key = "clip_model.vision_model.encoder.layers.1.mlp.fc2.weight"
        state[key] = state[key].t().contiguous()

    with pytest.raises(ClipWeightsError, match="vision tower does not match"):
        ClipEmotionEncoder(edited_checkpoint(tmp_path, checkpoint, transpose))


def test_unexpected_entries_are_refused(tmp_path, checkpoint):
    def add(state):
        state["emotion_classifier.weight"] = torch.zeros(2, 2)

    with pytest.raises(ClipWeightsError, match="Unexpected entries.*emotion_classifier"):
        ClipEmotionEncoder(edited_checkpoint(tmp_path, checkpoint, add))


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"definitely not a torch file")
    with pytest.raises(ClipWeightsError, match="junk.pt was not loaded: it is damaged"):
        ClipEmotionEncoder(junk)
    with pytest.raises(ClipWeightsError, match="aria models pull"):
        ClipEmotionEncoder(tmp_path / "absent.pt")
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(1)}, plain)
    with pytest.raises(ClipWeightsError, match="no 'model_state_dict'"):
        ClipEmotionEncoder(plain)


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_arbitrary_objects_are_never_unpickled(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model_state_dict": _Payload()}, f)
    with pytest.raises(ClipWeightsError, match="evil.pt was not loaded"):
        ClipEmotionEncoder(path, precision="float32")
    assert "unpickled!" not in capsys.readouterr().out
