"""The GPU checks as one command, for a session that is lent a GPU machine.

Nothing can be installed on such a machine, but its python3 already has torch, torchvision,
transformers, scikit-image and the rest; this checkout runs from src/ without installing:

    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out "$OUT"

About 5 minutes on an H200. It writes, under --out:

- machine.txt: the GPU, the CPU cores, the versions;
- agreement.md: resnet-classify -d cuda (fp16, nvJPEG) against -d cpu -p fp32 on the same
  files, ImageNet-size JPEGs with PNGs and a broken file among them: one record per input, in
  order, the same inputs failing, and how far the scores are apart;
- engine-ceiling.txt: the engine's own cost per image on this machine's CPU;
- results-*.md: bench.py --device cuda, resnet-classify -d cuda against pipeline(device=0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  # after the path: bench.py lives beside this file


def machine(out: Path) -> None:
    import torch
    import torchvision
    import transformers

    lines = [
        f"gpu: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        f"cpu cores: {os.cpu_count()}",
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, transformers {transformers.__version__}",
    ]
    (out / "machine.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines), flush=True)


def classify(files: list[Path], output: Path, *options: str) -> list[dict]:
    listing = output.with_suffix(".list")
    listing.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
    command = [*bench.resnet_classify_command(), "-m", str(bench.MODEL_DIR), "--offline"]
    command += ["-f", "jsonl", "-o", str(output), "--overwrite", *options, "-"]
    with open(listing, "rb") as feed:
        done = subprocess.run(command, stdin=feed, capture_output=True, text=True, timeout=600)
    print(f"  {' '.join(options)}: exit {done.returncode}; {done.stderr.strip()[-300:]}")
    if done.returncode not in (0, 1):  # 1: some input failed, as the broken file must
        raise SystemExit(f"resnet-classify {' '.join(options)} exited with {done.returncode}")
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def agreement(out: Path, jpegs: list[Path], device: str) -> bool:
    """-d DEVICE against -d cpu -p fp32 on the same inputs: records, order, errors, scores."""
    from PIL import Image

    extra = out / "agreement-inputs"
    extra.mkdir(exist_ok=True)
    pngs = []
    for i, source in enumerate(jpegs[:8]):
        pngs.append(extra / f"{i}.png")
        Image.open(source).save(pngs[-1])
    broken = extra / "broken.jpg"
    broken.write_bytes(jpegs[0].read_bytes()[:2000])  # a truncated JPEG
    files = [*jpegs[:200], *pngs, broken]
    files.insert(3, pngs[0])  # a PNG inside the first GPU batch too
    print(f"agreement: -d {device} against -d cpu -p fp32 ...", flush=True)
    gpu = classify(files, out / f"agreement-{device}.jsonl", "-d", device)
    cpu = classify(files, out / "agreement-cpu.jsonl", "-d", "cpu", "-p", "fp32")
    same_inputs = [r["input"] for r in gpu] == [r["input"] for r in cpu] == [str(p) for p in files]
    same_errors = [bool(r.get("error")) for r in gpu] == [bool(r.get("error")) for r in cpu]
    top1 = gaps = 0.0
    count = 0
    for a, b in zip(gpu, cpu, strict=False):
        if a.get("error") or b.get("error"):
            continue
        count += 1
        top1 += a["predictions"][0]["class_id"] == b["predictions"][0]["class_id"]
        theirs = {p["class_id"]: p["score"] for p in b["predictions"]}
        common = [
            abs(p["score"] - theirs[p["class_id"]])
            for p in a["predictions"]
            if p["class_id"] in theirs
        ]
        gaps = max([gaps, *common])
    ok = same_inputs and same_errors and count == len(files) - 1
    report = [
        f"# -d {device} (precision auto) against -d cpu -p fp32",
        "",
        f"- inputs: {len(files)} (200 ImageNet-size JPEGs, 8 PNGs (one twice), a truncated JPEG)",
        f"- one record per input, in input order: {same_inputs}",
        f"- the same inputs failed: {same_errors} (expected: the truncated JPEG alone)",
        f"- classified on both: {count}",
        f"- top-1 agreement: {top1 / max(count, 1):.1%} (a random network: chaotic, not a measure)",
        f"- largest score gap among shared top-5 labels: {gaps:.4f}",
        f"- verdict: {'ok' if ok else 'FAILED'}",
    ]
    (out / "agreement.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print("\n".join(report), flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument("--skip-bench", action="store_true", help="agreement and ceiling only")
    parser.add_argument("--skip-ceiling", action="store_true", help="no engine_ceiling.py run")
    parser.add_argument(
        "--device", default="cuda", help="cuda, or cpu to try the script where there is no GPU"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HUB_OFFLINE"] = "1"

    machine(args.out)
    bench.build_model(bench.MODEL_DIR)
    jpegs = bench.build_corpus(bench.IMAGENET, 500)
    ok = agreement(args.out, jpegs, args.device)

    if not args.skip_ceiling:
        print("engine ceiling ...", flush=True)
        ceiling = subprocess.run(
            [sys.executable, str(HERE / "engine_ceiling.py")], capture_output=True, text=True
        )
        (args.out / "engine-ceiling.txt").write_text(ceiling.stdout + ceiling.stderr, "utf-8")
        print(ceiling.stdout[-1500:], flush=True)

    if not args.skip_bench:
        results = args.out / f"results-{socket.gethostname()}-{args.device}.md"
        code = bench.main(["--device", args.device, "--output", str(results)])
        ok = ok and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
