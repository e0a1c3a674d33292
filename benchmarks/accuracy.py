"""Top-1 and top-5 accuracy of resnet-classify on labelled photos, for each precision and
runtime it has, beside the transformers pipeline, in one run.

    python benchmarks/accuracy.py [--images DIR] [--model FOLDER] [--out FILE.md] ...

Labelled photos (``--images``): an imagefolder whose class subfolders are named by ImageNet
synset id (``n02123045/``) or label text (``tabby, tabby cat/``, or one unambiguous name of
it: ``tabby cat/``), or files with a synset id in their names anywhere below DIR
(``ILSVRC2012_val_00000001_n01751748.JPEG``, ``n01440764_tench.jpg``). Without ``--images``,
the photos that ``make_labelled_photos.py`` assembles (``--foolbox`` adds foolbox's 20).
Class ids are ImageNet-1k's: the sorted synsets (timm's ``ImageNetInfo``).

Model (``--model``): a folder or hub id of an ImageNet-1k classifier; by default the real
EfficientNet-Lite0 that ``examples/make_real_model.py`` builds offline, cached in
benchmarks/_work/.

The runs, each a fresh process on the same files:

- pipeline: ``pipeline_classify.py`` (``transformers.pipeline``), the reference, once per photo;
- resnet-classify (``python -m resnet_cli -f jsonl --model M --offline``) with ``--exact``;
  ``-p fp32`` with RESNET_CLI_CPU_BF16=0 and an empty runtime cache (torch, then ONNX Runtime
  from image 65 on); ``-p fp32`` again, starting from the export that run left in the cache;
  ``-p bf16``; ``--precision auto``; and ``-p int8`` twice: as a first run, which calibrates
  on the first 64 scored images, and from the cache of a first run on 64 unrelated photos
  (bench.py's, or ``--calibration DIR``), as a user's later runs are. Their runtime cache is
  a temporary folder.

A set of fewer than ``--min-images`` (100) photos is classified several times over by the
resnet-classify runs, whole, so that the fp32 run passes the 64 images after which it swaps
runtimes and the repeats after the swap are scored too; accuracy counts every repeat, so it
equals the accuracy on the distinct photos whenever the repeats agree.

"max score gap" is the largest |score - pipeline's score| over every label in both top-5s of
an image. A run that fails is a row saying why, and the other runs go on (exit status 1).
About 4-5 minutes on 2 cores for the 22 photos (110 per resnet-classify run). Outputs and
logs stay in benchmarks/_work/accuracy-runs/.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import PIPELINE_SCRIPT, WORK, BenchError, machine_info, run_measured, say, tail
from make_labelled_photos import assemble, imagenet_descriptions, imagenet_synsets

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MODEL_DIR = WORK / "efficientnet-lite0-in1k"
PHOTOS_DIR = WORK / "labelled-photos"
MAKE_REAL_MODEL = REPO / "examples" / "make_real_model.py"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SYNSET = re.compile(r"n\d{8}")
TOP_K = 5
PIPELINE = "pipeline (reference)"


# --------------------------------------------------------------------------- labelled photos


@dataclass(frozen=True)
class Labelled:
    path: Path
    class_id: int


class LabelError(ValueError):
    """A file or folder whose ImageNet class cannot be told."""


def name_index(descriptions: Sequence[str]) -> dict[str, list[int]]:
    """Lower-cased label text -> class ids: the whole description and each comma-separated
    name in it ("tabby, tabby cat" gives "tabby, tabby cat", "tabby" and "tabby cat")."""
    index: dict[str, list[int]] = {}
    for class_id, text in enumerate(descriptions):
        names = {text.lower(), *(part.strip().lower() for part in text.split(","))}
        for name in names:
            index.setdefault(name, []).append(class_id)
    return index


def class_of(path: Path, root: Path, synsets: dict[str, int], names: dict[str, list[int]]) -> int:
    """The class of one photo: a synset id in its file name, else its folder's name (synset id
    or label text, underscores read as spaces). Raises LabelError."""
    found = [s for s in SYNSET.findall(path.stem) if s in synsets]
    if len(set(found)) == 1:
        return synsets[found[0]]
    if len(set(found)) > 1:
        raise LabelError(f"{path}: more than one ImageNet synset in its name ({found})")
    if path.parent == root:
        raise LabelError(f"{path}: no synset id in its name and no class folder above it")
    folder = path.parent.name
    if folder in synsets:
        return synsets[folder]
    ids = names.get(folder.replace("_", " ").strip().lower(), [])
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise LabelError(f"{path}: folder {folder!r} is not an ImageNet-1k synset id or label")
    raise LabelError(f"{path}: folder {folder!r} names several ImageNet classes: {ids}")


def find_labelled(root: Path) -> list[Labelled]:
    """Every image below ``root`` with its class, sorted by path; LabelError lists them all."""
    synsets = {synset: i for i, synset in enumerate(imagenet_synsets())}
    names = name_index(imagenet_descriptions())
    found, problems = [], []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # hidden, as resnet-classify skips them in folders
        try:
            found.append(Labelled(path, class_of(path, root, synsets, names)))
        except LabelError as exc:
            problems.append(str(exc))
    if problems:
        raise LabelError("\n".join(problems))
    if not found:
        raise LabelError(f"{root}: no images")
    return found


# --------------------------------------------------------------------------- model


def default_model(folder: Path) -> Path:
    """The real EfficientNet-Lite0 (examples/make_real_model.py), built once and cached."""
    if (folder / "config.json").exists() and (folder / "model.safetensors").exists():
        return folder
    say(f"building EfficientNet-Lite0 (ImageNet weights) in {folder} ...")
    spec = importlib.util.spec_from_file_location("make_real_model", MAKE_REAL_MODEL)
    if spec is None or spec.loader is None:
        raise BenchError(f"cannot load {MAKE_REAL_MODEL}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Written beside the target and renamed, so an interrupted build never looks complete.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".model-"))
    started = time.perf_counter()
    module.save_real_model(str(staging))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    say(f"  built in {time.perf_counter() - started:.1f} s")
    return folder


def model_labels(model: str) -> list[str]:
    """The model's label names by class id, as the pipeline prints them (its config's
    id2label; for a timm checkpoint transformers makes that from ``label_names``)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, local_files_only=True)
    except Exception as exc:  # a wrong path or an uncached hub id: one line, not a traceback
        raise BenchError(f"cannot read {model}'s config offline: {exc}") from exc
    return [str(config.id2label[i]) for i in range(config.num_labels)]


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunSpec:
    name: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cache: str = "fresh"  # runtime cache: "fresh" (its own, empty) or a name runs share


