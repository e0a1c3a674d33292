"""INT8 beside fp32: which library, how fast, how right, and whether the rest of the run keeps up.

    python benchmarks/int8_bench.py [--images 300] [--rounds 3] [--only PARTS] [--sweep]

Two models: the full-size ResNet-50 with random weights that ``bench.py`` builds, and the real
ImageNet-trained EfficientNet-Lite0 (``examples/make_real_model.py``). Four parts (``--only``
takes a comma-separated list of them):

- models: the model alone, batch 16, ``--rounds`` interleaved rounds (A B C D A B C D ...):
  ONNX Runtime fp32, ONNX Runtime INT8 (static QDQ, per-channel weights, first convolution in
  fp32), OpenVINO fp32 and OpenVINO INT8 as ``--precision int8`` makes it
  (``resnet_cli.runtimes.int8.quantize``). Calibrated on 64 of bench.py's photos.
- variants: on the real EfficientNet-Lite0, each INT8 variant tried (ONNX Runtime's, and
  ``quantize``'s departures from ``--precision int8``'s recipe one at a time: bias correction,
  channel alignment, preset, activation ranges, model type and SmoothQuant, more layers in
  fp32, 128 and 300 calibration photos), calibrated on 64 photos unrelated to the ones scored
  (as a user's own are): top-1 and top-5 on the labelled photos (``make_labelled_photos.py``),
  the share of them and of 300 other photos whose top-1 is fp32's, the largest score gap, and
  the model's own images/s interleaved with the recipe's. ``--sweep`` adds the sensitivity
  sweep: each quantized layer kept in fp32 on top of the recipe, one at a time, judged on 300
  more photos (neither calibration nor held-out ones), and rows for its best 1, 2, 4 and 8.
- commands: the whole command on ``--images`` ImageNet-size photos, interleaved: the
  transformers pipeline, ``resnet-classify -p fp32`` and ``-p int8`` (both from the runtime
  cache that an untimed first run filled, as every run after a model's first does).
- stages: where a run's time goes at INT8 speed, per image on one core: reading the file,
  decoding it (DCT-downscaled), resizing, cropping and normalizing (the processor), stacking
  the batch; beside the model's own time per image on all cores.

Results: printed, and written to ``benchmarks/results-int8-HOST-DATE.md``. Needs the int8 and
bench extras (OpenVINO, NNCF, scikit-image) and the dev one (timm, the real model's weights).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accuracy import MODEL_DIR as REAL_MODEL_DIR
from accuracy import PHOTOS_DIR, default_model, find_labelled
from bench import (
    IMAGENET,
    MODEL_DIR,
    PIPE,
    WORK,
    Runner,
    build_corpus,
    build_model,
    load_average,
    machine_info,
    require_scikit_image,
    say,
    warm_page_cache,
)
from make_labelled_photos import assemble

HERE = Path(__file__).resolve().parent
BATCH = 16
CALIBRATION = 64
OTHERS = 300  # held-out photos in the variants part, and as many to tune on


# --------------------------------------------------------------------------- models


class Model:
    """One checkpoint: its torch model exported to ONNX, and its processor in NumPy."""

    def __init__(self, name: str, folder: Path):
        from resnet_cli import load_classifier
        from resnet_cli.models.checkpoint import array_processor, local_files, read_json
        from resnet_cli.runtimes import onnx_runtime

        self.name, self.folder = name, folder
        classifier = load_classifier(str(folder), device="cpu", precision="fp32", runtime="torch")
        assert classifier.input_shape is not None
        import torch

        self.onnx = onnx_runtime.export(classifier.model, torch.randn(2, *classifier.input_shape))
        files = local_files(str(folder), None)
        assert files is not None
        self.processor = array_processor(files, read_json(files["config.json"]))
        self.resize = classifier.resize

    def pixels(self, paths: Sequence[Path]) -> np.ndarray:
        from resnet_cli.inputs.decode import decode_image, read_file

        return np.stack(
            [
                self.processor.prepare(decode_image(read_file(str(p)), resize=self.resize))
                for p in paths
            ]
        ).astype(np.float32)

    def openvino_model(self) -> Any:
        from resnet_cli.runtimes.int8 import import_openvino

        openvino = import_openvino()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            path.write_bytes(self.onnx)
            return openvino.Core().read_model(str(path))


def ort_fp32(model: Model) -> Callable[[np.ndarray], np.ndarray]:
    from resnet_cli.runtimes.hardware import usable_cores
    from resnet_cli.runtimes.onnx_runtime import INPUT, new_session

    session = new_session(model.onnx, usable_cores())
    return lambda x: session.run(None, {INPUT: x})[0]


def ort_int8(
    model: Model, calibration: np.ndarray, depthwise_in_fp32: bool = False
) -> Callable[[np.ndarray], np.ndarray]:
    """ONNX Runtime's static quantizer: QDQ, per-channel int8 weights, uint8 activations,
    MinMax calibration, the first convolution (and, if asked, the depthwise ones) in fp32."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from resnet_cli.runtimes.hardware import usable_cores
    from resnet_cli.runtimes.onnx_runtime import INPUT, new_session

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration[i : i + 8] for i in range(0, len(calibration), 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: batch}

    with tempfile.TemporaryDirectory() as folder:
        plain, prepared, quantized = (Path(folder) / n for n in ("a.onnx", "b.onnx", "c.onnx"))
        plain.write_bytes(model.onnx)
        quant_pre_process(str(plain), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        convolutions = [n for n in graph.node if n.op_type == "Conv"]
        grouped = [
            n.name for n in convolutions if any(a.name == "group" and a.i > 1 for a in n.attribute)
        ]
        excluded = [convolutions[0].name] + (grouped if depthwise_in_fp32 else [])
        with contextlib.redirect_stdout(sys.stderr):
            quantize_static(
                str(prepared),
                str(quantized),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
            )
        session = new_session(quantized.read_bytes(), usable_cores())
    return lambda x: session.run(None, {INPUT: x})[0]


def ov_fp32(model: Model) -> Callable[[np.ndarray], np.ndarray]:
    from resnet_cli.runtimes.hardware import usable_cores
    from resnet_cli.runtimes.int8 import OpenVinoForward

    return OpenVinoForward(model.openvino_model(), usable_cores()).run


def ov_int8(
    model: Model, calibration: np.ndarray, **variant: Any
) -> Callable[[np.ndarray], np.ndarray]:
    """OpenVINO INT8 as ``--precision int8`` makes it, or one of ``quantize``'s variants."""
    from resnet_cli.runtimes.hardware import usable_cores
    from resnet_cli.runtimes.int8 import OpenVinoForward, quantize

    quantized = quantize(model.openvino_model(), calibration, **variant)
    return OpenVinoForward(quantized, usable_cores()).run


def rates(
    runtimes: dict[str, Callable[[np.ndarray], np.ndarray]], batch: np.ndarray, rounds: int
) -> dict[str, float]:
    """Images/s of each runtime on ``batch``, median of interleaved rounds of about 2 s each."""
    seconds: dict[str, list[float]] = {name: [] for name in runtimes}
    calls = {}
    for name, run in runtimes.items():  # warm-up, and how many calls make about 2 s
        run(batch)
        started = time.perf_counter()
        run(batch)
        calls[name] = max(2, round(2.0 / (time.perf_counter() - started)))
    for _ in range(rounds):
        for name, run in runtimes.items():
            started = time.perf_counter()
            for _ in range(calls[name]):
                run(batch)
            seconds[name].append((time.perf_counter() - started) / (calls[name] * len(batch)))
    return {name: 1.0 / statistics.median(values) for name, values in seconds.items()}


def models_table(
    models: Sequence[Model], corpus: Sequence[Path], rounds: int
) -> tuple[list[str], dict[str, float]]:
    lines = [
        f"Model only, batch {BATCH}, images/s (median of {rounds} interleaved rounds):",
        "",
        "| model | ORT fp32 | ORT INT8 | OpenVINO fp32 | OpenVINO INT8 (ours) "
        "| ORT INT8 / ORT fp32 | ours / ORT fp32 | ours / ORT INT8 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    int8_rates = {}
    for model in models:
        say(f"models: {model.name} ...")
        calibration = model.pixels(corpus[:CALIBRATION])
        batch = model.pixels(corpus[CALIBRATION : CALIBRATION + BATCH])
        runtimes = {
            "ort fp32": ort_fp32(model),
            "ort int8": ort_int8(model, calibration),
            "ov fp32": ov_fp32(model),
            "ov int8": ov_int8(model, calibration),
        }
        got = rates(runtimes, batch, rounds)
        int8_rates[model.name] = got["ov int8"]
        int8_rates[f"{model.name} fp32"] = got["ort fp32"]
        lines.append(
            f"| {model.name} | {got['ort fp32']:.1f} | {got['ort int8']:.1f} "
            f"| {got['ov fp32']:.1f} | {got['ov int8']:.1f} "
            f"| {got['ort int8'] / got['ort fp32']:.2f}x | {got['ov int8'] / got['ort fp32']:.2f}x "
            f"| {got['ov int8'] / got['ort int8']:.2f}x |"
        )
        say(f"  {lines[-1]}")
    return lines, int8_rates


# --------------------------------------------------------------------------- variants


Run = Callable[[np.ndarray], np.ndarray]


def logits(run: Run, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([run(pixels[i : i + BATCH]) for i in range(0, len(pixels), BATCH)])


def same_top1(got: np.ndarray, reference: np.ndarray) -> float:
    return float(np.mean(got.argmax(-1) == reference.argmax(-1)))


def mean_gap(got: np.ndarray, reference: np.ndarray) -> float:
    from resnet_cli.runtimes.onnx_runtime import scores_of

    return float(np.abs(scores_of(got, False) - scores_of(reference, False)).sum(-1).mean())


def sensitivity(
    model: Model, calibration: np.ndarray, tuning: np.ndarray, reference: np.ndarray
) -> list[tuple[str, float, float]]:
    """Each layer ``--precision int8`` quantizes, kept in fp32 on top of the recipe, one at a
    time: (its name, the same top-1 as fp32 on ``tuning``, the mean total score gap there),
    the most helpful first. ``tuning`` is neither the calibration nor the held-out photos."""
    from resnet_cli.runtimes.int8 import fp32_layer_names

    graph = model.openvino_model()
    kept = set(fp32_layer_names(graph, ("first", "depthwise")))
    layers = [n for n in fp32_layer_names(graph, ("all",)) if n not in kept]
    found = []
    for i, name in enumerate(layers, 1):
        got = logits(ov_int8(model, calibration, fp32_names=(name,)), tuning)
        found.append((name, same_top1(got, reference), mean_gap(got, reference)))
        say(f"  sweep {i}/{len(layers)}: {found[-1][1]:.1%} {found[-1][2]:.4f} {name}")
    return sorted(found, key=lambda row: (-row[1], row[2]))


def variants_table(
    model: Model, corpus: Sequence[Path], others: int, foolbox: Path | None, sweep: bool
) -> list[str]:
    from resnet_cli.runtimes.int8 import vnni
    from resnet_cli.runtimes.onnx_runtime import scores_of

    assemble(PHOTOS_DIR, foolbox)
    labelled = find_labelled(PHOTOS_DIR)
    truth = np.array([p.class_id for p in labelled])
    photos = model.pixels([p.path for p in labelled])
    # The corpus, split: calibration (the first CALIBRATION photos, then the photos past the
    # tuning ones for the larger calibrations), held-out (scored), tuning (the sweep's).
    held_out = model.pixels(corpus[CALIBRATION : CALIBRATION + others])
    tuning_files = corpus[CALIBRATION + others : CALIBRATION + 2 * others]
    spare = corpus[CALIBRATION + 2 * others :]

    def calibration(count: int = CALIBRATION) -> np.ndarray:
        return model.pixels([*corpus[:CALIBRATION], *spare[: count - CALIBRATION]])

    calibration_64 = calibration()
    reference = ort_fp32(model)
    ref_photos, ref_others = logits(reference, photos), logits(reference, held_out)
    recipe = ov_int8(model, calibration_64)
    variants: list[tuple[str, Callable[[], Run]]] = [
        ("fp32 (ONNX Runtime)", lambda: reference),
        ("ORT QDQ, first conv fp32", lambda: ort_int8(model, calibration_64)),
        ("ORT QDQ, first + depthwise convs fp32", lambda: ort_int8(model, calibration_64, True)),
        (
            "NNCF mixed, first conv fp32",
            lambda: ov_int8(model, calibration_64, fp32=("first",)),
        ),
        (
            "NNCF mixed, first + depthwise fp32, 7-bit weights",
            lambda: ov_int8(model, calibration_64, seven_bit=True),
        ),
        (f"ours on this CPU ({'8' if vnni() else '7'}-bit weights)", lambda: recipe),
    ]
    # Departures from ours, one at a time (8-bit weights where the CPU has VNNI).
    for name, variant in (
        ("full bias correction", {"bias_correction": "full"}),
        ("no bias correction", {"bias_correction": "none"}),
        ("channel alignment", {"channel_alignment": True}),
        ("preset performance", {"preset": "performance"}),
        ("8-bit weights on the first quantized layer too", {"eight_bit_first": True}),
        ("activations' global min/max", {"activations_range": "minmax"}),
        ("activations' ranges by histogram", {"activations_range": "histogram"}),
        ("model_type transformer", {"model_type": "transformer"}),
        ("SmoothQuant alpha 0.5", {"model_type": "transformer", "smooth_quant": 0.5}),
        ("SmoothQuant alpha 0.95", {"model_type": "transformer", "smooth_quant": 0.95}),
        ("+ second conv fp32", {"fp32": ("first", "second", "depthwise")}),
        (
            "+ second conv fp32, activations' global min/max",
            {"fp32": ("first", "second", "depthwise"), "activations_range": "minmax"},
        ),
        ("+ residual sums and pooling fp32", {"fp32_types": ("Add", "ReduceMean")}),
        (
            "every convolution and the classifier fp32 (only sums and pooling INT8)",
            {"fp32": ("all",)},
        ),
        ("+ classifier fp32", {"fp32": ("first", "depthwise", "classifier")}),
        ("+ last conv fp32", {"fp32": ("first", "depthwise", "last")}),
        ("+ last conv + classifier fp32", {"fp32": ("first", "depthwise", "last", "classifier")}),
    ):
        variants.append((f"ours, {name}", lambda v=variant: ov_int8(model, calibration_64, **v)))
    for count in (128, 300):
        variants.append(
            (f"ours, {count} calibration photos", lambda c=count: ov_int8(model, calibration(c)))
        )
    notes = []
    if sweep:
        say(f"sweep: one more layer in fp32 at a time, on {len(tuning_files)} tuning photos ...")
        tuning = model.pixels(tuning_files)
        ranked = sensitivity(model, calibration_64, tuning, logits(reference, tuning))
        base = same_top1(logits(recipe, tuning), logits(reference, tuning))
        notes += [
            f"Sweep (same top-1 as fp32 on the {len(tuning_files)} tuning photos; ours: "
            f"{base:.1%}), the ten most helpful layers to keep in fp32:",
            "",
            *[
                f"- {agree:.1%}, mean score gap {gap:.4f}: `{name}`"
                for name, agree, gap in ranked[:10]
            ],
        ]
        for top in (1, 2, 4, 8):
            names = tuple(name for name, _, _ in ranked[:top])
            variants.append(
                (
                    f"ours, + the sweep's top {top} in fp32",
                    lambda n=names: ov_int8(model, calibration_64, fp32_names=n),
                )
            )
    lines = [
        f"INT8 variants on the real EfficientNet-Lite0, calibrated on {CALIBRATION} photos "
        f"unrelated to the scored ones (unless the row says more); {len(labelled)} labelled "
        f"photos, {len(held_out)} others (held out: neither calibration nor tuning photos); "
        f"model only, batch {BATCH}, images/s interleaved with ours (median of 3 rounds):",
        "",
        "| variant | top-1 | top-5 | same top-1 as fp32 (labelled) "
        "| same top-1 as fp32 (others) | (others fp32 scores >= 0.5) | largest score gap "
        "| images/s | / ours |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sure = scores_of(ref_others, False).max(axis=-1) >= 0.5
    for name, make in variants:
        say(f"variants: {name} ...")
        run = make()
        got_photos, got_others = logits(run, photos), logits(run, held_out)
        top5 = np.argsort(-got_photos, axis=-1)[:, :5]
        gap = np.abs(scores_of(got_others, False) - scores_of(ref_others, False)).max()
        speed = rates({"ours": recipe, "variant": run}, held_out[:BATCH], 3)
        lines.append(
            f"| {name} | {np.mean(got_photos.argmax(-1) == truth):.1%} "
            f"| {np.mean([t in row for t, row in zip(truth, top5, strict=True)]):.1%} "
            f"| {same_top1(got_photos, ref_photos):.1%} "
            f"| {same_top1(got_others, ref_others):.1%} "
            f"| {np.mean((got_others.argmax(-1) == ref_others.argmax(-1))[sure]):.1%} "
            f"({sure.sum()}) | {gap:.3f} | {speed['variant']:.0f} "
            f"| {speed['variant'] / speed['ours']:.2f} |"
        )
        say(f"  {lines[-1]}")
    return [*lines, "", *notes] if notes else lines


# --------------------------------------------------------------------------- commands


def commands_table(
    models: Sequence[Model],
    files: Sequence[Path],
    calibration: Sequence[Path],
    rounds: int,
    model_rates: dict[str, float],
    runs_dir: Path,
) -> list[str]:
    lines = [
        f"Whole command on {len(files)} ImageNet-size photos, images/s (median of {rounds} "
        "interleaved rounds; the time from the command's start: interpreter, imports, model "
        "load):",
        "",
        "| model | pipeline | -p fp32 | -p int8 | int8 / fp32 | int8 / pipeline "
        "| fp32 command / fp32 model only | int8 command / int8 model only |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for model in models:
        runner = Runner(model.folder, runs_dir / model.name)
        # The speed of INT8 whatever the guard says of bench.py's photos (crops and textures
        # the models are unsure of): its verdict on them is reported beside the table.
        runner.env["RESNET_CLI_INT8_AGREEMENT"] = "0"
        (runs_dir / model.name).mkdir(parents=True, exist_ok=True)
        say(f"commands: {model.name}: first runs (untimed) fill the runtime cache ...")
        runner.ours_run("warm-fp32", files[: BATCH * 5], 0, extra_args=("-p", "fp32"))
        first = runner.ours_run("warm-int8", calibration, 0, quiet=False, extra_args=("-p", "int8"))
        say(f"  -p int8 first run: {first.extra.get('summary', '').strip()}")
        verdicts.append(f"- {model.name}: {guard_verdict(Path(first.output))}")
        got: dict[str, list[float]] = {PIPE: [], "fp32": [], "int8": []}
        for round_ in range(1, rounds + 1):
            got["fp32"].append(
                runner.ours_run("fp32", files, round_, extra_args=("-p", "fp32")).rate
            )
            got[PIPE].append(runner.pipe_run("pipeline", files, round_).rate)
            int8 = runner.ours_run("int8", files, round_, quiet=False, extra_args=("-p", "int8"))
            got["int8"].append(int8.rate)
            if "int8" not in int8.extra.get("summary", ""):
                say(f"  NOTE: -p int8 did not run in int8: {int8.extra.get('summary')}")
            say(
                f"  round {round_}: pipeline {got[PIPE][-1]:.1f}, fp32 {got['fp32'][-1]:.1f}, "
                f"int8 {got['int8'][-1]:.1f} images/s"
            )
        pipe, fp32, int8_rate = (statistics.median(got[k]) for k in (PIPE, "fp32", "int8"))
        shares = [
            f"{rate / model_rates[key]:.0%}" if key in model_rates else "n/a"
            for rate, key in ((fp32, f"{model.name} fp32"), (int8_rate, model.name))
        ]
        lines.append(
            f"| {model.name} | {pipe:.1f} | {fp32:.1f} | {int8_rate:.1f} | {int8_rate / fp32:.2f}x "
            f"| {int8_rate / pipe:.2f}x | {shares[0]} | {shares[1]} |"
        )
    lines += [
        "",
        f"The guard's verdict on the {len(calibration)} photos the first -p int8 run calibrated "
        "on (the threshold was set to 0 for these speed runs, so that INT8 runs whatever it "
        "says):",
        "",
        *verdicts,
    ]
    return lines


def guard_verdict(output: Path) -> str:
    """What the first run's metadata says of its calibration."""
    import json

    meta = json.loads(Path(f"{output}.meta.json").read_text())["resnet_classify"]["int8"]
    return (
        f"same top-1 as fp32 on {meta['same_top1']}% of {meta['images']} images, largest "
        f"score gap {meta['max_score_gap']} (at the default 95% threshold: "
        f"{'accepted' if meta['same_top1'] >= 95 else 'refused'})"
    )


# --------------------------------------------------------------------------- stages


def stages_table(models: Sequence[Model], files: Sequence[Path], rounds: int) -> list[str]:
    from resnet_cli.inputs.decode import decode_image, read_file

    lines = [
        f"Where the time goes, ms per image: each stage on one core over {len(files)} photos; "
        "the model INT8 (OpenVINO), batch 16, on every core:",
        "",
        "| model | read | decode (DCT-downscaled) | resize, crop, normalize | stack | "
        "decode path total | model INT8 | decode path / model |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model in models:
        say(f"stages: {model.name} ...")
        best: dict[str, float] = {}
        for _ in range(rounds):
            spent = dict.fromkeys(("read", "decode", "prepare", "stack"), 0.0)
            prepared = []
            for path in files:
                started = time.perf_counter()
                data = read_file(str(path))
                read = time.perf_counter()
                image = decode_image(data, resize=model.resize)
                decoded = time.perf_counter()
                prepared.append(model.processor.prepare(image))
                done = time.perf_counter()
                spent["read"] += read - started
                spent["decode"] += decoded - read
                spent["prepare"] += done - decoded
            started = time.perf_counter()
            for i in range(0, len(prepared), BATCH):
                np.stack(prepared[i : i + BATCH])
            spent["stack"] = time.perf_counter() - started
            for name, value in spent.items():
                best[name] = min(best.get(name, float("inf")), value * 1000 / len(files))
        calibration = model.pixels(files[:CALIBRATION])
        rate = rates({"int8": ov_int8(model, calibration)}, calibration[:BATCH], rounds)["int8"]
        model_ms = 1000 / rate
        path_ms = sum(best.values())
        lines.append(
            f"| {model.name} | {best['read']:.2f} | {best['decode']:.2f} | {best['prepare']:.2f} "
            f"| {best['stack']:.2f} | {path_ms:.2f} | {model_ms:.2f} | {path_ms / model_ms:.2f} |"
        )
    return lines


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="photos per command run [300]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds [3]")
    parser.add_argument(
        "--only", default="models,variants,commands,stages", help="parts to run [all four]"
    )
    parser.add_argument(
        "--foolbox", type=Path, help="foolbox's wheel or data folder: 20 more labelled photos"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="variants: also keep one more layer in fp32 at a time, and rows for the best ones",
    )
    parser.add_argument("--out", type=Path, help="results file [results-int8-HOST-DATE.md]")
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    require_scikit_image()
    began, load_start = time.perf_counter(), load_average()
    info = machine_info()
    corpus = build_corpus(IMAGENET, max(args.images, CALIBRATION + 2 * OTHERS + 236))
    files = corpus[: args.images]
    calibration = corpus[-CALIBRATION:]  # the first run's photos: not the scored ones
    warm_page_cache(corpus)
    cache = Path(tempfile.mkdtemp(prefix="int8-bench-cache-"))
    os.environ["RESNET_CLI_CACHE_DIR"] = str(cache)
    models = [
        Model("ResNet-50 (random weights)", build_model(MODEL_DIR)),
        Model("EfficientNet-Lite0 (ImageNet)", default_model(REAL_MODEL_DIR)),
    ]
    sections: list[list[str]] = []
    model_rates: dict[str, float] = {}
    if "models" in parts:
        table, model_rates = models_table(models, corpus, args.rounds)
        sections.append(table)
    if "variants" in parts:
        sections.append(variants_table(models[1], corpus, OTHERS, args.foolbox, args.sweep))
    if "commands" in parts:
        runs_dir = WORK / "int8-runs" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        sections.append(
            commands_table(models, files, calibration, args.rounds, model_rates, runs_dir)
        )
    if "stages" in parts:
        sections.append(stages_table(models, files, args.rounds))
    lines = ["# INT8 beside fp32", ""]
    lines += [f"- {k}: {info[k]}" for k in ("host", "cpu", "native bf16", "cores", "onnxruntime")]
    from importlib.metadata import version

    lines += [f"- openvino: {version('openvino')}, nncf: {version('nncf')}"]
    lines += [
        f"- CPU flags of note: {' '.join(sorted(cpu_flags()))}",
        f"- ONEDNN_MAX_CPU_ISA: {os.environ.get('ONEDNN_MAX_CPU_ISA', '(not set)')}",
        f"- load average at start and end: {load_start} / {load_average()}",
        f"- total time: {time.perf_counter() - began:.0f} s",
        "",
    ]
    for section in sections:
        lines += [*section, ""]
    report = "\n".join(lines)
    print()
    print(report)
    stamp = datetime.date.today().strftime("%Y%m%d")
    target = args.out or HERE / f"results-int8-{socket.gethostname()}-{stamp}.md"
    target.write_text(report, encoding="utf-8")
    print(f"written to {target}")
    return 0


def cpu_flags() -> set[str]:
    from resnet_cli.runtimes.hardware import probe

    hardware = probe(cuda=False)
    flags = set(hardware.features)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags |= {f for f in line.split(":", 1)[1].split() if "vnni" in f or "amx" in f}
                break
    return flags


if __name__ == "__main__":
    sys.exit(main())
