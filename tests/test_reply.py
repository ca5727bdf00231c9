"""The platform-neutral reply: readout words and fitting files into an upload limit."""

from __future__ import annotations

from aria_engine.emotion import Emotion
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Request
from bot.reply import build_reply


def run(pipeline, limit=None):
    request = Request(emotion=Emotion(0.62, -0.31), options=GenerationOptions(seed=5, duration_s=8),
                      max_upload_bytes=limit)
    return pipeline.run(request)


def test_readout_and_all_files_without_a_limit(pipeline):
    reply = build_reply(run(pipeline), name="piece")
    assert reply.valence_line == "valence +0.62 (pleasant)"
    assert reply.arousal_line == "arousal -0.31 (calm)"
    assert reply.headline == "serene" and reply.seed == 5
    assert [f.kind for f in reply.files] == ["midi", "audio", "emotion_chart", "piano_roll"]
    assert reply.file("audio").filename == "piece.ogg"


def test_a_tight_limit_shrinks_the_audio_and_says_so(pipeline):
    full = run(pipeline)
    others = len(full.midi) + len(full.emotion_chart) + len(full.piano_roll)
    limit = others + 64 * 1024 + len(full.audio.data) // 3
    result = run(pipeline, limit)
    reply = build_reply(result, upload_limit=limit)
    assert reply.total_bytes <= limit
    assert reply.file("audio") is not None and len(reply.file("audio").data) < len(full.audio.data)
    assert any("upload limit" in note for note in reply.notes)


def test_a_limit_too_small_for_any_audio_keeps_the_midi(pipeline):
    result = run(pipeline, 20_000)
    reply = build_reply(result, upload_limit=20_000)
    assert reply.file("midi") is not None and reply.file("audio") is None
    assert reply.total_bytes <= 20_000
    assert any("audio left out" in note for note in reply.notes)
