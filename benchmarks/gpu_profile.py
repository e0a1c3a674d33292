"""Where a GPU run's time goes, stage by stage, on full-size ResNet-50 and ImageNet-size JPEGs.

The whole command is measured by bench.py; this splits it, for the session that works on the
GPU target (>= 8,000 images/s end to end). Each stage is timed alone over the same JPEGs, on
the device the run would use, then the library's whole run (``resnet_cli.classify``) with the
main thread under cProfile:

- read: the files' bytes (page cache warm), in one thread;
- header: ``_device_decodable`` (Pillow header and EXIF), what each decode thread does;
- nvjpeg: torchvision's batched ``decode_jpeg`` on the device, batches of 256;
- processor: the native processor on the device-decoded tensors (resize, crop, normalize);
- model: the forward pass alone, fp16, channels_last, batch 256;
- whole run: the library, records consumed, with the main thread's top functions.

    PYTHONPATH=src python3 benchmarks/gpu_profile.py --out DIR [--images 5000]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import pstats
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  # after the path: bench.py lives beside this file

BATCH = 256


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(label: str, images: int, work: Any, lines: list[str]) -> Any:
    """Run ``work()`` (after one untimed call) and note its images/s."""
    work()
    sync()
    began = time.perf_counter()
    result = work()
    sync()
    seconds = time.perf_counter() - began
    line = f"| {label} | {images / seconds:,.0f} | {seconds / images * 1e6:.0f} |"
    print(line, flush=True)
    lines.append(line)
    return result


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU (cpu)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--device", default="cuda", help="cpu: try the script without a GPU")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from resnet_cli import classify, load_classifier
    from resnet_cli.pipeline.local import _device_decodable

    model = bench.build_model(bench.MODEL_DIR)
    corpus = bench.build_corpus(bench.IMAGENET, 500)
    files = [corpus[i % len(corpus)] for i in range(args.images)]
    lines = [
        f"# GPU stages: {gpu_name()}, {args.images} ImageNet-size JPEGs",
        "",
        "| stage | images/s | us/image |",
        "|---|---:|---:|",
    ]
    print("\n".join(lines), flush=True)

    began = time.perf_counter()
    classifier = load_classifier(str(model), device=args.device, runtime="torch")
    load_s = time.perf_counter() - began
    device = classifier.device
    datas = timed("read (1 thread)", len(corpus), lambda: [p.read_bytes() for p in corpus], lines)
    timed(
        "header (1 thread)", len(datas), lambda: [_device_decodable(d, None) for d in datas], lines
    )
    head = datas[:BATCH]
    encoded = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in head]
    timed(
        "frombuffer (main thread)",
        len(head),
        lambda: [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in head],
        lines,
    )
    frames = timed(
        f"nvjpeg batch {BATCH}",
        len(head),
        lambda: decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device),
        lines,
    )
    pixels = timed(
        f"processor batch {BATCH}", len(head), lambda: classifier.preprocess(frames), lines
    )
    batch = classifier.stack(list(pixels))
    timed(f"model batch {BATCH} ({classifier.plan.precision}, eager)", len(head),
          lambda: classifier.predict(batch, 5), lines)  # fmt: skip
    lines += ["", "## Whole run through the library, by runtime and decode threads", ""]
    lines += ["| runtime | threads | images/s | us/image |", "|---|---:|---:|---:|"]
    profiled = ""
    runtimes = ["torch", "cudagraph"] if args.device == "cuda" else ["torch"]
    for runtime in runtimes:
        classifier = load_classifier(str(model), device=args.device, runtime=runtime)
        if runtime == "cudagraph":
            graphed = classifier.runtime
            timed(f"model batch {BATCH} ({graphed})", len(head),
                  lambda c=classifier: c.predict(batch, 5), lines[:4])  # fmt: skip
        for workers in (16, 4):
            # The threads as -j asks for them: a new plan (the classifier's own is cudagraph's).
            plan = dataclasses.replace(classifier.plan, workers=workers)
            classifier = dataclasses.replace(classifier, plan=plan)
            sum(1 for _ in classify(classifier, files[:BATCH]))  # warm
            profile = cProfile.Profile() if (runtime, workers) == (runtimes[-1], 16) else None
            began = time.perf_counter()
            if profile is not None:
                profile.enable()
            count = sum(1 for _ in classify(classifier, files))
            if profile is not None:
                profile.disable()
                stream = io.StringIO()
                pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(25)
                profiled = stream.getvalue()[-5000:]
            seconds = time.perf_counter() - began
            row = f"| {classifier.runtime} | {workers} | {count / seconds:,.0f} | "
            row += f"{seconds / count * 1e6:.0f} |" + (" (under cProfile)" if profile else "")
            print(row, flush=True)
            lines.append(row)
    lines += ["", f"load_classifier: {load_s:.1f} s; last plan: {classifier.plan}", ""]
    lines += ["## Main thread under cProfile, by own time", "", "```", profiled, "```"]
    lines += ["", "## The whole command, 5,000 paths on stdin", "", "```"]
    lines += [whole_command(model, files, args.out), "```"]
    (args.out / "gpu-profile.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[-12:]), flush=True)
    return 0


def whole_command(model: Path, files: list[Path], out: Path) -> str:
    """resnet-classify on the files, paths on stdin, jsonl to a file: its summary line."""
    import subprocess

    listing = out / "files.list"
    listing.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
    command = [*bench.resnet_classify_command(), "-m", str(model), "--offline", "-f", "jsonl"]
    command += ["-o", str(out / "whole.jsonl"), "--overwrite", "-"]
    with open(listing, "rb") as feed:
        done = subprocess.run(command, stdin=feed, capture_output=True, text=True, timeout=300)
    (out / "whole.jsonl").unlink(missing_ok=True)
    listing.unlink()
    return f"exit {done.returncode}: {done.stderr.strip()[-400:]}"


if __name__ == "__main__":
    sys.exit(main())
