"""The baseline bench.py compares against: transformers' pipeline, called the way users call it.

    python benchmarks/pipeline_classify.py MODEL PATHS_FILE OUTPUT [--batch-size N] [--device N]
        [--labels "a, b, c"]

PATHS_FILE holds one image path per line. The pipeline gets the whole list in one call, with
its defaults (batch_size=1, num_workers=0, top_k=5) unless --batch-size is given; with
--labels, pipeline("zero-shot-image-classification") and those candidate labels (every label's
score). One JSON line per image goes to OUTPUT; a JSON line with this script's own timings
goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

STARTED = time.perf_counter()  # before the imports: they are part of what a user waits for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model folder (save_pretrained output)")
    parser.add_argument("paths_file", help="text file, one image path per line")
    parser.add_argument("output", help="JSON-lines file to write (must not exist)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the pipeline's")
    parser.add_argument("--device", type=int, default=-1, help="-1: CPU (default); 0: cuda:0")
    parser.add_argument("--labels", default=None, help="comma-separated: zero-shot classes")
    args = parser.parse_args(argv)

    from transformers import pipeline

    with open(args.paths_file, encoding="utf-8") as handle:
        paths = [line.rstrip("\n") for line in handle if line.strip()]

    task = "image-classification" if args.labels is None else "zero-shot-image-classification"
    classifier = pipeline(task, model=args.model, device=args.device)
    loaded = time.perf_counter()
    options: dict[str, object] = {} if args.batch_size is None else {"batch_size": args.batch_size}
    if args.labels is not None:
        options["candidate_labels"] = [label.strip() for label in args.labels.split(",")]
    results = classifier(paths, **options)
    finished = time.perf_counter()

    with open(args.output, "x", encoding="utf-8") as out:
        for path, predictions in zip(paths, results, strict=True):
            out.write(json.dumps({"input": path, "predictions": predictions}) + "\n")

    # The parent reads this to report the pipeline's own post-load rate next to the wall rate.
    timings = {
        "bench_timings": True,
        "images": len(paths),
        "load_s": loaded - STARTED,
        "classify_s": finished - loaded,
        "batch_size": args.batch_size or classifier._batch_size or 1,
        "image_processor": type(classifier.image_processor).__name__,
    }
    print(json.dumps(timings), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
