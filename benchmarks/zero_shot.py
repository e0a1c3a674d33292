"""The zero-shot row: ``resnet-classify --labels`` against transformers'
``pipeline("zero-shot-image-classification")`` on the same photos, with CLIP ViT-B/32 built at
full size with random weights (no download), on this machine's CPU.

    python benchmarks/zero_shot.py [--images N] [--rounds N]

Every run is a fresh process, whole command timed (interpreter, imports, model load
included), the tools alternating A, B, C, A, B, C so that background load falls on all alike:

- resnet-classify --labels (its defaults: the plan `resnet-classify env --labels` prints);
- the pipeline, as users call it (the list of paths in one call, its defaults: batch 1);
- resnet-classify on a ViT-B/32 image classifier of the same size (1000 labels, random): what
  the issue promised zero-shot would cost per image.

Then once each: --exact. Top-1 agreement with the pipeline is counted for the default path
and for --exact (whose scores must match to 1e-4). Photos are bench.py's ImageNet-size JPEGs
(needs scikit-image, the bench extra); models and photos are cached in benchmarks/_work/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

import bench  # noqa: E402  (beside this file)

LABELS = "person, receipt, screenshot, cat, dog, food, landscape"
CLIP_DIR = bench.WORK / "clip-vit-b32-random"
VIT_DIR = bench.WORK / "vit-b32-random"
TOOLS = ("zero-shot", "pipeline", "vit-b32")


def build_models() -> None:
    """CLIP ViT-B/32 (random, full size) and a ViT-B/32 classifier of the same vision tower."""
    if not (CLIP_DIR / "config.json").exists():
        from make_zero_shot_model import save_zero_shot_model

        bench.say(f"building CLIP ViT-B/32 (random weights) in {CLIP_DIR} ...")
        save_zero_shot_model(str(CLIP_DIR), kind="clip", full_size=True)
    if not (VIT_DIR / "config.json").exists():
        import torch
        from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

        bench.say(f"building a ViT-B/32 classifier (random weights) in {VIT_DIR} ...")
        torch.manual_seed(0)
        labels = {i: f"class {i}" for i in range(1000)}
        config = ViTConfig(patch_size=32, image_size=224, id2label=labels)
        ViTForImageClassification(config).eval().save_pretrained(VIT_DIR)
        ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(VIT_DIR)


def command(tool: str, output: Path, listing: Path, exact: bool = False) -> list[str]:
    if tool == "pipeline":
        script = str(HERE / "pipeline_classify.py")
        return [
            sys.executable,
            script,
            str(CLIP_DIR),
            str(listing),
            str(output),
            "--labels",
            LABELS,
        ]
    model = CLIP_DIR if tool == "zero-shot" else VIT_DIR
    ours = [*bench.resnet_classify_command(), "-m", str(model), "--offline", "-q"]
    ours += ["-f", "jsonl", "-o", str(output), "-k", "7", "-d", "cpu"]
    ours += ["--labels", LABELS] if tool == "zero-shot" else []
    ours += ["--exact"] if exact else []
    return [*ours, "-"]  # the paths on stdin


def run(tool: str, files: Sequence[Path], stem: Path, env: dict[str, str], exact: bool) -> Any:
    listing, output, log = (
        stem.with_suffix(".list"),
        stem.with_suffix(".jsonl"),
        stem.with_suffix(".log"),
    )
    names = [str(p) for p in files]
    listing.write_text("".join(n + "\n" for n in names), encoding="utf-8")
    for earlier in (output, Path(f"{output}.meta.json")):  # an earlier benchmark's
        earlier.unlink(missing_ok=True)
    argv = command(tool, output, listing, exact)
    stdin = None if tool == "pipeline" else listing
    wall, rss, code = bench.run_measured(argv, stdin=stdin, log=log, env=env)
    if code != 0:
        raise bench.BenchError(f"{tool} exited with {code}; log: {log}\n{bench.tail(log)}")
    records = bench.read_records(output, names, log, tool)
    return {"tool": tool, "wall_s": wall, "rss_mb": rss, "records": records, "exact": exact}


def top_1(record: dict[str, Any]) -> str:
    best = max(record["predictions"], key=lambda p: p["score"])
    return str(best["label"])


def agreement(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> tuple[float, float]:
    """(share of images with the pipeline's top-1, largest score gap on a shared label)."""
    same, gap = 0, 0.0
    for mine, pipe in zip(ours, theirs, strict=True):
        same += top_1(mine) == top_1(pipe)
        scores = {p["label"]: p["score"] for p in pipe["predictions"]}
        gap = max([gap, *(abs(p["score"] - scores[p["label"]]) for p in mine["predictions"])])
    return same / len(ours), gap


def plan_line(env: dict[str, str]) -> str:
    import subprocess

    argv = [*bench.resnet_classify_command(), "env", "-m", str(CLIP_DIR), "-d", "cpu"]
    facts = json.loads(
        subprocess.run(
            [*argv, "--labels", LABELS, "-f", "json"], capture_output=True, text=True, env=env
        ).stdout
    )
    chosen = {name: row["value"] for name, row in facts["plan"].items()}
    return f"{chosen['precision']}, {chosen['runtime']}, batch {chosen['batch_size']}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=128, help="ImageNet-size JPEGs (128)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the tools (2)")
    args = parser.parse_args(argv)
    bench.require_scikit_image()
    build_models()
    files = bench.build_corpus(bench.IMAGENET, args.images)
    bench.warm_page_cache(files)
    runs_dir = bench.WORK / "runs-zero-shot"
    runs_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RESNET_CLI_CACHE_DIR": str(runs_dir / "cache")}
    env.pop("RESNET_CLI_DEBUG", None)
    results: list[dict[str, Any]] = []
    serial = 0
    for round_ in range(args.rounds):
        for tool in TOOLS:
            serial += 1
            result = run(tool, files, runs_dir / f"{serial:03d}-{tool}", env, exact=False)
            bench.say(f"round {round_ + 1}: {tool}: {len(files) / result['wall_s']:.2f} images/s")
            results.append(result)
    for tool in ("zero-shot", "vit-b32"):
        serial += 1
        result = run(tool, files, runs_dir / f"{serial:03d}-{tool}-exact", env, exact=True)
        bench.say(f"--exact: {tool}: {len(files) / result['wall_s']:.2f} images/s")
        results.append(result)
    print(render(results, files, plan_line(env)))
    return 0


def render(results: list[dict[str, Any]], files: Sequence[Path], plan: str) -> str:
    def rate(tool: str, exact: bool = False) -> float:
        walls = [r["wall_s"] for r in results if r["tool"] == tool and r["exact"] == exact]
        return len(files) / bench.median(walls)

    def records(tool: str, exact: bool = False) -> list[dict[str, Any]]:
        return next(r for r in results if r["tool"] == tool and r["exact"] == exact)["records"]

    def rss(tool: str) -> float:
        return max(r["rss_mb"] for r in results if r["tool"] == tool and not r["exact"])

    pipe = rate("pipeline")
    fast_agree, fast_gap = agreement(records("zero-shot"), records("pipeline"))
    exact_agree, exact_gap = agreement(records("zero-shot", True), records("pipeline"))
    machine = bench.machine_info()
    lines = [
        f"# Zero-shot: resnet-classify --labels vs the pipeline ({datetime.date.today()})",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), native bf16: "
        f"{machine['native bf16']}; torch {machine['torch']}, transformers "
        f"{machine['transformers']}, onnxruntime {machine['onnxruntime']}.",
        f"{len(files)} ImageNet-size JPEGs (bench.py's), 7 labels ({LABELS}); CLIP ViT-B/32 "
        "built at full size with random weights; whole command, fresh process, median of "
        f"{sum(r['tool'] == 'pipeline' for r in results)} alternating runs. resnet-classify's "
        f"plan: {plan}.",
        "",
        "| command | images/s | vs pipeline | peak RSS MB | top-1 = pipeline | max score gap |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| `resnet-classify --labels` (CLIP ViT-B/32) | {rate('zero-shot'):.2f} | "
        f"{rate('zero-shot') / pipe:.2f}x | {rss('zero-shot'):.0f} | {fast_agree:.1%} | "
        f"{fast_gap:.4f} |",
        f"| `resnet-classify --labels --exact` | {rate('zero-shot', True):.2f} | "
        f"{rate('zero-shot', True) / pipe:.2f}x | | {exact_agree:.1%} | {exact_gap:.1e} |",
        f"| `pipeline('zero-shot-image-classification')` | {pipe:.2f} | 1.00x | "
        f"{rss('pipeline'):.0f} | | |",
        f"| `resnet-classify`, ViT-B/32 classifier (same vision tower) | {rate('vit-b32'):.2f} | "
        f"{rate('vit-b32') / pipe:.2f}x | {rss('vit-b32'):.0f} | | |",
        f"| `resnet-classify --exact`, ViT-B/32 classifier | {rate('vit-b32', True):.2f} | "
        f"{rate('vit-b32', True) / pipe:.2f}x | | | |",
    ]
    text = "\n".join(lines) + "\n"
    name = f"results-zero-shot-{socket.gethostname()}-{datetime.date.today():%Y%m%d}.md"
    (HERE / name).write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    sys.exit(main())
