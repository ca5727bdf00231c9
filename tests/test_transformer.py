"""The Music Transformer: published parameter names and shapes, strict loading, the oracle's maths."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from aria_engine.music.transformer import (  # noqa: E402
    CheckpointError,
    MusicTransformer,
    load_checkpoint,
    published_config,
    relative_attention,
)
from aria_engine.music.vocab import Vocab  # noqa: E402
from tests.factories.music import make_music_checkpoint, tiny_config  # noqa: E402

MODES = ("none", "discrete_token", "continuous_token", "continuous_concat")


def published_shapes(conditioning: str, V: int) -> dict[str, tuple[int, ...]]:
    """The specification's table, written out independently of the model code."""
    d, d_inner, dh = 768, 3072, 48
    dc = 192 if conditioning == "continuous_concat" else 0
    shapes = {"embedding.weight": (V, d - dc), "fc.weight": (V, d), "fc.bias": (V,)}
    if conditioning == "continuous_concat":
        shapes |= {"fc_condition.weight": (dc, 2), "fc_condition.bias": (dc,)}
    if conditioning == "continuous_token":
        for i in (0, 1):
            shapes |= {f"fc_condition.{i}.weight": (d, 1), f"fc_condition.{i}.bias": (d,)}
    for i in range(20):
        p = f"enc_layers.{i}."
        shapes[p + "rga.E"] = (2048, dh)
        for name in ("Wq", "Wk", "Wv", "fc"):
            shapes |= {p + f"rga.{name}.weight": (d, d), p + f"rga.{name}.bias": (d,)}
        shapes |= {p + "FFN_pre.weight": (d_inner, d), p + "FFN_pre.bias": (d_inner,)}
        shapes |= {p + "FFN_suf.weight": (d, d_inner), p + "FFN_suf.bias": (d,)}
        for ln in ("layernorm1", "layernorm2"):
            shapes |= {p + f"{ln}.weight": (d,), p + f"{ln}.bias": (d,)}
    return shapes


@pytest.mark.parametrize("mode", MODES)
def test_published_size_has_the_published_names_and_shapes(mode):
    V = len(Vocab.build(mode))
    with torch.device("meta"):
        model = MusicTransformer.from_config(published_config(mode))
    got = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert got == published_shapes(mode, V)
    n_params = sum(t.numel() for t in model.parameters())
    assert 140e6 < n_params < 150e6  # "about 145M"


@pytest.mark.parametrize("mode", MODES)
def test_tiny_checkpoint_loads_strictly(tmp_path, mode):
    folder = make_music_checkpoint(tmp_path / mode, mode)
    model, vocab, config = load_checkpoint(folder)
    assert config["conditioning"] == mode
    assert len(vocab) == config["vocab_size"] == (1017 if mode == "discrete_token" else 1007)
    saved = torch.load(folder / "model.pt", weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
    assert not any(p.requires_grad for p in model.parameters())


def test_a_wrapped_state_dict_loads_too(tmp_path):
    folder = make_music_checkpoint(tmp_path / "m", "continuous_concat")
    state = torch.load(folder / "model.pt", weights_only=True)
    torch.save({"model_state_dict": state, "epoch": 3}, folder / "model.pt")
    model, _, _ = load_checkpoint(folder)
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_mismatched_weights_are_refused_with_a_clear_message(tmp_path):
    folder = make_music_checkpoint(tmp_path / "m", "continuous_concat")
    state = torch.load(folder / "model.pt", weights_only=True)
    del state["enc_layers.1.rga.E"]
    torch.save(state, folder / "model.pt")
    with pytest.raises(CheckpointError, match="enc_layers.1.rga.E"):
        load_checkpoint(folder)


def test_missing_files_are_named(tmp_path):
    folder = make_music_checkpoint(tmp_path / "m", "none")
    (folder / "mappings.pt").unlink()
    with pytest.raises(FileNotFoundError, match="mappings.pt"):
        load_checkpoint(folder)


def test_pickled_code_is_never_run(tmp_path):
    folder = make_music_checkpoint(tmp_path / "m", "none")

    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"n_layer": Boom()}, folder / "model_config.pt")
    with pytest.raises(CheckpointError, match="model_config.pt"):
        load_checkpoint(folder)


