"""--exact matches transformers.pipeline("image-classification"); the fast path stays close."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import scene
from resnet_cli import classify, load_classifier


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    sizes = [(640, 480), (480, 640), (1200, 900), (300, 300), (2000, 1500), (512, 384)]
    paths = []
    for i, (w, h) in enumerate(sizes):
        path = tmp_path / f"photo{i}.jpg"
        scene(w, h, seed=100 + i).save(path, quality=92)
        paths.append(path)
    return paths


def test_exact_scores_equal_the_transformers_pipeline(tiny_model: Path, photos: list[Path]) -> None:
    from transformers import pipeline

    reference = pipeline("image-classification", model=str(tiny_model), device="cpu")
    expected = reference([str(p) for p in photos], top_k=4)
    classifier = load_classifier(str(tiny_model), exact=True, device="cpu", batch_size=4)
    records = list(classify(classifier, photos, top_k=4))
    assert [r.input for r in records] == [str(p) for p in photos]
    for record, answer in zip(records, expected, strict=True):
        assert [p.label for p in record.predictions] == [a["label"] for a in answer]
        for ours, theirs in zip(record.predictions, answer, strict=True):
            assert ours.score == pytest.approx(theirs["score"], abs=1e-4)


def test_fast_path_stays_close_to_exact(tiny_model: Path, photos: list[Path]) -> None:
    exact = load_classifier(str(tiny_model), exact=True, device="cpu")
    fast = load_classifier(str(tiny_model), device="cpu")
    assert fast.resize is not None and fast.resize.target(480, 640) == (256, 341)  # 224/0.875
    reference = {r.input: r for r in classify(exact, photos, top_k=6)}
    for record in classify(fast, photos, top_k=6):
        theirs = {p.class_id: p.score for p in reference[record.input].predictions}
        drift = max(abs(p.score - theirs[p.class_id]) for p in record.predictions)
        assert drift < 0.03, (record.input, drift)