CALIBRATED_ELSEWHERE = "int8-other"  # the cache a first run on unrelated photos fills


RUNS = (
    RunSpec("resnet-classify --exact", ("--exact",)),
    # RESNET_CLI_CPU_BF16=0: fp32 takes the ONNX Runtime path even on a bf16 CPU.
    RunSpec(
        "resnet-classify -p fp32, first run", ("-p", "fp32"), {"RESNET_CLI_CPU_BF16": "0"}, "fp32"
    ),
    RunSpec(
        "resnet-classify -p fp32, from cache", ("-p", "fp32"), {"RESNET_CLI_CPU_BF16": "0"}, "fp32"
    ),
    RunSpec("resnet-classify -p bf16", ("-p", "bf16")),
    RunSpec("resnet-classify --precision auto", ()),
    # INT8 as a user's first run makes it (calibrated on the first 64 of the scored photos,
    # repeats included), and as a later run finds it, calibrated by a first run on 64 photos
    # unrelated to the scored ones (bench.py's; with --images, those of --calibration).
    RunSpec("resnet-classify -p int8, first run", ("-p", "int8"), {}, "int8-own"),
    RunSpec(
        "resnet-classify -p int8, calibrated on other photos", ("-p", "int8"), {}, "int8-other"
    ),
)


@dataclass
class Outcome:
    name: str
    images: int
    records: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = float("nan")
    notes: list[str] = field(default_factory=list)
    failed: str | None = None


