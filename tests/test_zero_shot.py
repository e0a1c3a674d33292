"""--labels: your own classes, scored zero-shot by CLIP, SigLIP and SigLIP 2 as transformers'
pipeline("zero-shot-image-classification") scores them, on every path and through every
output, --organize and --resume.

The models are tiny and random (examples/make_zero_shot_model.py), with their logits spread
so that answers differ from image to image and label to label; the pipeline loads the same
folders, so every comparison is against transformers itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import make_zero_shot_model
from conftest import scene
from resnet_cli import classify, load_classifier

KINDS = make_zero_shot_model.KINDS
LABELS = ["cat", "dog", "person", "receipt", "screenshot", "food"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny random CLIP, SigLIP and SigLIP 2, each with its tokenizer and processor."""
    folder = tmp_path_factory.mktemp("zero-shot")
    return {
        kind: Path(make_zero_shot_model.save_zero_shot_model(str(folder / kind), kind=kind))
        for kind in KINDS
    }


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Different photo-like JPEGs of assorted sizes and a PNG."""
    folder = tmp_path_factory.mktemp("photos")
    sizes = [(640, 480), (480, 640), (1200, 900), (300, 300), (512, 384), (333, 500)]
    paths = []
    for i, (width, height) in enumerate(sizes * 2):
        path = folder / f"photo{i:02d}.{'png' if i == 3 else 'jpg'}"
        scene(width + i, height, seed=300 + i).save(path, quality=92)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def pipeline_answers(models: dict[str, Path], photos: list[Path]) -> dict[str, Any]:
    """transformers' zero-shot pipeline on every photo, per model: {input: {label: score}}."""
    from transformers import pipeline

    answers = {}
    for kind, folder in models.items():
        reference = pipeline("zero-shot-image-classification", model=str(folder), device="cpu")
        answers[kind] = {
            str(path): {
                a["label"]: a["score"] for a in reference(str(path), candidate_labels=LABELS)
            }
            for path in photos
        }
    return answers


def scores_of(records: Iterator[Any]) -> dict[str, dict[str, float]]:
    return {r.input: {p.label: p.score for p in r.predictions} for r in records}


def test_the_model_types_are_transformers_zero_shot_ones() -> None:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    )

    from resnet_cli.models.zero_shot import ZERO_SHOT_MODELS

    assert dict(MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES) == ZERO_SHOT_MODELS


@pytest.mark.parametrize("kind", KINDS)
def test_exact_scores_equal_the_zero_shot_pipeline(
    kind: str, models: dict[str, Path], photos: list[Path], pipeline_answers: dict[str, Any]
) -> None:
    classifier = load_classifier(str(models[kind]), labels=LABELS, exact=True, device="cpu")
    assert classifier.labels == LABELS and classifier.multi_label == (kind != "clip")
    assert type(classifier.model).__name__ == "ZeroShotHead"  # the text embedded once
    ours = scores_of(classify(classifier, photos, top_k=len(LABELS), batch_size=4))
    assert list(ours) == [str(p) for p in photos]
    for name, scores in ours.items():
        theirs = pipeline_answers[kind][name]
        assert max(scores, key=scores.__getitem__) == max(theirs, key=theirs.__getitem__)
        for label, score in theirs.items():
            assert scores[label] == pytest.approx(score, abs=1e-4), (name, label)
    # The random towers answer differently from photo to photo.
    assert len({max(s, key=s.__getitem__) for s in ours.values()}) > 1


def _fast_paths() -> list[Any]:
    from resnet_cli.runtimes.hardware import probe

    # The CPU's own flags: the tests pin RESNET_CLI_CPU_BF16=0, which only steers "auto".
    native_bf16 = bool(probe(cuda=False).features & {"avx512_bf16", "amx_bf16"})
    no_bf16 = pytest.mark.skipif(
        not native_bf16, reason="this CPU has no native bf16 (AVX512-BF16 or AMX)"
    )
    return [
        pytest.param("clip", "fp32", "torch", id="clip-fp32-torch"),
        pytest.param("clip", "fp32", "onnxruntime", id="clip-fp32-onnxruntime"),
        pytest.param("clip", "fp32", "torchscript", id="clip-fp32-torchscript"),
        pytest.param("clip", "bf16", "torch", id="clip-bf16", marks=no_bf16),
        pytest.param("siglip", "fp32", "onnxruntime", id="siglip-fp32-onnxruntime"),
        pytest.param("siglip", "bf16", "torch", id="siglip-bf16", marks=no_bf16),
        pytest.param("siglip2", "fp32", "torch", id="siglip2-fp32-torch"),
    ]


