"""--compile: torch.compile gives the same records as the eager model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from resnet_cli import classify, load_classifier

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None,
    reason="torch.compile on the CPU needs a C compiler",
)


def test_compiled_model_gives_the_same_records(tiny_model: Path, images: list[Path]) -> None:
    eager = load_classifier(str(tiny_model), device="cpu", runtime="torch", batch_size=8)
    compiled = load_classifier(str(tiny_model), device="cpu", compile_model=True, batch_size=8)
    assert compiled.runtime == "torch.compile"  # not also traced or exported
    assert type(compiled.model).__name__ == "OptimizedModule"
    expected = list(classify(eager, images))
    records = list(classify(compiled, images))
    for ours, theirs in zip(records, expected, strict=True):
        assert [p.class_id for p in ours.predictions] == [p.class_id for p in theirs.predictions]
        for p, q in zip(ours.predictions, theirs.predictions, strict=True):
            assert p.score == pytest.approx(q.score, abs=1e-4)
