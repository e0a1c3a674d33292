"""Does the rest of the run keep up with the model? (issue 28, item 4)

    python benchmarks/keeps_up.py [--images 300] [--rounds 3] [--models resnet,lite0]
                                  [--compare SRC] [--out FILE]

For each model (the full-size ResNet-50 with random weights that ``bench.py`` builds, and the
real ImageNet-trained EfficientNet-Lite0) and each of ``-p fp32`` and ``-p int8``, interleaved
round by round (A B A B):

- model only: the runtime the command runs (loaded from the same runtime cache with
  ``load_classifier``), batch 16, on 16 preprocessed photos, 6 batches timed after one;
- the whole command: ``resnet-classify -`` on ``--images`` ImageNet-size photos listed on
  stdin, from the process's start to its end (interpreter, imports, the model's load from the
  cache, decoding, the model, writing JSON lines);
- with ``--compare SRC``: the same command run from another source tree (``PYTHONPATH=SRC
  python -m resnet_cli``, e.g. a ``git worktree`` of an older commit), for a before/after.

The share is the command's images/s over the model's own; the item's target is 85%. The
runtime cache is filled by untimed first runs (as every run after a model's first finds it),
INT8's guard set to 0 so that the INT8 model runs on these photos whatever its verdict
(bench.py's photos are crops the models are unsure of; the verdicts are in int8_bench.py).
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from accuracy import MODEL_DIR as REAL_MODEL_DIR
from accuracy import default_model
from bench import (
    IMAGENET,
    MODEL_DIR,
    build_corpus,
    build_model,
    load_average,
    machine_info,
    require_scikit_image,
    say,
    warm_page_cache,
)

HERE = Path(__file__).resolve().parent
BATCH = 16
PRECISIONS = ("fp32", "int8")


def command(folder: Path, precision: str, listing: Path, src: str | None) -> tuple[float, str]:
    """Seconds the whole command took, and its summary line."""
    env = dict(os.environ)
    if src is None:
        argv = [str(Path(sys.executable).parent / "resnet-classify")]
    else:
        argv = [sys.executable, "-m", "resnet_cli"]
        env["PYTHONPATH"] = src
    argv += ["-", "-m", str(folder), "--offline", "-p", precision, "-f", "jsonl"]
    started = time.perf_counter()
    with open(listing, "rb") as feed:
        done = subprocess.run(
            argv, stdin=feed, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
    took = time.perf_counter() - started
    summary = done.stderr.decode(errors="replace").strip().splitlines()
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {summary[-1:]}")
    return took, summary[-1] if summary else ""


def model_rate(folder: Path, precision: str, photos: Sequence[Path]) -> tuple[float, str]:
    """The runtime the command runs, alone: images/s on batches of 16 preprocessed photos."""
    from resnet_cli import load_classifier
    from resnet_cli.inputs.decode import decode_image, read_file

    classifier = load_classifier(str(folder), device="cpu", precision=precision, offline=True)
    processor = classifier.threads_processor
    assert processor is not None, "a cached runtime has its processor in NumPy"
    rows = [
        processor.prepare(decode_image(read_file(str(p)), resize=classifier.resize))
        for p in photos[:BATCH]
    ]
    batch = classifier.stack(rows)
    classifier.predict(batch, 5)
    started = time.perf_counter()
    for _ in range(6):
        classifier.predict(batch, 5)
    return 6 * BATCH / (time.perf_counter() - started), classifier.runtime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="photos per command [300]")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds [3]")
    parser.add_argument("--models", default="resnet,lite0", help="resnet, lite0 or both")
    parser.add_argument("--compare", help="another source tree's src/, run beside this one")
    parser.add_argument("--out", type=Path, help="results file [results-keeps-up-HOST-DATE.md]")
    args = parser.parse_args(argv)
    require_scikit_image()
    began, load_start = time.perf_counter(), load_average()
    info = machine_info()
    corpus = build_corpus(IMAGENET, args.images + 64)
    warm_page_cache(corpus)
    work = Path(tempfile.mkdtemp(prefix="keeps-up-"))
    os.environ["RESNET_CLI_CACHE_DIR"] = str(work / "cache")
    os.environ["RESNET_CLI_INT8_AGREEMENT"] = "0"
    listing, first = work / "photos.txt", work / "first.txt"
    listing.write_text("".join(f"{p}\n" for p in corpus[: args.images]))
    first.write_text("".join(f"{p}\n" for p in corpus[-64:]))  # not the scored photos
    chosen = {m.strip() for m in args.models.split(",")}
    models = []
    if "resnet" in chosen:
        models.append(("ResNet-50 (random weights)", build_model(MODEL_DIR)))
    if "lite0" in chosen:
        models.append(("EfficientNet-Lite0 (ImageNet)", default_model(REAL_MODEL_DIR)))
    lines = [
        "| model | precision | runtime | model only | command | share | "
        + ("before: command | before: share |" if args.compare else ""),
        "|---|---|---|---:|---:|---:|" + ("---:|---:|" if args.compare else ""),
    ]
    for name, folder in models:
        for precision in PRECISIONS:
            say(f"{name} {precision}: first run (untimed) fills the runtime cache ...")
            say(f"  {command(folder, precision, first, None)[1]}")
        got: dict[str, dict[str, list[float]]] = {p: {} for p in PRECISIONS}
        runtimes: dict[str, str] = {}
        for round_ in range(1, args.rounds + 1):
            for precision in PRECISIONS:
                rates = got[precision]
                rate, runtimes[precision] = model_rate(folder, precision, corpus)
                rates.setdefault("model", []).append(rate)
                took, _ = command(folder, precision, listing, None)
                rates.setdefault("command", []).append(args.images / took)
                if args.compare:
                    took, _ = command(folder, precision, listing, args.compare)
                    rates.setdefault("before", []).append(args.images / took)
                say(
                    f"  round {round_} {precision}: "
                    + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items())
                )
        for precision in PRECISIONS:
            m = {k: statistics.median(v) for k, v in got[precision].items()}
            row = (
                f"| {name} | {precision} | {runtimes[precision]} | {m['model']:.1f} "
                f"| {m['command']:.1f} | {m['command'] / m['model']:.0%} |"
            )
            if args.compare:
                row += f" {m['before']:.1f} | {m['before'] / m['model']:.0%} |"
            lines.append(row)
    header = [
        "# Does the rest of the run keep up with the model?",
        "",
        f"- host: {info['host']}, cpu: {info['cpu']}, cores: {info['cores']}",
        f"- native bf16: {info['native bf16']}; ONEDNN_MAX_CPU_ISA: "
        f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '(not set)')}",
        f"- load average at start and end: {load_start} / {load_average()}",
        f"- total time: {time.perf_counter() - began:.0f} s",
        f"- command: `resnet-classify - -p PRECISION -f jsonl` on {args.images} ImageNet-size "
        "photos listed on stdin, from a warm runtime cache; images/s, median of "
        f"{args.rounds} interleaved rounds"
        + (f"; before: the same from `{args.compare}`" if args.compare else ""),
        "",
    ]
    report = "\n".join([*header, *lines, ""])
    print()
    print(report)
    stamp = datetime.date.today().strftime("%Y%m%d")
    target = args.out or HERE / f"results-keeps-up-{socket.gethostname()}-{stamp}.md"
    target.write_text(report, encoding="utf-8")
    print(f"written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