@pytest.mark.parametrize(("kind", "precision", "runtime"), _fast_paths())
def test_fast_paths_give_the_pipelines_top_1(
    kind: str,
    precision: str,
    runtime: str,
    models: dict[str, Path],
    photos: list[Path],
    pipeline_answers: dict[str, Any],
) -> None:
    # Downscaled JPEG decoding, and each runtime's own arithmetic on the vision tower; the
    # text side and the scores' last step are the same fp32 as --exact's.
    classifier = load_classifier(
        str(models[kind]), labels=LABELS, device="cpu", precision=precision, runtime=runtime
    )
    assert (classifier.runtime, classifier.precision) == (runtime, precision)
    assert classifier.plan.network == "zero-shot"
    ours = scores_of(classify(classifier, photos, top_k=len(LABELS)))
    # Scores move a little with the decoding (up to 0.1 for SigLIP's sigmoid around 0.5 on
    # these 64-pixel towers); a wrong step (softmax for sigmoid, another scale) moves them
    # more. A near tie in the pipeline's own answer may go either way.
    clear = 0
    for name, theirs in pipeline_answers[kind].items():
        scores = ours[name]
        assert max(abs(scores[label] - theirs[label]) for label in LABELS) < 0.15, name
        first, second = sorted(theirs.values(), reverse=True)[:2]
        if first - second > 0.04:
            clear += 1
            assert max(scores, key=scores.__getitem__) == max(theirs, key=theirs.__getitem__)
    assert clear >= len(photos) // 4


def test_loading_a_zero_shot_checkpoint_as_a_classifier_is_refused(
    models: dict[str, Path],
) -> None:
    # Where the quick check before torch could not read the config (a hub model not cached
    # yet), transformers' config says it, before AutoModelForImageClassification would give
    # CLIP a random head.
    from resnet_cli.errors import UsageError
    from resnet_cli.models.transformers import load_with_transformers

    with pytest.raises(UsageError, match="zero-shot model"):
        load_with_transformers(str(models["clip"]), None, True)


def test_the_text_side_runs_once(models: dict[str, Path], photos: list[Path]) -> None:
    classifier = load_classifier(str(models["clip"]), labels=LABELS, device="cpu", runtime="torch")
    network = classifier.model.model

    def no_text(*_: Any, **__: Any) -> Any:
        raise AssertionError("the text tower ran again")

    network.get_text_features = no_text
    network.text_model.forward = no_text
    records = list(classify(classifier, photos, top_k=2))
    assert all(r.ok for r in records)


def test_a_model_scored_otherwise_runs_its_own_forward(
    models: dict[str, Path], photos: list[Path]
) -> None:
    # A model whose scores are not a scaled cosine of two embeddings (BLIP-2's retrieval
    # head) fails the head's check and is run whole: the same answers, text re-run.
    import torch

    from resnet_cli.models import zero_shot_head

    fast = load_classifier(str(models["clip"]), labels=LABELS, device="cpu", runtime="torch")
    real_head = zero_shot_head.ZeroShotHead.forward

    def wrong(self: Any, *args: Any, **kwargs: Any) -> Any:
        return real_head(self, *args, **kwargs) * 2

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zero_shot_head.ZeroShotHead, "forward", wrong)
        whole = load_classifier(str(models["clip"]), labels=LABELS, device="cpu", runtime="torch")
    assert type(whole.model).__name__ == "ModelForwardHead"
    assert "own forward on every batch" in whole.plan.reasons["network"]
    for ours, theirs in zip(classify(whole, photos), classify(fast, photos), strict=True):
        assert [p.label for p in ours.predictions] == [p.label for p in theirs.predictions]
        assert torch.allclose(
            torch.tensor([p.score for p in ours.predictions]),
            torch.tensor([p.score for p in theirs.predictions]),
            atol=1e-5,
        )
