"""Benchmark resnet-classify against the transformers pipeline on a full-size ResNet-50 (CPU).

    python benchmarks/bench.py [--quick] [--rounds N] [--imagenet N] [--photos N] ...

Both tools run as fresh subprocesses on the same JPEGs, alternating A, B, A, B, so background
load hits both alike. Rates are over the whole command's wall time (interpreter start, imports,
model load included); the steady-state rate leaves out the start-up, estimated by the
one-image cold-start run of the same tool. Peak RSS comes from os.wait4 on each child.

Everything generated (model, JPEG corpus) is cached under benchmarks/_work/. Needs
scikit-image for its bundled photographs (pip install scikit-image).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work"
MODEL_DIR = WORK / "resnet-50-random"
PIPELINE_SCRIPT = HERE / "pipeline_classify.py"
# Bump when the generator changes, so a cached corpus made by older code is not reused.
CORPUS_VERSION = "v1"
SEED = 20240611
JPEG_QUALITY = 90
RUN_TIMEOUT_S = 3600  # a hung child must not hang the benchmark forever

# Photographs that ship inside the scikit-image wheel (others need pooch and a download).
COLOR_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
    "immunohistochemistry",
)
GRAY_PHOTOS = ("camera", "grass", "gravel", "brick", "coins", "moon")

OURS, PIPE = "resnet-classify", "pipeline"


# --------------------------------------------------------------------------- setup


def require_scikit_image() -> None:
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        sys.exit(
            "bench.py needs scikit-image for the photographs its test images are made from:\n"
            f"    {sys.executable} -m pip install scikit-image"
        )


def resnet_classify_command() -> list[str]:
    """The installed console script, preferring the one next to this interpreter (the venv);
    where it is not installed but importable (PYTHONPATH=src on a machine where nothing can be
    installed, such as a lent GPU machine), ``python -m resnet_cli``."""
    beside = Path(sys.executable).parent / "resnet-classify"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("resnet-classify")
    if found is not None:
        return [found]
    if importlib.util.find_spec("resnet_cli") is not None:
        return [sys.executable, "-m", "resnet_cli"]
    sys.exit("resnet-classify is not installed: pip install -e . in the repository root")


def build_model(folder: Path) -> Path:
    """A ResNet-50 with random weights and microsoft/resnet-50's processor config, cached."""
    needed = ("config.json", "model.safetensors", "preprocessor_config.json")
    if all((folder / name).exists() for name in needed):
        return folder
    print(f"building a random-weight ResNet-50 in {folder} ...", flush=True)
    import torch
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    labels = {i: f"class_{i}" for i in range(1000)}
    # ResNetConfig's defaults are microsoft/resnet-50's architecture.
    config = ResNetConfig(id2label=labels, label2id={v: k for k, v in labels.items()})
    model = ResNetForImageClassification(config).eval()
    processor = ConvNextImageProcessor(
        size={"shortest_edge": 224},
        crop_pct=0.875,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    # Write next to the target and rename, so an interrupted build never looks complete.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".model-"))
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


# --------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class CorpusKind:
    name: str
    sizes: tuple[tuple[int, int], ...]  # (width, height) choices
    size_weights: tuple[float, ...]
    grain: float  # sensor-noise sigma in 8-bit levels; real photos are never noise-free
    sharpen: bool  # unsharp mask after a big upscale, so edges are not unnaturally soft
    seed: int  # per kind, so the kinds do not share random streams


# ImageNet validation images are mostly 500 px on the long side, 4:3 or 3:2, some portrait.
IMAGENET = CorpusKind(
    "imagenet", ((500, 375), (375, 500), (500, 333)), (0.6, 0.2, 0.2), 1.5, False, seed=1
)
# A 12-megapixel phone photo. Grain brings the files to ~2.5 MB, near real q90 photos.
PHOTO_12MP = CorpusKind("12mp", ((4000, 3000),), (1.0,), 4.0, True, seed=2)


def load_sources() -> list[Any]:
    """The bundled photographs as RGB PIL images; colour ones listed twice to weight them."""
    import skimage.data
    from PIL import Image

    images = []
    for name in COLOR_PHOTOS + GRAY_PHOTOS:
        array = getattr(skimage.data, name)()
        if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
            array = array[0]
        image = Image.fromarray(np.asarray(array)).convert("RGB")
        images.extend([image, image] if name in COLOR_PHOTOS else [image])
    return images


def make_photo(sources: Sequence[Any], kind: CorpusKind, rng: np.random.Generator) -> Any:
    """One distinct photo: a random crop of a real photograph, flipped, scaled, colour-jittered."""
    from PIL import Image, ImageEnhance, ImageFilter

    weights = np.asarray(kind.size_weights) / sum(kind.size_weights)
    width, height = kind.sizes[int(rng.choice(len(kind.sizes), p=weights))]
    image = sources[int(rng.integers(len(sources)))]
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # The largest crop of the target aspect ratio, shrunk by a random factor, placed at random.
    src_w, src_h = image.size
    crop_w = min(src_w, round(src_h * width / height))
    crop_h = min(src_h, round(crop_w * height / width))
    scale = rng.uniform(0.55, 1.0)
    crop_w, crop_h = max(16, round(crop_w * scale)), max(16, round(crop_h * scale))
    left = int(rng.integers(0, src_w - crop_w + 1))
    top = int(rng.integers(0, src_h - crop_h + 1))
    image = image.crop((left, top, left + crop_w, top + crop_h))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    if kind.sharpen:
        image = image.filter(ImageFilter.UnsharpMask(radius=3, percent=80, threshold=2))
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(rng.uniform(0.85, 1.15))
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels * rng.uniform(0.95, 1.05, size=3).astype(np.float32)  # white balance
    if kind.grain:
        # Luminance grain plus weaker colour noise, as a camera sensor produces.
        shape = pixels.shape[:2]
        pixels += rng.standard_normal(shape, dtype=np.float32)[..., None] * kind.grain
        pixels += rng.standard_normal(pixels.shape, dtype=np.float32) * (kind.grain / 2)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def build_corpus(kind: CorpusKind, count: int) -> list[Path]:
    """``count`` JPEGs of this kind, cached; file i is the same whatever count asks for it."""
    folder = WORK / "corpus" / f"{kind.name}-{CORPUS_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:05d}.jpg" for i in range(count)]
    missing = [i for i, p in enumerate(paths) if not p.exists()]
    if missing:
        print(f"generating {len(missing)} {kind.name} JPEGs in {folder} ...", flush=True)
        sources = load_sources()
        for i in missing:
            # Seeded per file, so a larger corpus extends a smaller one instead of replacing it.
            rng = np.random.default_rng([SEED, kind.seed, i])
            photo = make_photo(sources, kind, rng)
            staging = paths[i].with_suffix(".tmp")
            photo.save(staging, "JPEG", quality=JPEG_QUALITY)
            staging.replace(paths[i])
    return paths