def _skewed_relative_logits(q, E):
    """The Music Transformer paper's skewing procedure (pad, reshape, slice) for Lq == Lk,
    restated independently of the model's gather formulation."""
    L = q.size(-2)
    qe = torch.einsum("bhld,md->bhlm", q, E[E.size(0) - L :])
    keep = torch.arange(L)[None, :] >= (L - 1 - torch.arange(L))[:, None]  # zero the unused corner
    qe = qe * keep
    padded = F.pad(qe, [1, 0])
    return padded.reshape(q.size(0), q.size(1), L + 1, L)[:, :, 1:, :]


def test_relative_attention_matches_the_skewing_formulation():
    torch.manual_seed(0)
    B, H, L, dh = 2, 3, 7, 4
    q, k, v = (torch.randn(B, H, L, dh) for _ in range(3))
    E = torch.randn(2048, dh)
    logits = (q @ k.transpose(-2, -1) + _skewed_relative_logits(q, E)) / math.sqrt(dh)
    causal = torch.ones(L, L).tril().bool()
    expected = torch.softmax(logits.masked_fill(~causal, float("-inf")), -1) @ v
    got = relative_attention(q, k, v, E, torch.arange(L).expand(B, -1))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_relative_attention_is_the_spec_formula_entry_by_entry():
    torch.manual_seed(1)
    B, H, L, dh = 1, 2, 5, 3
    q, k, v = (torch.randn(B, H, L, dh) for _ in range(3))
    E = torch.randn(2048, dh)
    out = torch.zeros(B, H, L, dh)
    for h in range(H):
        for i in range(L):
            logit = torch.tensor([(q[0, h, i] @ k[0, h, j] + q[0, h, i] @ E[2047 - (i - j)]) / math.sqrt(dh) for j in range(i + 1)])
            out[0, h, i] = torch.softmax(logit, 0) @ v[0, h, : i + 1]
    torch.testing.assert_close(relative_attention(q, k, v, E, torch.arange(L)[None]), out, atol=1e-6, rtol=1e-5)


def test_pad_keys_are_masked():
    torch.manual_seed(2)
    model = MusicTransformer.from_config(tiny_config("none"))
    tokens = torch.tensor([[1, 50, 0, 60, 70]])
    logits = model(tokens)
    # Removing the PAD changes positions, so compare against the masked computation instead:
    # changing the PAD's embedding must not change anything downstream of it.
    with torch.no_grad():
        model.embedding.weight[0] += 5.0
    torch.testing.assert_close(model(tokens)[:, 3:], logits[:, 3:])


def test_forward_follows_the_spec_for_each_condition_placement():
    torch.manual_seed(3)
    concat = MusicTransformer.from_config(tiny_config("continuous_concat")).eval()
    tokens = torch.tensor([[1, 7, 900]])
    a = concat(tokens, valence=0.8, arousal=-0.2)
    b = concat(tokens, valence=-0.8, arousal=0.9)
    assert not torch.allclose(a, b)
    token_model = MusicTransformer.from_config(tiny_config("continuous_token")).eval()
    assert token_model(tokens, valence=0.1, arousal=0.2).shape == (1, 5, 1007)
    with pytest.raises(ValueError, match="valence and arousal"):
        token_model(tokens)


def test_embedding_scale_and_sinusoid_follow_the_spec():
    model = MusicTransformer.from_config(tiny_config("continuous_concat", d_model=16, d_condition=4))
    d = 16
    pos, i = 5, 6
    assert model.positions[pos, i].item() == pytest.approx(math.sin(pos / 10000 ** (i / d)), abs=1e-7)
    assert model.positions[pos, i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (i / d)), abs=1e-7)
    tokens = torch.tensor([[9]])
    condition = torch.tensor([[0.3, -0.4]])
    x = model.embed_tokens(tokens, condition)
    torch.testing.assert_close(x[0, 0, :12], model.embedding.weight[9] * math.sqrt(12))
    torch.testing.assert_close(x[0, 0, 12:], model.fc_condition(condition)[0])


