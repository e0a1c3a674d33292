"""The engine's own cost per image: what caps a GPU run, where the model takes microseconds.

benchmarks/engine_ceiling.py measures it; these tests keep the pieces that make it small
doing what they did before they were made fast: the same top-k, the same order, the same
bound on inputs in flight, and device results read after their own copy, not the stream's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import scene
from resnet_cli import Source, load_classifier
from resnet_cli.pipeline.local import LaunchedBatch, Slot, classify_batches
from resnet_cli.runtimes.onnx_runtime import top_k


def stable_full_sort(logits: np.ndarray, k: int, multi_label: bool) -> tuple[Any, Any]:
    """What top_k computed before it stopped sorting every label: the reference."""
    with np.errstate(all="ignore"):
        if multi_label:
            probabilities = 1.0 / (1.0 + np.exp(-logits))
        else:
            shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    ids = np.argsort(-probabilities, axis=-1, kind="stable")[:, : min(k, logits.shape[-1])]
    return np.take_along_axis(probabilities, ids, axis=-1), ids


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(0, 6),
    labels=st.integers(1, 40),
    k=st.integers(1, 45),
    ties=st.booleans(),
    nan=st.booleans(),
    multi_label=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_top_k_is_a_stable_full_sort_cut_to_k(
    rows: int, labels: int, k: int, ties: bool, nan: bool, multi_label: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Few distinct values make ties at the k-th place common; NaN logits come from broken
    # checkpoints, and must not change which labels are listed either.
    logits = rng.integers(-2, 3, (rows, labels)) if ties else rng.normal(size=(rows, labels))
    logits = logits.astype(np.float32)
    if nan and rows:
        logits[rng.integers(rows), rng.integers(labels)] = np.nan
    scores, ids = top_k(logits, k, multi_label)
    expected_scores, expected_ids = stable_full_sort(logits, k, multi_label)
    assert np.array_equal(ids, expected_ids)
    assert np.array_equal(scores, expected_scores, equal_nan=True)


def test_big_batches_take_inputs_a_few_at_a_time_bounded_and_in_order(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    batch_size, workers = 64, 2
    classifier = load_classifier(str(tiny_model), device="cpu", batch_size=64, workers=2)
    paths = []
    for i in range(400):
        path = tmp_path / f"{i:03d}.png"
        scene(40 + i % 7, 32, seed=i).save(path)
        paths.append(str(path))
    paths[37] = str(tmp_path / "missing.png")  # a bad input inside a chunk
    submitted = 0
    real_submit = ThreadPoolExecutor.submit

    def counting_submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal submitted
        submitted += 1
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", counting_submit)
    pulled = 0

    def sources():
        nonlocal pulled
        for path in paths:
            pulled += 1
            yield Source(path, path)

    chunk = batch_size // (4 * workers)  # 8: what the engine takes for these settings
    in_flight = batch_size + 2 * workers
    records = []
    for batch in classify_batches(classifier, sources(), top_k=2):
        records.extend(batch)
        # Memory stays bounded, however many inputs there are: ahead of the records handed
        # over are at most the queued chunks (in_flight, rounded up to a chunk), the chunk
        # being unpacked, and one batch (here with the one bad input in it).
        assert pulled - len(records) <= in_flight + 2 * chunk + batch_size + 1
    assert [r.input for r in records] == paths
    assert [r.ok for r in records] == [i != 37 for i in range(400)]
    assert submitted == -(-len(paths) // chunk)  # one task per 8 inputs, not one per input


def test_device_results_are_read_after_their_own_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA, a batch's results travel to pinned host memory without blocking, and its
    records wait on an event recorded right after that copy: a plain ``.tolist()`` would
    wait for everything queued since, the next batch's forward pass included. No GPU is
    needed to check that wiring: the device tensors and the event are stand-ins."""
    import torch

    log: list[str] = []

    class DeviceTensor:
        is_cuda = True

        def __init__(self, values: list[list[float]], dtype: torch.dtype):
            self.values, self.dtype = values, dtype

        def to(self, device: str, non_blocking: bool = False) -> torch.Tensor:
            log.append(f"copy to {device}, non_blocking={non_blocking}")
            return torch.tensor(self.values, dtype=self.dtype)

        def tolist(self) -> list[Any]:
            raise AssertionError("read on the device: that waits for the whole stream")

    class Event:
        def record(self) -> None:
            log.append("event recorded")

        def synchronize(self) -> None:
            log.append("waited for the event")

    monkeypatch.setattr(torch.cuda, "Event", Event)
    scores = DeviceTensor([[0.75, 0.25], [0.5, 0.5]], torch.float32)
    ids = DeviceTensor([[1, 0], [0, 1]], torch.int64)
    slots = [Slot("a.jpg"), Slot("bad.jpg", error="not a readable image"), Slot("b.jpg")]
    launched = LaunchedBatch(slots, [([0, 2], scores, ids)])
    assert log == ["copy to cpu, non_blocking=True"] * 2 + ["event recorded"]
    records = launched.records(["cat", "dog"])
    assert log[-1] == "waited for the event"
    assert [r.input for r in records] == ["a.jpg", "bad.jpg", "b.jpg"]
    assert [(p.label, p.score, p.class_id) for p in records[0].predictions] == [
        ("dog", 0.75, 1),
        ("cat", 0.25, 0),
    ]
    assert records[1].error == "not a readable image"
    assert [p.rank for p in records[2].predictions] == [1, 2]