def corpus_summary(imagenet: Sequence[Path], photos: Sequence[Path]) -> str:
    parts = []
    for label, paths, unit, scale in (
        ("ImageNet-size", imagenet, "KB", 1e3),
        ("12-MP", photos, "MB", 1e6),
    ):
        if paths:
            mean = statistics.mean(p.stat().st_size for p in paths) / scale
            parts.append(f"{len(paths)} {label} JPEGs, mean {mean:.1f} {unit}")
    return "; ".join(parts)


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read every file once so the first timed run does not pay for the disk alone."""
    for path in dict.fromkeys(paths):
        path.read_bytes()


# --------------------------------------------------------------------------- running


@dataclass
class Run:
    scenario: str
    tool: str
    round: int
    images: int
    wall_s: float
    peak_rss_mb: float
    returncode: int
    records: int
    output: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.images / self.wall_s


class BenchError(RuntimeError):
    """A tool failed or wrote the wrong output: the numbers would be meaningless."""


# Runs in a fresh, small interpreter between this script and the measured command. Peak RSS
# cannot be taken from a child this script starts itself: Linux carries the parent's own peak
# RSS into a vfork()ed child at exec (this script holds torch and the corpus generator, over
# 1 GB), so every child would report at least that. The launcher's floor is about 10 MB.
LAUNCHER = """
import json, os, sys, time
result, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
pid = os.posix_spawn(command[0], command, os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
with open(result, "w") as out:
    json.dump({"wall_s": wall, "maxrss_kib": usage.ru_maxrss,
               "returncode": os.waitstatus_to_exitcode(status)}, out)
"""


def run_measured(
    command: Sequence[str], *, stdin: Path | None, log: Path, env: dict[str, str]
) -> tuple[float, float, int]:
    """Run a command; return (wall seconds, peak RSS in MB, exit code).

    The launcher times the command from spawn to exit and takes its peak RSS from os.wait4,
    the rusage of exactly that process (RUSAGE_CHILDREN would be the maximum over all).
    """
    measured = log.with_suffix(".measure.json")
    launcher = [sys.executable, "-I", "-S", "-c", LAUNCHER, str(measured), *command]
    with (
        open(log, "wb") as out,
        open(stdin, "rb") if stdin else open(os.devnull, "rb") as feed,
    ):
        # Its own session, so a run that hangs can be killed with everything it started.
        process = subprocess.Popen(
            launcher,
            stdin=feed,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise BenchError(f"{command[0]} ran over {RUN_TIMEOUT_S} s; log: {log}") from None
    if process.returncode != 0 or not measured.exists():
        raise BenchError(f"the measuring launcher failed ({process.returncode}); log: {log}")
    result = json.loads(measured.read_text())
    # ru_maxrss is in KiB on Linux.
    return result["wall_s"], result["maxrss_kib"] * 1024 / 1e6, result["returncode"]


def read_records(output: Path, expected: Sequence[str], log: Path, tool: str) -> list[dict]:
    """The output's records, checked: one per input, in order, each with predictions."""
    if not output.exists():
        raise BenchError(f"{tool} wrote no output file; its log: {log}\n{tail(log)}")
    with open(output, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    if len(records) != len(expected):
        raise BenchError(
            f"{tool}: {len(records)} records for {len(expected)} inputs ({output}); log: {log}"
        )
    for record, name in zip(records, expected, strict=True):
        if record.get("input") != name or not record.get("predictions"):
            raise BenchError(f"{tool}: bad record for {name}: {str(record)[:300]} ({output})")
    return records


def tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class Runner:
    """Runs the two tools on lists of files and keeps every measurement."""

    def __init__(self, model: Path, runs_dir: Path, device: str = "cpu"):
        self.model = model
        self.runs_dir = runs_dir
        self.device = device
        self.ours = resnet_classify_command()
        self.runs: list[Run] = []
        self.env = dict(os.environ)
        # Both load from a local folder; neither should spend time asking the hub anything.
        self.env["HF_HUB_OFFLINE"] = "1"
        self.env.pop("RESNET_CLI_DEBUG", None)
        # resnet-classify's runtime cache (the ONNX export a first run leaves for later runs),
        # private to this benchmark run: the untimed warm-up run fills it.
        self.env["RESNET_CLI_CACHE_DIR"] = str(runs_dir / "runtime-cache")
        self._serial = 0

    def _paths(self, tool: str, scenario: str) -> tuple[Path, Path, Path]:
        self._serial += 1
        stem = self.runs_dir / f"{self._serial:03d}-{scenario}-{tool}"
        return stem.with_suffix(".list"), stem.with_suffix(".jsonl"), stem.with_suffix(".log")

    def ours_run(
        self,
        scenario: str,
        files: Sequence[Path],
        round_: int,
        *,
        exact: bool = False,
        via_stdin: bool = False,
        quiet: bool = True,
        first_run: bool = False,
        extra_args: Sequence[str] = (),
    ) -> Run:
        """``first_run``: with an empty runtime cache, as the first run of a model is;
        ``extra_args``: more options for the command (the organize scenario's)."""
        listing, output, log = self._paths(OURS, scenario)
        names = [str(p) for p in files]
        command = [*self.ours, "-m", str(self.model), "--offline", "-f", "jsonl", "-o", str(output)]
        command += ["-d", self.device]
        command += ["-q"] if quiet else []
        command += ["--exact"] if exact else []
        command += list(extra_args)
        if via_stdin:
            listing.write_text("".join(n + "\n" for n in names), encoding="utf-8")
            command.append("-")
        else:
            command += names
        env, fresh = self.env, None
        if first_run:
            fresh = Path(tempfile.mkdtemp(prefix="empty-cache-", dir=self.runs_dir))
            env = {**self.env, "RESNET_CLI_CACHE_DIR": str(fresh)}
        try:
            wall, rss, code = run_measured(
                command, stdin=listing if via_stdin else None, log=log, env=env
            )
        finally:
            if fresh is not None:
                shutil.rmtree(fresh, ignore_errors=True)
        if code != 0:
            raise BenchError(f"{OURS} exited with {code}; log: {log}\n{tail(log)}")
        records = read_records(output, names, log, OURS)
        extra = {"summary": tail(log, 1)} if not quiet else {}
        run = Run(
            scenario, OURS, round_, len(names), wall, rss, code, len(records), str(output), extra
        )
        self.runs.append(run)
        return run

    def pipe_run(self, scenario: str, files: Sequence[Path], round_: int) -> Run:
        listing, output, log = self._paths(PIPE, scenario)
        names = [str(p) for p in files]
        listing.write_text("".join(n + "\n" for n in names), encoding="utf-8")
        command = [sys.executable, str(PIPELINE_SCRIPT), str(self.model), str(listing)]
        command += [str(output), "--device", "0" if self.device == "cuda" else "-1"]
        wall, rss, code = run_measured(command, stdin=None, log=log, env=self.env)
        if code != 0:
            raise BenchError(f"pipeline script exited with {code}; log: {log}\n{tail(log)}")
        records = read_records(output, names, log, PIPE)
        extra: dict[str, Any] = {}
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith('{"bench_timings"'):
                extra = json.loads(line)
        run = Run(
            scenario, PIPE, round_, len(names), wall, rss, code, len(records), str(output), extra
        )
        self.runs.append(run)
        return run


def compare_exact(ours: Path, pipe: Path) -> dict[str, float]:
    """How closely --exact matches the pipeline: top-1 agreement and the largest score gap."""
    agree, gap, total = 0, 0.0, 0
    with open(ours, encoding="utf-8") as a, open(pipe, encoding="utf-8") as b:
        for line_a, line_b in zip(a, b, strict=True):
            first_a = json.loads(line_a)["predictions"][0]
            first_b = json.loads(line_b)["predictions"][0]
            total += 1
            agree += first_a["label"] == first_b["label"]
            gap = max(gap, abs(first_a["score"] - first_b["score"]))
    return {"top1_agreement": agree / max(total, 1), "max_top1_score_gap": gap}


# --------------------------------------------------------------------------- report


def say(text: str) -> None:
    print(text, flush=True)


def machine_info() -> dict[str, str]:
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        from importlib.metadata import version

        ours = version("resnet-cli")
    except Exception:
        ours = "unknown"
    return {
        "host": socket.gethostname(),
        "cpu": cpu,
        "native bf16": "yes (AMX or AVX512-BF16)" if native_bf16() else "no",
        "cores": f"{os.cpu_count()} logical, {usable} usable",
        "torch threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": _version("onnxruntime"),
        "resnet-cli": ours,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def native_bf16() -> bool:
    """Whether resnet-classify's --precision auto is bf16 on this CPU (AMX or AVX512-BF16)."""
    from resnet_cli.runtimes.hardware import probe

    return probe(cuda=False).native_bf16


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, suffix: str = "") -> str:
    """A number for the table; n/a when it could not be estimated (noise, too few images)."""
    return "n/a" if value != value else f"{value:.2f}{suffix}"  # value != value: NaN


def steady_rate(runs: Sequence[Run], startup_s: float) -> float:
    """Images/s once loaded: the median wall time minus the tool's one-image cold start.

    The cold start covers interpreter, imports, model load and one image; taking it off leaves
    the other images' time, so the rate is over images - 1.
    """
    wall = median([r.wall_s for r in runs])
    images = runs[0].images
    if wall <= startup_s or images < 2:
        return float("nan")
    return (images - 1) / (wall - startup_s)


def render(
    info: dict[str, str],
    settings: dict[str, Any],
    runs: list[Run],
    scenarios: list[tuple[str, str, str]],
    exact_check: dict[str, float] | None,
    memory: tuple[int, int] | None,
    elapsed_s: float,
    loads: tuple[str, str],
) -> str:
    by: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by.setdefault((run.scenario, run.tool), []).append(run)
    cold = {
        tool: median([r.wall_s for r in by.get(("cold-start", tool), [])]) for tool in (OURS, PIPE)
    }

    first_cold = median([r.wall_s for r in by.get(("cold-first", OURS), [])])
    device = "CUDA" if settings.get("device") == "cuda" else "CPU"
    lines = [f"# resnet-classify vs transformers pipeline ({device})", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    lines += [
        f"- load average at start / end: {loads[0]} / {loads[1]}",
        f"- total benchmark time: {elapsed_s / 60:.1f} min",
        "",
        "## Throughput (images/s, median over rounds; ratio = resnet-classify / pipeline)",
        "",
        "| scenario | images | resnet-classify img/s | pipeline img/s | ratio "
        "| steady-state img/s (ours / pipeline) | steady ratio "
        "| peak RSS resnet-classify | peak RSS pipeline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, title, pipe_key in scenarios:
        ours, pipe = by.get((key, OURS), []), by.get((pipe_key, PIPE), [])
        if not ours or not pipe:
            continue
        rate_o, rate_p = median([r.rate for r in ours]), median([r.rate for r in pipe])
        # A first run's start-up is the first-run cold start's.
        startup = first_cold if key.endswith("-first") else cold[OURS]
        steady_o, steady_p = steady_rate(ours, startup), steady_rate(pipe, cold[PIPE])
        rss_o, rss_p = max(r.peak_rss_mb for r in ours), max(r.peak_rss_mb for r in pipe)
        lines.append(
            f"| {title} | {ours[0].images} | {rate_o:.2f} | {rate_p:.2f} | {rate_o / rate_p:.2f}x "
            f"| {fmt(steady_o)} / {fmt(steady_p)} | {fmt(steady_o / steady_p, 'x')} "
            f"| {rss_o:.0f} MB | {rss_p:.0f} MB |"
        )
    pipe_cold = by.get(("cold-start", PIPE), [])
    if pipe_cold and by.get(("cold-start", OURS)):
        lines += [
            "",
            "## Cold start: one image from a fresh process (wall s, median; target ratio <= 0.8)",
            "",
            "| resnet-classify | wall | pipeline | ratio | target | peak RSS resnet-classify "
            "| peak RSS pipeline |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for key, title in (("cold-start", "model run before"), ("cold-first", "first run")):
            ours_cold = by.get((key, OURS), [])
            if not ours_cold:
                continue
            wall = median([r.wall_s for r in ours_cold])
            ratio = wall / cold[PIPE]
            lines.append(
                f"| {title} | {wall:.2f} s | {cold[PIPE]:.2f} s | {ratio:.2f}x "
                f"| {'met' if ratio <= 0.8 else 'MISSED'} "
                f"| {max(r.peak_rss_mb for r in ours_cold):.0f} MB "
                f"| {max(r.peak_rss_mb for r in pipe_cold):.0f} MB |"
            )
    if memory is not None:
        small = [r for r in runs if r.scenario == f"memory-{memory[0]}"]
        large = [r for r in runs if r.scenario == f"memory-{memory[1]}"]
        if small and large:
            rss_s = max(r.peak_rss_mb for r in small)
            rss_l = max(r.peak_rss_mb for r in large)
            delta = rss_l - rss_s
            lines += [
                "",
                "## Memory: resnet-classify peak RSS vs number of images (paths via stdin; "
                "target delta <= 300 MB)",
                "",
                f"| {memory[0]} images | {memory[1]} images | delta | target "
                f"| img/s at {memory[1]} |",
                "|---:|---:|---:|---|---:|",
                f"| {rss_s:.0f} MB | {rss_l:.0f} MB | {delta:+.0f} MB "
                f"| {'met' if delta <= 300 else 'MISSED'} | {large[0].rate:.2f} |",
            ]
    if exact_check:
        lines += [
            "",
            f"--exact vs pipeline on the same files: top-1 agreement "
            f"{exact_check['top1_agreement']:.1%}, largest top-1 score gap "
            f"{exact_check['max_top1_score_gap']:.2e}.",
        ]
    lines += [
        "",
        "## All runs",
        "",
        "| scenario | tool | round | images | wall s | img/s | peak RSS | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        note = ""
        if run.tool == PIPE and run.extra.get("classify_s"):
            note = (
                f"in-process: load {run.extra['load_s']:.1f} s, "
                f"{run.images / run.extra['classify_s']:.2f} img/s after load, "
                f"batch_size {run.extra['batch_size']}, {run.extra['image_processor']}"
            )
        elif run.extra.get("summary"):
            note = run.extra["summary"].replace("|", "/")
        lines.append(
            f"| {run.scenario} | {run.tool} | {run.round} | {run.images} | {run.wall_s:.2f} "
            f"| {run.rate:.2f} | {run.peak_rss_mb:.0f} MB | {note} |"
        )
    lines += [
        "",
        "Rates are over each command's whole wall time. Steady state = (images - 1) / (median "
        "wall - median cold start of the same tool). MB = 10^6 bytes (ru_maxrss from os.wait4).",
        "",
    ]
    return "\n".join(lines)


def organize_scenario(
    runner: Any, pool: Sequence[Path], count: int, rounds: int, runs_dir: Path
) -> float:
    """--organize's cost: ``count`` distinct files (hard links to the corpus) classified with
    and without --organize DIR (hard links, the default), alternating; the overhead in %."""
    folder = Path(tempfile.mkdtemp(prefix="organize-", dir=runs_dir))
    files = []
    for i in range(count):
        path = folder / f"{i:05d}-{pool[i % len(pool)].name}"
        os.link(pool[i % len(pool)], path)
        files.append(path)
    say(f"organize: {count} images, with and without --organize ...")
    plain, organized = [], []
    for round_ in range(1, rounds + 1):
        plain.append(runner.ours_run("organize-off", files, round_).wall_s)
        target = folder.parent / f"sorted-{round_}"
        run = runner.ours_run("organize-on", files, round_, extra_args=["--organize", str(target)])
        organized.append(run.wall_s)
        shutil.rmtree(target, ignore_errors=True)
    overhead = 100 * (median(organized) / median(plain) - 1)
    say(f"  {median(plain):.1f} s without, {median(organized):.1f} s with: {overhead:+.1f}%")
    shutil.rmtree(folder, ignore_errors=True)
    return overhead


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="resnet-classify vs transformers pipeline on a random-weight ResNet-50 (CPU)."
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one round (~3 min)")
    parser.add_argument("--rounds", type=int, help="A/B rounds per scenario [2; quick 1]")
    parser.add_argument("--imagenet", type=int, help="ImageNet-size JPEGs per run [150; quick 24]")
    parser.add_argument("--photos", type=int, help="12-MP photos per run [40; quick 6]")
    parser.add_argument("--cold", type=int, help="cold-start runs per tool [3; quick 2]")
    parser.add_argument("--mem-small", type=int, help="memory scenario, small run [100]")
    parser.add_argument(
        "--mem-large", type=int, help="memory scenario, large run [2000; quick 400]"
    )
    parser.add_argument(
        "--organize", type=int, help="organize scenario: images per run [2000; quick 200]"
    )
    parser.add_argument(
        "--only",
        help="comma-separated scenarios to run: imagenet,12mp,exact,memory,organize,cold "
        "(cold always runs: the steady-state rates need it)",
    )
    parser.add_argument(
        "--output", type=Path, help="results file [benchmarks/results-HOST-PRECISION-DATE.md]"
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="where both tools run: cuda is resnet-classify -d cuda against pipeline(device=0), "
        "with bigger runs [cpu]",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="each throughput run classifies its files this many times over, so a fast device "
        "runs long enough to measure [1; cuda 10]",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    cuda = args.device == "cuda"
    defaults = {
        "rounds": 1 if quick else 2,
        "imagenet": 24 if quick else (500 if cuda else 150),
        "photos": 6 if quick else 40,
        "cold": 2 if quick else 3,
        "mem_small": 100,
        "mem_large": 400 if quick else 2000,
        "organize": 200 if quick else 2000,
        "repeat": 10 if cuda and not quick else 1,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    chosen = {"imagenet", "12mp", "exact", "memory", "organize", "cold"}
    if args.only:
        wanted = {s.strip() for s in args.only.split(",") if s.strip()}
        if wanted - chosen:
            parser.error(f"unknown scenario(s) in --only: {', '.join(sorted(wanted - chosen))}")
        chosen = wanted | {"cold"}
    args.scenarios = chosen
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_scikit_image()
    began = time.perf_counter()
    load_start = load_average()
    info = machine_info()

    model = build_model(MODEL_DIR)
    imagenet_count = max(args.imagenet, args.mem_small if "memory" in args.scenarios else 0)
    imagenet = build_corpus(IMAGENET, imagenet_count)
    photos = build_corpus(PHOTO_12MP, args.photos) if "12mp" in args.scenarios else []
    warm_page_cache([*imagenet, *photos, *model.iterdir()])

    runs_dir = WORK / "runs" / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs_dir.mkdir(parents=True)
    runner = Runner(model, runs_dir, args.device)

    # Untimed warm-up of each tool: the page cache then holds both tools' Python files, so the
    # first timed run of either is not the one that reads them from disk. It also shows the
    # precision resnet-classify picks, from its summary line.
    say("warm-up runs (untimed) ...")
    first = runner.ours_run("warm-up", imagenet[:1], 0, quiet=False)
    runner.pipe_run("warm-up", imagenet[:1], 0)
    say(f"  resnet-classify says: {first.extra.get('summary', '').strip()}")
    runner.runs.clear()

    say(f"cold start: 1 image, {args.cold} fresh process(es) per tool, alternating ...")
    for i in range(1, args.cold + 1):
        a = runner.ours_run("cold-start", imagenet[:1], i)
        b = runner.pipe_run("cold-start", imagenet[:1], i)
        c = runner.ours_run("cold-first", imagenet[:1], i, first_run=True)
        say(
            f"  run {i}: resnet-classify {a.wall_s:.2f} s (first run {c.wall_s:.2f} s) "
            f"| pipeline {b.wall_s:.2f} s"
        )

    # (key, title, the pipeline runs it is compared with)
    scenarios = [
        ("imagenet", "ImageNet-size JPEGs (500x375), default", "imagenet"),
        ("imagenet-first", "ImageNet-size JPEGs, default, first run of the model", "imagenet"),
        ("12mp", "12-MP photos (4000x3000), default", "12mp"),
        ("exact", "ImageNet-size JPEGs, --exact", "exact"),
    ]
    scenarios = [s for s in scenarios if s[2] in args.scenarios]
    if args.device == "cuda":  # a first run differs from later ones on the CPU alone (export)
        scenarios = [s for s in scenarios if not s[0].endswith("-first")]
    files_for = {
        "imagenet": imagenet[: args.imagenet] * args.repeat,
        "imagenet-first": imagenet[: args.imagenet] * args.repeat,
        "12mp": photos * args.repeat,
        "exact": imagenet[: args.imagenet] * args.repeat,
    }
    say(f"throughput: {args.rounds} round(s), A/B alternating ...")
    exact_outputs: tuple[Path, Path] | None = None
    for round_ in range(1, args.rounds + 1):
        for key, _, pipe_key in scenarios:
            first_run = key.endswith("-first")
            a = runner.ours_run(
                key,
                files_for[key],
                round_,
                exact=key == "exact",
                first_run=first_run,
                via_stdin=len(files_for[key]) > 1000,  # command lines have a limit
            )
            if first_run:  # compared with the pipeline runs of its plain scenario
                say(f"  {key:<8} round {round_}: resnet-classify {a.rate:6.2f} img/s")
                continue
            b = runner.pipe_run(pipe_key, files_for[key], round_)
            say(
                f"  {key:<8} round {round_}: resnet-classify {a.rate:6.2f} img/s "
                f"{a.peak_rss_mb:5.0f} MB | pipeline {b.rate:6.2f} img/s {b.peak_rss_mb:5.0f} MB"
            )
            if key == "exact":
                exact_outputs = (Path(a.output), Path(b.output))

    memory: tuple[int, int] | None = None
    if "memory" in args.scenarios:
        memory = (args.mem_small, args.mem_large)
        pool = imagenet[: args.mem_small]
        say(f"memory: resnet-classify on {memory[0]} and {memory[1]} images via stdin ...")
        for count in memory:
            # Paths repeat when count exceeds the corpus: the tool does not deduplicate inputs.
            files = [pool[i % len(pool)] for i in range(count)]
            run = runner.ours_run(f"memory-{count}", files, 1, via_stdin=True)
            say(f"  {count} images: peak RSS {run.peak_rss_mb:.0f} MB, {run.rate:.2f} img/s")

    if "organize" in args.scenarios:
        organize_scenario(runner, imagenet, args.organize, args.rounds, runs_dir)

    exact_check = compare_exact(*exact_outputs) if exact_outputs else None
    settings: dict[str, Any] = {
        "rounds": args.rounds,
        "cold runs": args.cold,
        "pipeline": "pipeline(list of paths), batch_size=1 and num_workers=0 (its defaults)",
        "device": args.device,
        "repeat": f"{args.repeat} (each throughput run classifies its files this many times)",
        "resnet-classify": "defaults (-q -f jsonl -o FILE --offline); "
        + (
            "-d cuda: fp16, JPEGs decoded by nvJPEG on the GPU; the pipeline gets device=0"
            if args.device == "cuda"
            else "this CPU has native bf16, so --precision auto is bf16, in torch (oneDNN's packed "
            "convolutions from the first batch); no ONNX export is made or used"
            if native_bf16()
            else "fp32; every timed run but the first-run ones finds the ONNX export that the "
            "untimed warm-up run left in its runtime cache, as every run after a model's "
            "first does"
        ),
        "resnet-classify warm-up summary": first.extra.get("summary", "").strip(),
        "corpus": corpus_summary(imagenet[: args.imagenet], photos),
        "quick": args.quick,
    }
    elapsed = time.perf_counter() - began
    report = render(
        info,
        settings,
        runner.runs,
        scenarios,
        exact_check,
        memory,
        elapsed,
        (load_start, load_average()),
    )
    stamp = datetime.date.today().strftime("%Y%m%d")
    suffix = "-quick" if args.quick else ""
    precision = "cuda" if args.device == "cuda" else "bf16" if native_bf16() else "fp32"
    target = args.output or HERE / f"results-{socket.gethostname()}-{precision}-{stamp}{suffix}.md"
    target.write_text(report, encoding="utf-8")
    (runs_dir / "runs.json").write_text(
        json.dumps([asdict(r) for r in runner.runs], indent=1), encoding="utf-8"
    )
    print()
    print(report)
    print(f"written to {target} (raw runs: {runs_dir})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark aborted: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
