"""The packed oneDNN forward (``packed.py``): the same network as the eager one, layer for layer.

In fp32 its convolutions are oneDNN's as eager torch's are, so the logits match to float
rounding on any CPU; that checks the wiring (shortcuts, fused sums, pooling, classifier). In
bf16 it is compared with CPU autocast, where oneDNN has bf16 kernels for this CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_cli import classify, load_classifier
from resnet_cli.models.native import ResNetClassifier
from resnet_cli.models.transformers import fold_batchnorm
from resnet_cli.runtimes.base import logits_of
from resnet_cli.runtimes.hardware import probe
from resnet_cli.runtimes.onednn import PackedResNet

BF16_KERNELS = "bf16" in (probe(cuda=False).with_torch().onednn or ())


def network(layer_type: str, downsample_in_bottleneck: bool = False) -> ResNetClassifier:
    """A small random ResNet with BatchNorm statistics far from the identity, then folded."""
    torch.manual_seed(0)
    config = {
        "layer_type": layer_type,
        "embedding_size": 8,
        "hidden_sizes": [16, 24, 32],
        "depths": [2, 1, 2],  # identity shortcuts, projections, strides 1 and 2
        "num_labels": 7,
        "downsample_in_bottleneck": downsample_in_bottleneck,
    }
    model = ResNetClassifier(config).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    assert fold_batchnorm(model) > 0
    return model.to(memory_format=torch.channels_last)


def pixels(batch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch)
    return torch.randn(batch, 3, 64, 48, generator=generator).contiguous(
        memory_format=torch.channels_last
    )


@pytest.mark.parametrize(
    ("layer_type", "downsample_in_bottleneck"),
    [("basic", False), ("bottleneck", False), ("bottleneck", True)],
)
def test_packed_fp32_gives_the_eager_logits(
    layer_type: str, downsample_in_bottleneck: bool
) -> None:
    model = network(layer_type, downsample_in_bottleneck)
    packed = PackedResNet(model, torch.float32)
    with torch.inference_mode():
        # Packed at the first call's batch size; other sizes after it run on the same weights.
        for batch in (4, 1, 7):
            x = pixels(batch)
            before = x.clone()
            expected = logits_of(model(pixel_values=x))
            got = packed(x)
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
            assert torch.equal(x, before)  # the caller's pixels are never written into


@pytest.mark.skipif(not BF16_KERNELS, reason="oneDNN has no bf16 kernels for this CPU")
def test_packed_bf16_computes_what_autocast_does() -> None:
    model = network("bottleneck")
    packed = PackedResNet(model, torch.bfloat16)
    x = pixels(6)
    with torch.inference_mode():
        fp32 = logits_of(model(pixel_values=x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = logits_of(model(pixel_values=x)).float()
        got = packed(x).float()
    assert packed(x).dtype == torch.bfloat16
    scale = float(fp32.abs().max())
    # bf16 rounding of the same arithmetic: about as far from autocast as autocast is from
    # fp32, and nowhere near a miswired network.
    assert float((got - autocast).abs().max()) <= max(
        0.03 * scale, 2 * (autocast - fp32).abs().max()
    )


def test_networks_it_does_not_know_are_refused() -> None:
    unfolded = ResNetClassifier(
        {
            "layer_type": "basic",
            "embedding_size": 8,
            "hidden_sizes": [8],
            "depths": [1],
            "num_labels": 2,
        }
    ).eval()
    with pytest.raises(ValueError, match="BatchNorm"):
        PackedResNet(unfolded, torch.float32)
    with pytest.raises(ValueError, match="native"):
        PackedResNet(torch.nn.Conv2d(3, 8, 3), torch.float32)


def test_bf16_runs_on_it_where_oneDNN_has_kernels_and_else_stays_eager(
    tiny_model: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import resnet_cli.runtimes.onednn

    monkeypatch.setenv("RESNET_CLI_CPU_BF16", "1")  # --precision auto: bf16
    classifier = load_classifier(str(tiny_model), device="cpu", batch_size=2)
    assert classifier.precision == "bf16"
    # Without oneDNN bf16 kernels nothing is tried: the check alone would cost two forward
    # passes in emulated bf16.
    assert classifier.runtime == ("onednn" if BF16_KERNELS else "torch")
    records = list(classify(classifier, images * 2))
    assert all(r.ok for r in records)

    # A model through transformers is not packed: it stays eager.
    monkeypatch.setenv("RESNET_CLI_NATIVE", "0")
    assert load_classifier(str(tiny_model), device="cpu").runtime == "torch"
    monkeypatch.delenv("RESNET_CLI_NATIVE")

    def refuse(*args: object) -> None:
        raise RuntimeError("no such kernel")

    # Where packing fails, the run goes in eager autocast, with the same answers, and the
    # plan says why.
    monkeypatch.setattr(resnet_cli.runtimes.onednn, "PackedResNet", refuse)
    fallback = load_classifier(str(tiny_model), device="cpu", precision="bf16", batch_size=2)
    if BF16_KERNELS:
        assert "could not be built" in fallback.plan.reasons["runtime"]
    again = list(classify(fallback, images * 2))
    assert fallback.runtime == "torch"
    for ours, theirs in zip(again, records, strict=True):
        scores = {p.class_id: p.score for p in theirs.predictions}
        for p in ours.predictions:
            assert p.score == pytest.approx(scores[p.class_id], abs=0.02)


def test_a_bf16_score_does_not_depend_on_where_in_the_run_the_image_came(
    tiny_model: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The runtime is chosen before the first image: an image classified first, in a batch of its
    # own, and last, after others, gets the same arithmetic (resumed runs, re-runs of a subset).
    monkeypatch.setenv("RESNET_CLI_CPU_BF16", "1")

    def scores(inputs: list[Path], batch_size: int) -> dict[str, dict[int, float]]:
        classifier = load_classifier(str(tiny_model), device="cpu", batch_size=batch_size)
        records = classify(classifier, inputs, top_k=3)
        return {r.input: {p.class_id: p.score for p in r.predictions} for r in records}

    alone = scores(images[-1:], 1)
    later = scores(images * 20, 4)  # more images before it than any swap threshold
    last = str(images[-1])
    for class_id, score in alone[last].items():
        assert later[last][class_id] == pytest.approx(score, abs=1e-5)  # eager vs packed: 5e-5
