"""--labels: your own classes, scored zero-shot by CLIP, SigLIP and SigLIP 2 as transformers'
pipeline("zero-shot-image-classification") scores them, on every path and through every
output, --organize and --resume.

The models are tiny and random (examples/make_zero_shot_model.py), with their logits spread
so that answers differ from image to image and label to label; the pipeline loads the same
folders, so every comparison is against transformers itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import make_zero_shot_model
from conftest import imported, run_probing_imports, scene
from resnet_cli import classify, load_classifier
from resnet_cli.cli.classify import app
from resnet_cli.output.writers import read_records
from resnet_cli.results import needs_review

KINDS = make_zero_shot_model.KINDS
LABELS = ["cat", "dog", "person", "receipt", "screenshot", "food"]
runner = CliRunner()


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


def invoke(*args: object) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def test_the_model_types_are_transformers_zero_shot_ones() -> None:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES,
    )

    from resnet_cli.models.checkpoint import ZERO_SHOT_MODELS

    assert dict(MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES) == ZERO_SHOT_MODELS


@pytest.mark.parametrize("kind", KINDS)
def test_exact_scores_equal_the_zero_shot_pipeline(
    kind: str, models: dict[str, Path], photos: list[Path], pipeline_answers: dict[str, Any]
) -> None:
    classifier = load_classifier(
        str(models[kind]), labels=LABELS, exact=True, device="cpu", batch_size=4
    )
    assert classifier.labels == LABELS and classifier.multi_label == (kind != "clip")
    assert type(classifier.model).__name__ == "ZeroShotHead"  # the text embedded once
    ours = scores_of(classify(classifier, photos, top_k=len(LABELS)))
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


def test_a_gpu_run_plans_fp16_and_nvjpeg_and_keeps_the_labels_in_fp32(
    models: dict[str, Path], fake_gpu: None
) -> None:
    import torch

    classifier = load_classifier(str(models["clip"]), labels=LABELS)
    plan = classifier.plan
    assert (plan.device, plan.precision, plan.network) == ("cuda", "fp16", "zero-shot")
    assert plan.batch_size == 256 and plan.device_decode  # CLIP's processor takes tensors
    head = classifier.model
    assert next(head.model.vision_model.parameters()).dtype == torch.float16
    # The labels' embeddings are not cast with the weights: the cosine's last step is fp32.
    assert head.text_embeds.dtype == torch.float32
    # They moved with the weights (to the fake GPU's "meta" device), before any forward: a
    # CUDA graph captured from this head reads them on the GPU, never copies them in.
    assert head.text_embeds.device == torch.device("meta")
    # The chooser's runtime on CUDA is a classifier's, the CUDA graph (kept where it gives
    # eager torch's logits at load); on the meta device it cannot be built, and says so.
    assert (plan.runtime, plan.reasons["runtime"]) == (
        "torch",
        "torch: cudagraph could not be built, or disagreed",
    )


def zero_shot_args(folder: Path, *extra: object) -> list[object]:
    return ["-m", folder, "--offline", "-q", "--labels", ", ".join(LABELS), *extra]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_every_format_records_your_labels_with_the_pipelines_scores(
    fmt: str,
    models: dict[str, Path],
    photos: list[Path],
    pipeline_answers: dict[str, Any],
    tmp_path: Path,
) -> None:
    from resnet_cli.output.writers import read_results_file

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    output = tmp_path / f"labels.{fmt}"
    inputs = [*photos[:3], broken]
    result = invoke(*zero_shot_args(models["siglip"], "--exact", "-k", "3", "-o", output), *inputs)
    assert result.exit_code == 1, result.output  # the broken file; the others classified
    records = read_results_file(str(output))
    assert [r.input for r in records] == [str(p) for p in inputs]
    assert records[-1].error is not None
    for record in records[:-1]:
        theirs = pipeline_answers["siglip"][record.input]
        assert [p.label for p in record.predictions] == sorted(
            theirs, key=theirs.__getitem__, reverse=True
        )[:3]
        for prediction in record.predictions:
            assert prediction.score == pytest.approx(theirs[prediction.label], abs=1e-4)
            assert prediction.class_id == LABELS.index(prediction.label)
            assert prediction.category is None  # the coarse categories are ImageNet's
    meta = json.loads(Path(f"{output}.meta.json").read_text())["resnet_classify"]
    assert meta["zero_shot"] == {"labels": LABELS, "template": "This is a photo of {}."}


def test_table_and_report_show_your_labels(
    models: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    records = read_records(
        invoke(*zero_shot_args(models["clip"], "-f", "jsonl"), *photos).stdout, "jsonl"
    )
    best = {r.predictions[0].label for r in records}
    assert len(best) > 1
    report = tmp_path / "report.html"
    result = invoke(*zero_shot_args(models["clip"], "-f", "table", "--report", report), *photos)
    assert result.exit_code == 0, result.output
    page = report.read_text()
    for label in best:  # a row per image with its top-1 label; the report groups by it
        assert label in result.stdout and label in page


def test_labels_file_and_template(
    models: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    from transformers import pipeline

    labels = ["a cat, sleeping", "dog", "café receipt"]  # one a line: commas and UTF-8 kept
    listed = tmp_path / "labels.txt"
    listed.write_text("\n".join([labels[0], "", f"  {labels[1]}  ", labels[2], ""]) + "\n")
    template = "a picture of {}, taken with a phone"
    result = invoke(
        "-m", models["clip"], "--offline", "-q", "--exact", "-f", "jsonl",
        "--labels-file", listed, "--template", template, photos[0],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = read_records(result.stdout, "jsonl")[0]
    reference = pipeline("zero-shot-image-classification", model=str(models["clip"]), device="cpu")
    theirs = reference(str(photos[0]), candidate_labels=labels, hypothesis_template=template)
    assert [p.label for p in record.predictions] == [a["label"] for a in theirs]
    for prediction, answer in zip(record.predictions, theirs, strict=True):
        assert prediction.score == pytest.approx(answer["score"], abs=1e-4)


def test_organize_into_folders_named_by_your_labels(
    models: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    sorted_into = tmp_path / "sorted"
    output = tmp_path / "labels.jsonl"
    result = invoke(
        *zero_shot_args(models["clip"], "-o", output, "--organize", sorted_into), *photos
    )
    assert result.exit_code == 0, result.output
    placed: dict[str, str] = {}
    for folder in sorted_into.iterdir():
        for file in folder.iterdir():
            placed[file.name] = folder.name
    assert len(placed) == len(photos)  # each photo once
    for record in read_records(output.read_text(), "jsonl"):
        expected = "_review" if needs_review(record) else record.predictions[0].label
        assert placed[Path(record.input).name] == expected
    assert set(placed.values()) - {"_review"} <= set(LABELS)
    assert len(set(placed.values()) - {"_review"}) > 1


def test_resume_continues_with_the_same_labels_and_refuses_others(
    models: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    output = tmp_path / "labels.csv"
    first = invoke(*zero_shot_args(models["clip"], "-o", output), *photos[:5])
    assert first.exit_code == 0, first.output
    resumed = invoke(*zero_shot_args(models["clip"], "-o", output, "--resume"), *photos)
    assert resumed.exit_code == 0, resumed.output
    records = read_records(output.read_text(), "csv")
    assert [r.input for r in records] == [str(p) for p in photos]  # each once, in order
    whole = invoke(*zero_shot_args(models["clip"], "-f", "csv"), *photos)
    for ours, theirs in zip(records, read_records(whole.stdout, "csv"), strict=True):
        assert [p.label for p in ours.predictions] == [p.label for p in theirs.predictions]
        for mine, one_run in zip(ours.predictions, theirs.predictions, strict=True):
            assert mine.score == pytest.approx(one_run.score, abs=1e-5)  # other batches
    before = output.read_bytes()
    refusals = [
        ["-m", models["clip"], "--offline", "-q", "--labels", "cat, dog"],
        ["-m", models["clip"], "--offline", "-q"],
        [*zero_shot_args(models["clip"]), "--template", "a {} photo"],
    ]
    for args in refusals:
        refused = invoke(*args, "-o", output, "--resume", *photos)
        assert refused.exit_code == 2, refused.output
        (line,) = refused.output.strip().splitlines()
        assert line.startswith(f"Error: cannot resume '{output}': it was made with ")
        assert "--labels 'cat, dog, person, receipt, screenshot, food'" in line
    assert output.read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--labels", "cat, dog"], "--labels needs a zero-shot model (CLIP, SigLIP)"),
        (["-m", "{clip}"], "is a zero-shot model (clip) with no labels of its own"),
        (["-m", "{clip}", "--template", "a {}"], "--template applies to --labels"),
        (["-m", "{clip}", "--labels", "a", "--labels-file", "x"], "not both"),
        (["-m", "{clip}", "--labels", "cat, dog, cat"], "label 'cat' is given twice"),
        (["-m", "{clip}", "--labels", ","], "an empty label"),
        (["-m", "{clip}", "--labels", "a, b", "--template", "x"], "needs one {}"),
        (["-m", "{clip}", "--labels-file", "{missing}"], "cannot read --labels-file"),
    ],
)
def test_usage_errors_are_one_line_exit_2_and_load_nothing(
    args: list[str],
    message: str,
    models: dict[str, Path],
    tiny_model: Path,
    photos: list[Path],
    tmp_path: Path,
) -> None:
    import os

    filled = [
        a.format(clip=models["clip"], missing=tmp_path / "missing.txt") if "{" in a[:1] else a
        for a in args
    ]
    if "-m" not in filled:
        filled = ["-m", str(tiny_model), *filled]  # an image classifier
    result = run_probing_imports([*filled, "--offline", str(photos[0])], env=dict(os.environ))
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip().splitlines()[0]
    assert line.startswith("Error: ") and message in line, line
    assert len(result.stderr.strip().splitlines()) == 2  # the line, then the probe's
    assert not imported(result)["torch"]  # said before anything heavy loads


def test_env_shows_the_zero_shot_plan(models: dict[str, Path]) -> None:
    from resnet_cli.cli.env import env_app

    planned = runner.invoke(
        env_app, ["-m", str(models["siglip"]), "--labels", "a, b", "-f", "json"]
    )
    assert planned.exit_code == 0, planned.output
    facts = json.loads(planned.stdout)
    assert facts["plan"]["network"]["value"] == "zero-shot"
    assert "2 label(s) embedded once" in facts["plan"]["network"]["why"]
    assert facts["model"]["notes"] == []
    assert facts["model"]["zero_shot"] == {
        "labels": ["a", "b"],
        "template": "This is a photo of {}.",
    }
    assert facts["model"]["from"] == "--model"
    text = runner.invoke(env_app, ["-m", str(models["siglip"]), "--labels", "a, b"]).stdout
    lines = text.splitlines()
    model_line = lines.index(f"model: {models['siglip']} (from --model)")
    assert lines[model_line + 1] == "labels: a, b (zero-shot, each as 'This is a photo of {}.')"
    bare = runner.invoke(env_app, ["-m", str(models["siglip"]), "-f", "json"])
    (note,) = json.loads(bare.stdout)["model"]["notes"]
    assert json.loads(bare.stdout)["model"]["zero_shot"] is None
    assert "zero-shot model (siglip)" in note and "--labels" in note
    default = runner.invoke(env_app, ["--labels", "a, b", "-f", "json"])
    assert json.loads(default.stdout)["model"]["name"] == "openai/clip-vit-base-patch32"


def test_loading_says_trust_remote_code_and_reads_no_stdin(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 24's rule for every from_pretrained, the zero-shot loader's four included: the
    # flag said outright (left unset, transformers asks on the terminal), and the input list
    # on stdin unread while the model loads ("y" would have been an answer).
    import io
    import sys

    import transformers

    from resnet_cli.models.zero_shot import ZeroShot, load_zero_shot

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\nphotos/001.jpg\n"))
    calls: list[tuple[str, Any, str]] = []
    autos = (
        transformers.AutoConfig,
        transformers.AutoImageProcessor,
        transformers.AutoTokenizer,
        transformers.AutoModelForZeroShotImageClassification,
    )
    for auto in autos:
        real = auto.from_pretrained

        def recording(*args: Any, _real: Any = real, _name: str = auto.__name__, **kw: Any) -> Any:
            calls.append((_name, kw.get("trust_remote_code", "unset"), sys.stdin.read()))
            return _real(*args, **kw)

        monkeypatch.setattr(auto, "from_pretrained", recording)
    zero_shot = ZeroShot.of(LABELS)
    load_zero_shot(str(models["clip"]), None, True, zero_shot)
    first = len(calls)
    load_zero_shot(str(models["clip"]), None, True, zero_shot, trust_remote_code=True)
    assert {name for name, _, _ in calls} == {auto.__name__ for auto in autos}
    assert [(flag, read) for _, flag, read in calls[:first]] == [(False, "")] * first
    assert [(flag, read) for _, flag, read in calls[first:]] == [(True, "")] * first
    assert sys.stdin.read() == "y\nphotos/001.jpg\n"  # all of it left for the input list


def test_a_default_model_set_for_classifiers_is_passed_over_with_labels(
    models: dict[str, Path],
    tiny_model: Path,
    photos: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resnet_cli.cli.config import config_app
    from resnet_cli.cli.env import env_app
    from resnet_cli.config import DEFAULT_ZERO_SHOT_MODEL, resolve_model
    from resnet_cli.models.zero_shot import zero_shot_on_disk

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("RESNET_CLI_MODEL", raising=False)

    def labelled() -> tuple[str, str]:
        return resolve_model(None, True, zero_shot_on_disk)

    assert labelled() == (DEFAULT_ZERO_SHOT_MODEL, "default for --labels")
    assert runner.invoke(config_app, ["set", "model", str(tiny_model)]).exit_code == 0
    path = tmp_path / "xdg" / "resnet-cli" / "config.json"
    assert resolve_model(None) == (str(tiny_model), f"config file {path}")  # without labels
    assert labelled() == (
        DEFAULT_ZERO_SHOT_MODEL,
        f"default for --labels; config file {path} names {tiny_model}, an image classifier",
    )
    monkeypatch.setenv("RESNET_CLI_MODEL", str(models["siglip"]))
    assert labelled() == (str(models["siglip"]), "RESNET_CLI_MODEL")  # zero-shot: used
    monkeypatch.setenv("RESNET_CLI_MODEL", "org/not-downloaded")
    assert labelled() == ("org/not-downloaded", "RESNET_CLI_MODEL")  # its load will tell
    assert resolve_model(str(tiny_model), True, zero_shot_on_disk)[0] == str(tiny_model)

    # A run: the variable's zero-shot model scores the labels; the file's classifier is
    # passed over (offline, the CLIP default is not there: exit 3, not a usage error).
    monkeypatch.setenv("RESNET_CLI_MODEL", str(models["clip"]))
    run = invoke("--offline", "-q", "--labels", ", ".join(LABELS), "-k", "1", photos[0])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["predictions"][0]["label"] in LABELS
    monkeypatch.delenv("RESNET_CLI_MODEL")
    passed_over = invoke("--offline", "-q", "--labels", ", ".join(LABELS), photos[0])
    assert passed_over.exit_code == 3, passed_over.output
    assert f"model {DEFAULT_ZERO_SHOT_MODEL!r} is not in the local cache" in passed_over.stderr
    plain = invoke("--offline", "-q", "-k", "1", photos[0])  # without labels: the file's
    assert plain.exit_code == 0, plain.output
    facts = json.loads(runner.invoke(env_app, ["--labels", "a, b", "-f", "json"]).stdout)
    assert facts["model"]["name"] == DEFAULT_ZERO_SHOT_MODEL
    assert facts["model"]["from"].startswith("default for --labels; config file ")


def test_the_metadata_keeps_the_labels_and_the_score_floor_and_resume_checks_both(
    models: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    output = tmp_path / "labels.jsonl"
    first = invoke(*zero_shot_args(models["clip"], "-o", output, "--min-score", "0.1"), *photos[:4])
    assert first.exit_code == 0, first.output
    meta = json.loads((tmp_path / "labels.jsonl.meta.json").read_text())["resnet_classify"]
    assert meta["zero_shot"] == {"labels": LABELS, "template": "This is a photo of {}."}
    assert meta["min_score"] == 0.1
    before = output.read_bytes()
    for args, said in [
        (zero_shot_args(models["clip"], "--min-score", "0.2"), "--min-score 0.1"),
        (zero_shot_args(models["clip"]), "--min-score 0.1"),
        (
            ["-m", models["clip"], "--offline", "-q", "--labels", "cat, dog", "--min-score", "0.1"],
            "--labels 'cat, dog, person, receipt, screenshot, food'",
        ),
    ]:
        refused = invoke(*args, "-o", output, "--resume", *photos)
        assert refused.exit_code == 2, refused.output
        (line,) = refused.output.strip().splitlines()
        assert line.startswith(f"Error: cannot resume '{output}': it was made with ")
        assert said in line
    assert output.read_bytes() == before
    resumed = invoke(
        *zero_shot_args(models["clip"], "-o", output, "--min-score", "0.1", "--resume"), *photos
    )
    assert resumed.exit_code == 0, resumed.output
    records = read_records(output.read_text(), "jsonl")
    assert [r.input for r in records] == [str(p) for p in photos]
    assert all(p.score >= 0.1 and p.label in LABELS for r in records for p in r.predictions)
