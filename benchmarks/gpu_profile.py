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
    timed(f"model batch {BATCH} ({classifier.plan.precision})", len(head),
          lambda: classifier.predict(batch, 5), lines)  # fmt: skip

    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.enable()
    count = sum(1 for _ in classify(classifier, files))
    profile.disable()
    seconds = time.perf_counter() - began
    rate, cost = count / seconds, seconds / count * 1e6
    whole = f"| whole run, library ({count} images) | {rate:,.0f} | {cost:.0f} |"
    print(whole, flush=True)
    lines += [whole, "", f"load_classifier: {load_s:.1f} s; plan: {classifier.plan}", ""]
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(30)
    lines += ["## Main thread, by own time", "", "```", stream.getvalue()[-6000:], "```"]
    (args.out / "gpu-profile.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(stream.getvalue()[-4000:], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
