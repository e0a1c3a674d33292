"""The GPU check of --labels, as one short command for a session lent a GPU machine:

    PYTHONPATH=src PYTHONUNBUFFERED=1 python3 benchmarks/zero_shot_gpu.py --out "$OUT"

1. Tiny random CLIP and SigLIP (examples/make_zero_shot_model.py) on bench.py's ImageNet-size
   JPEGs: resnet-classify -d cuda (fp16, nvJPEG decoding) and -d cuda --exact against
   pipeline("zero-shot-image-classification", device=0): top-1 agreement, largest score gap.
2. CLIP ViT-B/32 at full size (random weights): `resnet-classify -d cuda --labels` against the
   pipeline on the GPU (its defaults), whole command, one run each, and their top-1 agreement.

Writes zero-shot-gpu.md under --out, a section at a time (a run cut short keeps what it did).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

import bench  # noqa: E402
import zero_shot  # noqa: E402

LABELS = [label.strip() for label in zero_shot.LABELS.split(",")]


def note(out: Path, text: str) -> None:
    print(text, flush=True)
    with open(out / "zero-shot-gpu.md", "a", encoding="utf-8") as handle:
        handle.write(text + "\n")


def parity(out: Path, files: list[Path], device: str) -> None:
    from transformers import pipeline

    from make_zero_shot_model import save_zero_shot_model
    from resnet_cli import classify, load_classifier

    for kind in ("clip", "siglip"):
        folder = save_zero_shot_model(str(bench.WORK / f"tiny-{kind}"), kind=kind)
        reference = pipeline(
            "zero-shot-image-classification", model=folder, device=0 if device == "cuda" else -1
        )
        theirs = [
            {a["label"]: a["score"] for a in reference(str(p), candidate_labels=LABELS)}
            for p in files
        ]
        for exact in (False, True):
            classifier = load_classifier(folder, labels=LABELS, device=device, exact=exact)
            records = list(classify(classifier, files, top_k=len(LABELS)))
            same, gap, clear, clear_same = 0, 0.0, 0, 0
            for record, answer in zip(records, theirs, strict=True):
                scores = {p.label: p.score for p in record.predictions}
                agree = max(scores, key=scores.__getitem__) == max(answer, key=answer.__getitem__)
                same += agree
                gap = max(gap, *(abs(scores[label] - answer[label]) for label in LABELS))
                first, second = sorted(answer.values(), reverse=True)[:2]
                if first - second > 0.04:
                    clear, clear_same = clear + 1, clear_same + agree
            plan = classifier.plan
            note(
                out,
                f"| {kind} | {'--exact' if exact else 'default'} | {plan.precision}, "
                f"{plan.runtime}, nvJPEG {plan.device_decode} | {same}/{len(files)} | "
                f"{clear_same}/{clear} | {gap:.2e} |",
            )


def speed(out: Path, files: list[Path], device: str) -> None:
    zero_shot.build_models()
    runs = bench.WORK / "runs-zero-shot-gpu"
    runs.mkdir(parents=True, exist_ok=True)
    listing = runs / "files.list"
    listing.write_text("".join(f"{p}\n" for p in files), encoding="utf-8")
    ours_out, pipe_out = runs / "ours.jsonl", runs / "pipe.jsonl"
    for stale in (ours_out, pipe_out, Path(f"{ours_out}.meta.json")):
        stale.unlink(missing_ok=True)
    ours = [*bench.resnet_classify_command(), "-m", str(zero_shot.CLIP_DIR), "--offline", "-q"]
    ours += ["-d", device, "-k", "7", "--labels", zero_shot.LABELS, "-o", str(ours_out), "-"]
    script = str(HERE / "pipeline_classify.py")
    pipe = [sys.executable, script, str(zero_shot.CLIP_DIR), str(listing), str(pipe_out)]
    pipe += ["--device", "0" if device == "cuda" else "-1", "--labels", zero_shot.LABELS]
    walls = {}
    for name, argv in (("resnet-classify", ours), ("pipeline", pipe)):
        started = time.perf_counter()
        with open(listing, "rb") as feed:
            done = subprocess.run(argv, stdin=feed, capture_output=True, text=True, timeout=300)
        walls[name] = time.perf_counter() - started
        if done.returncode != 0:
            note(out, f"{name} exited {done.returncode}: {done.stderr.strip()[-500:]}")
            return
    mine, theirs = (
        [json.loads(line) for line in path.read_text().splitlines()]
        for path in (ours_out, pipe_out)
    )
    agree, gap = zero_shot.agreement(mine, theirs)
    count = len(files)
    note(out, "")
    note(out, f"CLIP ViT-B/32 (random, full size), {count} ImageNet-size JPEGs, whole command:")
    for name, wall in walls.items():
        note(out, f"- {name}: {wall:.1f} s, {count / wall:.1f} images/s")
    note(out, f"- top-1 = pipeline: {agree:.1%}; largest score gap {gap:.4f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of this script")
    args = parser.parse_args()
    import torch

    args.out.mkdir(parents=True, exist_ok=True)
    files = bench.build_corpus(bench.IMAGENET, args.images)
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    note(args.out, f"# --labels on {where} ({time.strftime('%Y-%m-%d')})")
    note(args.out, "")
    note(args.out, "| model | path | plan | top-1 = pipeline | on clear answers | max gap |")
    note(args.out, "| --- | --- | --- | ---: | ---: | ---: |")
    parity(args.out, files[:48], args.device)
    speed(args.out, files, args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