class Runner:
    def __init__(self, model: str, runs_dir: Path, cache_root: Path, device: str):
        self.model, self.runs_dir, self.cache_root, self.device = (
            model,
            runs_dir,
            cache_root,
            device,
        )
        self.env = dict(os.environ)
        # Everything is local: neither tool should ask the hub anything.
        self.env["HF_HUB_OFFLINE"] = "1"
        for name in ("RESNET_CLI_DEBUG", "RESNET_CLI_CPU_BF16", "RESNET_CLI_CACHE_DIR"):
            self.env.pop(name, None)
        self.serial = 0

    def _stem(self, name: str) -> Path:
        self.serial += 1
        return self.runs_dir / f"{self.serial:02d}-{re.sub(r'[^a-z0-9]+', '-', name.lower())}"

    def pipeline(self, files: Sequence[Path]) -> Outcome:
        stem = self._stem("pipeline")
        listing, output, log = (stem.with_suffix(s) for s in (".list", ".jsonl", ".log"))
        listing.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
        command = [sys.executable, str(PIPELINE_SCRIPT), self.model, str(listing), str(output)]
        command += ["--device", "0" if self.device == "cuda" else "-1"]
        return self._finish(PIPELINE, files, command, None, output, log, self.env)

    def calibrate(self, spec: RunSpec, photos: Sequence[Path]) -> str:
        """A first run of ``spec`` on ``photos`` (unrelated to the scored ones), untimed, to
        fill its runtime cache; its summary and warning lines."""
        stem = self._stem(f"{spec.name} calibration")
        listing, output, log = (stem.with_suffix(s) for s in (".list", ".jsonl", ".log"))
        listing.write_text("".join(f"{p}\n" for p in photos), encoding="utf-8")
        cache = self.cache_root / spec.cache
        env = {**self.env, **spec.env, "RESNET_CLI_CACHE_DIR": str(cache)}
        command = [sys.executable, "-m", "resnet_cli", "--model", self.model, "--offline"]
        command += ["-f", "jsonl", "-o", str(output), "-d", self.device, *spec.args, "-"]
        say(f"  {spec.name}: calibrating on {len(photos)} other photos ...")
        run_measured(command, stdin=listing, log=log, env=env)
        return " ".join(log.read_text(errors="replace").split("\n")[-3:]).strip()

    def ours(self, spec: RunSpec, files: Sequence[Path]) -> Outcome:
        stem = self._stem(spec.name)
        listing, output, log = (stem.with_suffix(s) for s in (".list", ".jsonl", ".log"))
        listing.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
        cache = self.cache_root / (f"fresh-{self.serial}" if spec.cache == "fresh" else spec.cache)
        cached = sorted(p.name for p in cache.rglob("*") if p.is_file()) if cache.exists() else []
        env = {**self.env, **spec.env, "RESNET_CLI_CACHE_DIR": str(cache)}
        # Paths on stdin ("-"): a repeated set can be longer than a command line may be.
        command = [sys.executable, "-m", "resnet_cli", "--model", self.model, "--offline"]
        command += ["-f", "jsonl", "-k", str(TOP_K), "-o", str(output), "-d", self.device]
        command += [*spec.args, "-"]
        outcome = self._finish(spec.name, files, command, listing, output, log, env)
        if spec.cache != "fresh":
            state = f"{len(cached)} file(s)" if cached else "empty"
            outcome.notes.insert(0, f"runtime cache at start: {state}")
        return outcome

    def _finish(
        self,
        name: str,
        files: Sequence[Path],
        command: list[str],
        stdin: Path | None,
        output: Path,
        log: Path,
        env: dict[str, str],
    ) -> Outcome:
        outcome = Outcome(name, len(files))
        say(f"  {name}: {len(files)} images ...")
        try:
            outcome.wall_s, _, code = run_measured(command, stdin=stdin, log=log, env=env)
        except BenchError as exc:
            outcome.failed = str(exc)
            return outcome
        if code != 0:
            last = tail(log, 1).strip() or "(no output)"
            outcome.failed = f"exit {code}: {last} (log: {log})"
            return outcome
        if name != PIPELINE:
            outcome.notes.append(tail(log, 1).strip())  # resnet-classify's summary line
        records = []
        if output.exists():
            with open(output, encoding="utf-8") as handle:
                records = [json.loads(line) for line in handle if line.strip()]
        names = [r.get("input") for r in records]
        if names != [str(p) for p in files]:
            outcome.failed = f"{len(records)} records for {len(files)} inputs, or out of order"
            return outcome
        outcome.records = records
        return outcome