def spec_forward(state: dict, config: dict, tokens: list[int], valence=None, arousal=None) -> torch.Tensor:
    """The specification's forward pass, literally, from the raw state dict in float64: no module
    of ours, loops over heads and over every (query, key) pair. Returns logits [L', V]."""
    sd = {name: t.double() for name, t in state.items()}
    d, n_head, mode = config["d_model"], config["n_head"], config["conditioning"]
    dc = config["d_condition"] if config["d_condition"] > 0 else 0
    dh = d // n_head
    x = sd["embedding.weight"][tokens] * math.sqrt(d - dc)
    is_pad = [t == 0 for t in tokens]
    if mode == "continuous_concat":
        c = sd["fc_condition.weight"] @ torch.tensor([valence, arousal], dtype=torch.float64) + sd["fc_condition.bias"]
        x = torch.cat([x, c.expand(len(tokens), dc)], dim=1)
    if mode == "continuous_token":
        c0 = sd["fc_condition.0.weight"][:, 0] * valence + sd["fc_condition.0.bias"]
        c1 = sd["fc_condition.1.weight"][:, 0] * arousal + sd["fc_condition.1.bias"]
        x = torch.cat([c0[None], c1[None], x])
        is_pad = [False, False] + is_pad
    n = x.size(0)
    sinusoid = torch.empty(n, d, dtype=torch.float64)
    for pos in range(n):
        for i in range(d):
            sinusoid[pos, i] = math.sin(pos / 10000 ** (i / d)) if i % 2 == 0 else math.cos(pos / 10000 ** ((i - 1) / d))
    x = x + sinusoid

    def linear(name, v):
        return v @ sd[name + ".weight"].T + sd[name + ".bias"]

    def layer_norm(name, v):
        return F.layer_norm(v, (d,), sd[name + ".weight"], sd[name + ".bias"], eps=1e-6)

    for layer in range(config["n_layer"]):
        p = f"enc_layers.{layer}."
        q, k, v = (linear(p + f"rga.{w}", x) for w in ("Wq", "Wk", "Wv"))
        E = sd[p + "rga.E"]
        heads = []
        for h in range(n_head):
            qh, kh, vh = (t[:, h * dh:(h + 1) * dh] for t in (q, k, v))
            logits = torch.full((n, n), -math.inf, dtype=torch.float64)
            for i in range(n):
                for j in range(i + 1):
                    if not is_pad[j]:
                        logits[i, j] = (qh[i] @ kh[j] + qh[i] @ E[2047 - (i - j)]) / math.sqrt(dh)
            heads.append(torch.softmax(logits, dim=-1) @ vh)
        x1 = layer_norm(p + "layernorm1", linear(p + "rga.fc", torch.cat(heads, dim=1)) + x)
        x = layer_norm(p + "layernorm2", x1 + linear(p + "FFN_suf", torch.relu(linear(p + "FFN_pre", x1))))
    return linear("fc", x)


@pytest.mark.parametrize("mode", MODES)
def test_the_oracle_forward_equals_the_spec_written_out_by_hand(tmp_path, mode):
    """The decode tests compare against `model.forward`; this pins that forward itself to the
    specification (embedding scale, condition placement, sinusoid, relative attention with
    causal and PAD masks, post-norm layers, FFN, output) on a checkpoint read from disk."""
    folder = make_music_checkpoint(tmp_path / mode, mode, n_layer=2, n_head=2, d_model=16, d_inner=24,
                                   d_condition=4, seed=5)
    model, vocab, config = load_checkpoint(folder)
    state = torch.load(folder / "model.pt", weights_only=True)
    tokens = [1, 40, 905, 0, 300, 1000, 7]  # a PAD inside: masked as a key
    if mode == "discrete_token":
        tokens = list(vocab.emotion_ids(2, -1)) + tokens
    emotion = {"valence": 0.6, "arousal": -0.3} if mode in ("continuous_token", "continuous_concat") else {}
    with torch.inference_mode():
        ours = model(torch.tensor([tokens]), **emotion)[0]
    expected = spec_forward(state, config, tokens, **emotion)
    assert ours.shape == expected.shape == (len(tokens) + (2 if mode == "continuous_token" else 0), len(vocab))
    assert (ours.double() - expected).abs().max().item() <= 1e-4
