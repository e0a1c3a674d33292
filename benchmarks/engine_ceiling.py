"""The engine's ceiling: images/s with a model that takes no time, records written as jsonl.

On a GPU, ResNet-50 takes about 45 microseconds an image (22,700 images/s in fp16), so what
the main thread spends per image on bookkeeping (handing inputs to the decode threads,
batching, top-k, building records, writing them) decides whether the 8,000 images/s target is
reachable at all. This measures that bookkeeping alone, on whatever machine runs it: inputs
are already decoded, preprocessing returns a tiny array, and the "model" returns fixed random
logits for 1000 labels. Decoding (nvJPEG on a GPU) and the forward pass come on top.

    python benchmarks/engine_ceiling.py              # both model paths, batch 256 and 8
    python benchmarks/engine_ceiling.py --images 50000 --rounds 5

Two paths: "numpy" is the torch-free ONNX Runtime classifier (top-k in NumPy); "torch" is
the torch classifier, top-k by torch, as a GPU run computes it (here on the CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import platform
import statistics
import time
from typing import Any

import numpy as np

LABELS = 1000


def instant_plan(runtime: str) -> Any:
    """The chooser's plan for an fp32 CPU run, as if ``runtime`` ran it."""
    import dataclasses

    from resnet_cli.runtimes.hardware import probe
    from resnet_cli.runtimes.select import Checkpoint, Request, choose_plan

    plan = choose_plan(Request(device="cpu", precision="fp32"), Checkpoint(), probe(cuda=False))
    return dataclasses.replace(plan, runtime=runtime)


def numpy_classifier(logits: np.ndarray) -> Any:
    from resnet_cli.runtimes.loaded import ArrayClassifier, Cpu

    pixels = np.zeros((3, 8, 8), np.float32)

    class Processor:
        def prepare(self, image: Any) -> np.ndarray:
            return pixels

    return ArrayClassifier(
        name="instant",
        model=None,
        processor=Processor(),
        device=Cpu(),
        dtype=None,
        labels=[f"label {i}" for i in range(LABELS)],
        multi_label=False,
        plan=instant_plan("instant"),
        forward=lambda batch: logits[: len(batch)],
    )


def torch_classifier(logits: np.ndarray) -> Any:
    import torch

    from resnet_cli.runtimes.loaded import Classifier

    table = torch.from_numpy(logits)

    def processor(images: list[Any], **_: Any) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.zeros(len(images), 3, 8, 8)}

    return Classifier(
        name="instant",
        model=None,
        processor=processor,
        device=torch.device("cpu"),
        dtype=torch.float32,
        labels=[f"label {i}" for i in range(LABELS)],
        multi_label=False,
        plan=instant_plan("torch"),
        forward=lambda batch: table[: len(batch)],
    )


def measure(classifier: Any, images: int, batch_size: int) -> float:
    """Images/s through classify_batches and the jsonl writer, for in-memory inputs."""
    from PIL import Image

    from resnet_cli.inputs.sources import Source
    from resnet_cli.output.writers import JsonlWriter
    from resnet_cli.pipeline.local import classify_batches

    picture = Image.new("RGB", (8, 8))  # decoded already; the processors ignore it
    sources = (Source(name=f"/data/photos/{i:08d}.jpg", image=picture) for i in range(images))
    writer = JsonlWriter(io.StringIO())
    start = time.perf_counter()
    count = failed = 0
    # The batch size as -b asks for it: the plan the classifier runs.
    plan = dataclasses.replace(classifier.plan, batch_size=batch_size)
    classifier = dataclasses.replace(classifier, plan=plan)
    for batch in classify_batches(classifier, sources, top_k=5):
        writer.write(batch)
        count += len(batch)
        failed += sum(not record.ok for record in batch)
    elapsed = time.perf_counter() - start
    assert count == images and failed == 0, f"{count} records, {failed} failed"
    return images / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logits = np.random.default_rng(0).normal(size=(256, LABELS)).astype(np.float32)
    print(f"machine: {platform.processor() or platform.machine()}, {args.images} images a run")
    print("| path | batch | img/s (median) | us/img | rounds |")
    print("|---|---|---|---|---|")
    for name, make in (("numpy", numpy_classifier), ("torch", torch_classifier)):
        classifier = make(logits)
        for batch_size in (256, 8):
            rates = [measure(classifier, args.images, batch_size) for _ in range(args.rounds)]
            rate = statistics.median(rates)
            listed = ", ".join(f"{r:.0f}" for r in rates)
            print(f"| {name} | {batch_size} | {rate:.0f} | {1e6 / rate:.0f} | {listed} |")


if __name__ == "__main__":
    main()
