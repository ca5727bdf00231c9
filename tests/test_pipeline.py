"""Pipeline.finish/run: the MIDI file and pictures made alongside the audio, with the real
renderer, composer and drawing."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pretty_midi
import pytest

from aria_engine import visuals
from aria_engine.emotion import Emotion
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import UPLOAD_MARGIN_BYTES, Pipeline, Request, midi_bytes


@pytest.fixture(scope="module")
def piece(pipeline):
    emotion = Emotion(0.4, 0.5)
    options = GenerationOptions(seed=11, duration_s=6)
    return emotion, options, pipeline.compose([(emotion, options)])[0]


def test_files_made_alongside_the_audio_are_the_ones_made_alone(pipeline, piece):
    emotion, options, composition = piece
    result = pipeline.finish(emotion, None, "explicit", composition, options)
    assert result.midi == midi_bytes(composition)
    assert result.emotion_chart == visuals.emotion_chart(emotion, trajectory=None)
    assert result.piano_roll == visuals.piano_roll(composition.midi)
    parsed = pretty_midi.PrettyMIDI(io.BytesIO(result.midi))
    assert [i.program for i in parsed.instruments] == [i.program for i in composition.midi.instruments]
    assert result.audio.data[:4] == b"OggS" and result.audio.duration_s > 6


def test_run_reports_every_stage_time(pipeline):
    image = (Path(__file__).resolve().parents[1] / "examples" / "sunflowers.png").read_bytes()
    result = pipeline.run(Request(image=image, options=GenerationOptions(seed=3, duration_s=4)))
    expected = {"decoding image", "reading emotion", "composing", "writing midi", "drawing",
                "rendering", "synthesis", "mastering", "encoding"}
    assert set(result.timings) == expected
    assert all(t >= 0 for t in result.timings.values())
    parts = sum(result.timings[k] for k in ("synthesis", "mastering", "encoding"))
    assert parts <= result.timings["rendering"]
    assert set(result.summary()["timings_s"]) == expected


def test_progress_moves_forward_through_drawing_then_rendering(pipeline, piece):
    emotion, options, composition = piece
    seen = []
    pipeline.finish(emotion, None, "explicit", composition, options, lambda s, f: seen.append((s, f)))
    assert seen[:2] == [("drawing", 0.0), ("rendering", 0.0)] and seen[-1] == ("rendering", 1.0)
    fractions = [f for stage, f in seen[1:]]
    assert all(stage == "rendering" for stage, _ in seen[1:]) and fractions == sorted(fractions)
    assert any(0.0 < f < 0.6 for f in fractions) and any(0.6 < f < 1.0 for f in fractions)  # synthesis, encoding


def test_a_progress_callback_that_aborts_leaves_no_thread_behind(pipeline, piece):
    emotion, options, composition = piece

    class Stop(Exception):
        pass

    before = threading.active_count()
    for at in (0.0, 0.3, 0.8):  # before the render, mid-synthesis, mid-encoding
        def abort_at(stage, fraction):
            if stage == "rendering" and fraction >= at:
                raise Stop()

        with pytest.raises(Stop):
            pipeline.finish(emotion, None, "explicit", composition, options, abort_at)
        assert threading.active_count() == before


def test_the_audio_gets_what_the_limit_leaves_after_the_other_files(pipeline, piece):
    emotion, options, composition = piece
    full = pipeline.finish(emotion, None, "explicit", composition, options)
    others = len(full.midi) + len(full.emotion_chart) + len(full.piano_roll)
    limit = others + UPLOAD_MARGIN_BYTES + len(full.audio.data) // 2
    fitted = pipeline.finish(emotion, None, "explicit", composition, options, max_upload_bytes=limit)
    assert len(fitted.audio.data) <= len(full.audio.data) // 2
    assert fitted.audio.notes and "upload limit" in fitted.audio.notes[0]


def test_audio_that_cannot_fit_is_kept_whole_without_rendering_twice(pipeline, piece, monkeypatch):
    emotion, options, composition = piece
    renderer = pipeline.renderer()
    calls = []
    synthesize = renderer.synthesize
    monkeypatch.setattr(renderer, "synthesize", lambda *a, **k: calls.append(1) or synthesize(*a, **k))
    result = pipeline.finish(emotion, None, "explicit", composition, options, max_upload_bytes=20_000)
    assert len(calls) == 1
    assert result.audio.notes == [] and result.audio.duration_s > 6  # the whole clip, left out by the reply


def test_the_pipeline_applies_every_image_limit_it_is_given():
    from PIL import Image

    from aria_engine.images import ImageLimits, ImageRejected

    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), (200, 120, 40)).save(buffer, "PNG")
    data = buffer.getvalue()
    assert Pipeline().decode_image(data).size == (400, 300)
    assert max(Pipeline(image_limits=ImageLimits(max_side=100)).decode_image(data).size) <= 100
    with pytest.raises(ImageRejected) as refused:
        Pipeline(image_limits=ImageLimits(max_decode_bytes=100_000)).decode_image(data)
    assert refused.value.code == "too_much_memory"