def calibration_photos(folder: Path | None, count: int = 64) -> list[Path]:
    """The photos INT8 is calibrated on in the row that calibrates on other photos."""
    if folder is None:
        from bench import IMAGENET, build_corpus, require_scikit_image

        require_scikit_image()
        return build_corpus(IMAGENET, count)
    found = [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if len(found) < count:
        raise BenchError(f"{folder}: {len(found)} photos, INT8 calibrates on {count}")
    return found[:count]


# --------------------------------------------------------------------------- scoring


@dataclass
class Scores:
    scored: int = 0
    errors: int = 0
    top1: int = 0
    top5: int = 0
    agree: int = 0
    gap: float = 0.0


def label_ids(labels: Sequence[str]) -> dict[str, set[int]]:
    """Label text -> the class ids that carry it. The pipeline prints labels only, and
    ImageNet-1k names two classes "crane" (the bird, 134; the machine, 517): a "crane" counts
    as either."""
    ids: dict[str, set[int]] = {}
    for class_id, label in enumerate(labels):
        ids.setdefault(label, set()).add(class_id)
    return ids


def predicted_ids(prediction: dict[str, Any], ids: dict[str, set[int]]) -> set[int]:
    if "class_id" in prediction:
        return {int(prediction["class_id"])}
    return ids.get(str(prediction["label"]), set())


def score(
    records: Sequence[dict[str, Any]],
    truth: dict[str, int],
    reference: dict[str, list[dict[str, Any]]],
    ids: dict[str, set[int]],
) -> Scores:
    result = Scores()
    for record in records:
        result.scored += 1
        predictions = record.get("predictions") or []
        if not predictions:
            result.errors += 1
            continue
        wanted = truth[record["input"]]
        result.top1 += wanted in predicted_ids(predictions[0], ids)
        result.top5 += any(wanted in predicted_ids(p, ids) for p in predictions[:TOP_K])
        theirs = reference.get(record["input"])
        if not theirs:
            continue
        result.agree += predictions[0]["label"] == theirs[0]["label"]
        their_scores = {p["label"]: float(p["score"]) for p in theirs[:TOP_K]}
        for p in predictions[:TOP_K]:
            if p["label"] in their_scores:
                result.gap = max(result.gap, abs(float(p["score"]) - their_scores[p["label"]]))
    return result


def render_table(
    outcomes: Sequence[Outcome],
    truth: dict[str, int],
    reference: dict[str, list[dict[str, Any]]],
    ids: dict[str, set[int]],
    distinct: int,
) -> list[str]:
    lines = [
        "| run | images | top-1 | top-5 | top-1 agreement with pipeline "
        "| max score gap vs pipeline | wall s | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for outcome in outcomes:
        images = f"{outcome.images}" + (
            f" ({distinct} x {outcome.images // distinct})" if outcome.images != distinct else ""
        )
        if outcome.failed is not None:
            notes = "; ".join([*outcome.notes, f"FAILED: {outcome.failed}"]).replace("|", "/")
            lines.append(f"| {outcome.name} | {images} | - | - | - | - | - | {notes} |")
            continue
        s = score(outcome.records, truth, reference, ids)
        n = max(s.scored, 1)
        notes_list = list(outcome.notes)
        if s.errors:
            notes_list.append(f"{s.errors} image error(s), counted wrong")
        if outcome.name == PIPELINE:
            agree = gap = "(reference)"
        elif not reference:  # the pipeline run failed: nothing to compare with
            agree = gap = "n/a"
        else:
            agree, gap = f"{s.agree / n:.1%}", f"{s.gap:.2e}"
        notes = "; ".join(notes_list).replace("|", "/")
        lines.append(
            f"| {outcome.name} | {images} | {s.top1 / n:.1%} | {s.top5 / n:.1%} | {agree} "
            f"| {gap} | {outcome.wall_s:.1f} | {notes} |"
        )
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Top-1/top-5 accuracy of resnet-classify's precisions and runtimes beside "
        "the transformers pipeline, on labelled photos."
    )
    parser.add_argument(
        "--images", type=Path, help="labelled folder [the photos make_labelled_photos.py finds]"
    )
    parser.add_argument(
        "--foolbox",
        type=Path,
        help="without --images: foolbox's wheel or data folder, for its 20 ImageNet photos",
    )
    parser.add_argument(
        "--model", help="model folder or hub id (ImageNet-1k) [EfficientNet-Lite0, built offline]"
    )
    parser.add_argument(
        "--min-images",
        type=int,
        default=100,
        help="resnet-classify runs repeat a smaller set until they have this many, so fp32 "
        "passes its runtime swap at 64 images [100]",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="photos for the INT8 row calibrated elsewhere (the first 64 image files below "
        "it) [64 of bench.py's photos]",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="[cpu]")
    parser.add_argument("--out", type=Path, help="also write the report to this markdown file")
    args = parser.parse_args(argv)
    if args.min_images < 1:
        parser.error("--min-images must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    if args.images is None:
        assemble(PHOTOS_DIR, args.foolbox)
        args.images = PHOTOS_DIR
    photos = find_labelled(args.images)
    model = args.model or str(default_model(MODEL_DIR))
    labels = model_labels(model)
    if len(labels) != 1000:
        raise BenchError(f"{model} has {len(labels)} labels: ImageNet-1k accuracy needs 1000")
    mismatched = sum(a != b for a, b in zip(labels, imagenet_descriptions(), strict=True))
    ids = label_ids(labels)

    distinct = [p.path for p in photos]
    truth = {str(p.path): p.class_id for p in photos}
    # Whole repeats, so every photo weighs the same in the accuracy of every run.
    repeats = math.ceil(args.min_images / len(distinct))
    files = distinct * repeats

    runs_dir = WORK / "accuracy-runs" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs_dir.mkdir(parents=True)
    cache_root = Path(tempfile.mkdtemp(prefix="resnet-cli-cache-"))
    say(f"{len(distinct)} labelled photos from {args.images}; model {model}")
    try:
        runner = Runner(model, runs_dir, cache_root, args.device)
        outcomes = [runner.pipeline(distinct)]
        for spec in RUNS:
            calibrated = None
            if spec.cache == CALIBRATED_ELSEWHERE:
                calibrated = runner.calibrate(spec, calibration_photos(args.calibration))
            outcomes.append(runner.ours(spec, files))
            if calibrated is not None:
                outcomes[-1].notes.insert(0, f"calibration run: {calibrated}")
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    reference = {r["input"]: r["predictions"] for r in outcomes[0].records}

    info = machine_info()
    lines = ["# resnet-classify accuracy beside the transformers pipeline", ""]
    lines += [f"- {k}: {info[k]}" for k in ("host", "cpu", "native bf16", "cores")]
    lines += [f"- {k}: {info[k]}" for k in ("torch", "transformers", "onnxruntime", "gpu")]
    lines += [
        f"- model: {model}"
        + (f" ({mismatched} labels differ from ImageNet's)" if mismatched else ""),
        f"- photos: {len(distinct)} from {args.images}, "
        f"{len({p.class_id for p in photos})} classes; resnet-classify runs take them "
        f"{repeats} time(s) over",
        f"- raw outputs and logs: {runs_dir}",
        f"- total time: {time.perf_counter() - began:.0f} s",
        "",
        *render_table(outcomes, truth, reference, ids, len(distinct)),
        "",
        "max score gap: the largest |score - pipeline's| over the labels in both top-5s of an "
        "image. wall s: the whole command (start-up and model load included).",
        "",
    ]
    report = "\n".join(lines)
    print()
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
        print(f"written to {args.out}")
    return 0 if all(o.failed is None for o in outcomes) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, LabelError) as exc:
        print(f"accuracy benchmark aborted: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
