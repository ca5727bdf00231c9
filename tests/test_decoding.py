"""Cached batched decoding against the oracle forward and the reference sampler."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from aria_engine.emotion import Emotion, Trajectory  # noqa: E402
from aria_engine.music.decoding import DecodeRequest, generate, step_conditions  # noqa: E402
from aria_engine.music.kv_cache import KVCache, decode_setup, decode_step, prefill  # noqa: E402
from aria_engine.music.vocab import emotion_token  # noqa: E402
from tests.factories.music import make_music_checkpoint  # noqa: E402
from tests.reference_sampler import reference_generate  # noqa: E402

MODES = ("none", "discrete_token", "continuous_token", "continuous_concat")
CALM = Emotion(-0.4, -0.7)
BRIGHT = Emotion(0.8, 0.5)


def oracle_last_logits(model, vocab, window_tokens, emotion, condition=None):
    """The full forward on what the reference feeds the model at one step."""
    tokens = torch.tensor([window_tokens])
    mode = model.conditioning
    if mode == "discrete_token":
        tokens = torch.cat([torch.tensor([vocab.emotion_ids(*emotion.bins)]), tokens], dim=1)
    if mode in ("continuous_token", "continuous_concat"):
        v, a = condition if condition is not None else (emotion.valence, emotion.arousal)
        return model(tokens, valence=v, arousal=a)[0, -1]
    return model(tokens)[0, -1]


def reference_for(model, vocab, request: DecodeRequest, seed: int, **extra):
    mode = model.conditioning
    kwargs = dict(
        conditioning=mode, seed=seed, gen_len=request.length + 1, max_input_len=request.window,
        temperatures=request.temperatures, top_k=request.top_k if request.top_k > 0 else -1, top_p=request.top_p,
        min_n_instruments=request.min_instruments, max_attempts=request.max_attempts,
    )
    e = request.emotion
    if isinstance(e, Trajectory):
        kwargs["varying_condition"] = step_conditions(e, request.length)
    elif mode in ("continuous_token", "continuous_concat"):
        kwargs["condition"] = (e.valence, e.arousal)
    elif mode == "discrete_token":
        kwargs["discrete_condition"] = (emotion_token("V", e.bins[0]), emotion_token("A", e.bins[1]))
    return reference_generate(model, vocab.mappings(), **kwargs | extra)


def three_requests(mode):
    emotion = (lambda e: None) if mode == "none" else (lambda e: e)
    return [
        DecodeRequest(emotion=emotion(CALM), length=30, window=12, seed=1),
        DecodeRequest(emotion=emotion(BRIGHT), length=45, window=20, seed=2, temperatures=(0.9, 1.4), top_p=0.9),
        DecodeRequest(emotion=emotion(Emotion(0.1, 0.95)), length=24, window=12, seed=3, top_k=40, top_p=1.0),
    ]


# -- logits: cached decoding equals the oracle ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batched", [False, True], ids=["alone", "batched"])
def test_exact_mode_logits_equal_the_oracle_at_every_step(models, mode, batched):
    model, vocab, _ = models[mode]
    requests = three_requests(mode)
    if not batched:
        requests = requests[1:2]
    seen = []
    generate(model, vocab, requests, decode="exact", observe=seen.append)
    assert len(seen) == sum(r.length for r in requests)
    actions = {info.action for info in seen}
    assert {"prefill", "decode", "full"} <= actions  # inside and across the window
    worst = 0.0
    for info in seen:
        request = requests[info.request]
        capacity = request.window - (2 if mode in ("discrete_token", "continuous_token") else 0)
        assert info.window_start == max(0, len(info.sequence) - capacity)  # the reference's window
        expected = oracle_last_logits(model, vocab, info.sequence[info.window_start :], request.emotion)
        worst = max(worst, (expected - info.logits).abs().max().item())
    assert worst <= 1e-4


@pytest.mark.parametrize("mode", MODES)
def test_fast_mode_keeps_the_last_half_and_matches_the_oracle_on_it(models, mode):
    model, vocab, _ = models[mode]
    requests = three_requests(mode)
    seen = []
    generate(model, vocab, requests, decode="fast", observe=seen.append)
    assert "full" not in {info.action for info in seen}
    refills = 0
    for info in seen:
        request = requests[info.request]
        capacity = request.window - (2 if mode in ("discrete_token", "continuous_token") else 0)
        window = info.sequence[info.window_start :]
        assert 1 <= len(window) <= capacity
        if info.action == "prefill" and info.step > 0:
            refills += 1
            assert len(window) == (capacity + 1) // 2  # the kept half
        expected = oracle_last_logits(model, vocab, window, request.emotion)
        assert (expected - info.logits).abs().max().item() <= 1e-4
    assert refills >= 3


def test_decode_step_handles_rows_at_different_positions(models):
    """Two rows with different prompt lengths step together and each matches its own oracle."""
    model, vocab, _ = models["continuous_concat"]
    a, b = [1, 30, 900, 500, 40], [1, 700]
    condition = torch.tensor([[0.2, -0.5], [-0.9, 0.3]])
    with torch.inference_mode():
        cache = KVCache(model, rows=2, capacity=12)
        prefill(model, torch.tensor([a[:-1]]), condition[:1], cache=cache, rows=torch.tensor([0]))
        prefill(model, torch.tensor([b[:-1]]), condition[1:], cache=cache, rows=torch.tensor([1]))
        logits = decode_step(model, cache, torch.tensor([a[-1], b[-1]]), [len(a) - 1, len(b) - 1], condition)
        for row, tokens in enumerate((a, b)):
            expected = model(torch.tensor([tokens]), valence=condition[row, 0], arousal=condition[row, 1])[0, -1]
            assert (logits[row] - expected).abs().max() <= 1e-4


# -- tokens: seed-exact against the reference sampler -----------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", [5, 2024])
def test_seed_exact_against_the_reference_with_the_window_sliding(models, mode, seed):
    model, vocab, _ = models[mode]
    request = DecodeRequest(emotion=None if mode == "none" else CALM, length=40, window=14, seed=seed)
    expected, attempts = reference_for(model, vocab, request, seed)
    result = generate(model, vocab, [request], decode="exact")[0]
    assert result.tokens == expected
    assert result.attempts == attempts == 1
    assert len(result.tokens) == request.length
    assert any(vocab.is_timeshift[t] for t in result.tokens)  # the note/rest temperature switch ran


@pytest.mark.parametrize("mode", ("discrete_token", "continuous_concat"))
def test_seed_exact_while_the_repetition_penalty_bites(models, mode):
    """A narrow nucleus keeps at most 2 tokens step after step, so the repetition counter climbs
    past 3 and the penalty raises the temperature, which widens the nucleus and halves the
    counter again: both branches and the penalty itself, against the reference."""
    model, vocab, _ = models[mode]
    request = DecodeRequest(emotion=BRIGHT, length=60, window=24, seed=31, top_p=0.02)
    trace = []
    expected, _ = reference_for(model, vocab, request, 31, repeat_trace=trace)
    assert max(trace) >= 6  # penalised steps: ln((r + 1) / 4) > 0 from r = 4
    assert any(later < earlier for earlier, later in zip(trace, trace[1:]))  # and halved
    unpenalised, _ = reference_for(model, vocab, request, 31, penalty_coeff=0.0)
    assert unpenalised != expected  # the penalty changes the piece
    assert generate(model, vocab, [request], decode="exact")[0].tokens == expected


@pytest.mark.parametrize("mode", MODES)
def test_fast_mode_is_seed_exact_while_the_piece_fits_the_window(models, mode):
    model, vocab, _ = models[mode]
    request = DecodeRequest(emotion=None if mode == "none" else BRIGHT, length=30, window=64, seed=77,
                            temperatures=(0.8, 1.5), top_k=50, top_p=0.95)
    expected, _ = reference_for(model, vocab, request, 77)
    assert generate(model, vocab, [request], decode="fast")[0].tokens == expected


def test_a_caller_generator_continues_its_stream(models):
    model, vocab, _ = models["continuous_concat"]
    g = torch.Generator().manual_seed(9)
    request = DecodeRequest(emotion=CALM, length=20, window=64, generator=g)
    first = generate(model, vocab, [request])[0].tokens
    second = generate(model, vocab, [request])[0].tokens
    assert first != second  # the same generator, drawn further
    assert generate(model, vocab, [DecodeRequest(emotion=CALM, length=20, window=64, seed=9)])[0].tokens == first


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("decode", ["fast", "exact"])
def test_a_batch_gives_each_request_what_it_gets_alone(models, mode, decode):
    model, vocab, _ = models[mode]
    requests = three_requests(mode)
    seen_together = []
    together = generate(model, vocab, requests, decode=decode, observe=seen_together.append)
    for i, (request, result) in enumerate(zip(requests, together)):
        seen_alone = []
        alone = generate(model, vocab, [request], decode=decode, observe=seen_alone.append)[0]
        assert result.tokens == alone.tokens
        assert len(result.tokens) == request.length
        # Not merely close: the same bits, so no sample on a knife edge can differ.
        mine = [info.logits for info in seen_together if info.request == i]
        assert len(mine) == len(seen_alone)
        assert all(torch.equal(a, b.logits) for a, b in zip(mine, seen_alone))
    assert len({tuple(r.tokens[:10]) for r in together}) == 3


# -- trajectories -----------------------------------------------------------------------------

RISING = Trajectory.linear([Emotion(-0.9, -0.9), Emotion(0.9, 0.9)])


@pytest.mark.parametrize("mode", ["continuous_token", "continuous_concat"])
def test_exact_trajectory_follows_the_reference_varying_condition(models, mode):
    model, vocab, _ = models[mode]
    request = DecodeRequest(emotion=RISING, length=30, window=16, seed=4)
    expected, _ = reference_for(model, vocab, request, 4)
    seen = []
    result = generate(model, vocab, [request], decode="exact", observe=seen.append)
    assert result[0].tokens == expected
    conditions = [info.condition for info in seen]
    assert conditions[0] == pytest.approx((-0.9, -0.9)) and conditions[-1] == pytest.approx((0.9, 0.9))
    assert len(set(conditions)) == request.length  # a new value at every step
    for info in seen:
        window = info.sequence[info.window_start :]
        expected_logits = oracle_last_logits(model, vocab, window, None, info.condition)
        assert (expected_logits - info.logits).abs().max() <= 1e-4


def test_the_trajectory_changes_the_music(models):
    model, vocab, _ = models["continuous_concat"]
    steady = generate(model, vocab, [DecodeRequest(emotion=Emotion(-0.9, -0.9), length=40, seed=4)], decode="exact")
    moving = generate(model, vocab, [DecodeRequest(emotion=RISING, length=40, seed=4)], decode="exact")
    assert steady[0].tokens != moving[0].tokens


def test_fast_trajectory_refreshes_the_condition_periodically(models):
    model, vocab, _ = models["continuous_token"]
    request = DecodeRequest(emotion=RISING, length=40, window=64, seed=4)
    seen = []
    generate(model, vocab, [request], decode="fast", observe=seen.append, trajectory_refresh=8)
    values = step_conditions(RISING, 40)
    for info in seen:
        assert info.condition == pytest.approx(values[info.step - info.step % 8])
        assert info.action == ("prefill" if info.step % 8 == 0 else "decode")
        window = info.sequence[info.window_start :]
        assert (oracle_last_logits(model, vocab, window, None, info.condition) - info.logits).abs().max() <= 1e-4


# -- minimum instruments ----------------------------------------------------------------------


def test_min_instruments_retries_on_the_reference_stream(models):
    model, vocab, _ = models["continuous_concat"]
    retried = 0
    for seed in range(6):
        request = DecodeRequest(emotion=CALM, length=4, window=32, seed=seed, min_instruments=3)
        expected, attempts = reference_for(model, vocab, request, seed)
        result = generate(model, vocab, [request])[0]
        assert (result.tokens, result.attempts) == (expected, attempts)
        retried += attempts > 1
    assert retried  # some seeds needed more than one attempt


def test_min_instruments_gives_up_after_the_cap_with_a_note(models):
    model, vocab, _ = models["discrete_token"]
    request = DecodeRequest(emotion=BRIGHT, length=3, seed=1, min_instruments=5, max_attempts=4)
    result = generate(model, vocab, [request])[0]
    assert result.attempts == 4
    assert result.instruments < 5 and len(result.tokens) == 3
    assert "best of 4 attempts" in result.notes[0]


# -- input checks and reporting ---------------------------------------------------------------


def test_bad_requests_get_clear_messages(models):
    concat, vocab, _ = models["continuous_concat"]
    with pytest.raises(ValueError, match="needs an emotion"):
        generate(concat, vocab, [DecodeRequest(length=4)])
    discrete, dvocab, _ = models["discrete_token"]
    with pytest.raises(ValueError, match="not a trajectory"):
        generate(discrete, dvocab, [DecodeRequest(emotion=RISING, length=4)])
    with pytest.raises(ValueError, match="decode must be"):
        generate(concat, vocab, [DecodeRequest(emotion=CALM)], decode="slow")


def test_progress_and_rate_are_reported(models):
    model, vocab, _ = models["none"]
    fractions = []
    results = generate(model, vocab, three_requests("none"), progress=fractions.append)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(r.tokens_per_s > 0 and r.seed is not None for r in results)


# -- the Composer -----------------------------------------------------------------------------

from aria_engine.music.neural import TransformerComposer, resolve_checkpoint  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for mode in ("continuous_concat", "continuous_token", "discrete_token"):
        make_music_checkpoint(root / mode, mode, seed=3)
    return root


def test_resolve_checkpoint_takes_a_checkpoint_or_a_models_directory(models_dir, tmp_path):
    assert resolve_checkpoint(models_dir, "continuous_token") == models_dir / "continuous_token"
    assert resolve_checkpoint(models_dir / "discrete_token", "continuous_concat") == models_dir / "discrete_token"
    (tmp_path / "continuous_concat").mkdir()
    with pytest.raises(FileNotFoundError, match="aria models pull"):
        resolve_checkpoint(tmp_path, "continuous_concat")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nowhere", "continuous_concat")


@pytest.mark.parametrize("mode", ["continuous_concat", "continuous_token", "discrete_token"])
def test_composer_reproduces_the_reference_for_a_seed(models_dir, mode):
    composer = TransformerComposer(models_dir, mode)
    options = GenerationOptions(composer="transformer", mode=mode, length=24, note_temperature=0.9,
                                rest_temperature=1.3, top_p=0.8, window=16, seed=42, decode="exact")
    piece = composer.compose(BRIGHT, options)
    model, vocab, _, _ = composer.load()
    request = DecodeRequest(emotion=BRIGHT, length=24, temperatures=(0.9, 1.3), top_p=0.8, window=16)
    expected, _ = reference_for(model, vocab, request, 42)
    assert piece.tokens == expected
    assert (piece.composer, piece.mode, piece.seed) == ("transformer", mode, 42)
    assert piece.stats["attempts"] == 1 and piece.stats["tokens_per_s"] > 0
    decoded = vocab.to_midi([vocab.start_id, *expected])
    assert [len(t.notes) for t in piece.midi.instruments] == [len(t.notes) for t in decoded.instruments]
    assert len(piece.midi.instruments) == 5


def test_composer_batch_equals_each_alone_and_reports_progress(models_dir):
    composer = TransformerComposer(models_dir, "continuous_token")
    base = GenerationOptions(composer="transformer", mode="continuous_token", length=20, window=32)
    items = [
        (CALM, base.replace(seed=1)),
        (RISING, base.replace(seed=2, decode="exact", length=12)),
        (BRIGHT, base.replace(seed=3, top_k=30)),
    ]
    fractions = []
    together = composer.compose_batch(items, fractions.append)
    assert [p.tokens for p in together] == [composer.compose(e, o).tokens for e, o in items]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)


def test_composer_explains_adaptations(models_dir):
    composer = TransformerComposer(models_dir / "discrete_token", "continuous_concat")
    piece = composer.compose(RISING, GenerationOptions(length=4, seed=5, min_instruments=5))
    assert piece.mode == "discrete_token"
    assert any("discrete_token model" in note for note in piece.notes)
    assert any("trajectory's start" in note for note in piece.notes)
    assert any("best of 5 attempts" in note for note in piece.notes) and piece.stats["attempts"] == 5


# -- decode setup -----------------------------------------------------------------------------



def test_decode_products_are_the_model_products(models):
    model, _, _ = models["continuous_concat"]
    for tile in (1, 3, 8):
        setup = decode_setup(model, tile)
        assert setup.tile == tile
        for rows in (1, 5, 8, 17):  # within one tile, and over several
            x = torch.randn(rows, model.config.d_model)
            layer = model.enc_layers[1]
            expected = torch.cat([layer.rga.Wq(x), layer.rga.Wk(x), layer.rga.Wv(x)], dim=-1)
            torch.testing.assert_close(setup.layers[1].qkv(x), expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(setup.head(x), model.fc(x), atol=1e-5, rtol=1e-5)


def test_more_requests_than_a_decode_step_holds(models):
    model, vocab, _ = models["none"]
    tile = decode_setup(model).tile
    requests = [DecodeRequest(length=5, window=32, seed=s) for s in range(tile + 1)]
    together = generate(model, vocab, requests)
    assert [r.tokens for r in together] == [generate(model, vocab, [r])[0].tokens for r in requests]


@pytest.mark.filterwarnings("ignore")  # torch.ao quantization's deprecation notices
def test_a_dynamically_quantized_model_decodes(models):
    """int8 dynamic quantization (the bench's option) scales activations per call, so its logits
    depend on what is computed together; they stay near the oracle's."""
    model, vocab, _ = models["continuous_token"]
    import copy

    quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    seen = []
    result = generate(quantized, vocab, [DecodeRequest(emotion=CALM, length=6, window=32, seed=1)], observe=seen.append)
    assert len(result[0].tokens) == 6
    for info in seen:
        window = info.sequence[info.window_start :]
        expected = oracle_last_logits(quantized, vocab, window, CALM)
        assert (expected - info.logits).abs().max() <= 0.25
