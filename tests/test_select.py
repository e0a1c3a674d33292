"""The chooser, table-driven: hardware x options x checkpoint -> plan. Pure: no model, no torch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resnet_cli.errors import DeviceError, UsageError
from resnet_cli.runtimes.hardware import Hardware
from resnet_cli.runtimes.int8 import Check
from resnet_cli.runtimes.select import (
    CHOICES,
    EXPORT_WORTH_IMAGES,
    Checkpoint,
    Plan,
    Request,
    choose_plan,
)

AVX2 = Hardware(cores=2, features=frozenset({"avx2"}), onednn=frozenset())
AMX = Hardware(
    cores=2,
    features=frozenset({"avx2", "avx512_bf16", "amx_bf16"}),
    native_bf16=True,
    onednn=frozenset({"bf16"}),
)
GPU = Hardware(cores=16, cuda=("NVIDIA H200",), cuda_bf16=True, onednn=frozenset())
RESNET = Checkpoint(native=True, cacheable=True)
CACHED_RESNET = Checkpoint(native=True, cacheable=True, cached=True)
VIT = Checkpoint()  # through transformers, processor not reproduced in NumPy
TIMM = Checkpoint(cacheable=True, device_tensors=False)  # timm's transform in NumPy, PIL only
SIGLIP2 = Checkpoint(image_batch=False)

ORT, CACHE, TF = "onnxruntime", "onnx cache", "transformers"
WORTH = EXPORT_WORTH_IMAGES
# (hardware, request, checkpoint) -> (device, precision, runtime, network, batch, export_after)
TABLE = [
    (AVX2, Request(), RESNET, ("cpu", "fp32", ORT, "native", 8, False)),
    (AVX2, Request(), CACHED_RESNET, ("cpu", "fp32", ORT, CACHE, 8, False)),
    (AVX2, Request(images=3), RESNET, ("cpu", "fp32", "torch", "native", 8, True)),
    (AVX2, Request(images=3), CACHED_RESNET, ("cpu", "fp32", ORT, CACHE, 8, False)),
    (AVX2, Request(images=3), VIT, ("cpu", "fp32", "torch", TF, 8, False)),
    (AVX2, Request(images=WORTH), VIT, ("cpu", "fp32", ORT, TF, 8, False)),
    (AVX2, Request(images=3), TIMM, ("cpu", "fp32", "torch", TF, 8, True)),
    (AVX2, Request(onnx=False), RESNET, ("cpu", "fp32", "torchscript", "native", 8, False)),
    (AVX2, Request(), SIGLIP2, ("cpu", "fp32", "torch", TF, 8, False)),
    (AVX2, Request(exact=True), CACHED_RESNET, ("cpu", "fp32", "torch", "native", 8, False)),
    (AVX2, Request(precision="bf16"), RESNET, ("cpu", "bf16", "torch", "native", 16, False)),
    (AVX2, Request(compile_model=True), VIT, ("cpu", "fp32", "torch.compile", TF, 8, False)),
    (AMX, Request(), CACHED_RESNET, ("cpu", "bf16", "onednn", "native", 16, False)),
    (AMX, Request(), VIT, ("cpu", "bf16", "torch", TF, 16, False)),
    (AMX, Request(precision="fp32"), CACHED_RESNET, ("cpu", "fp32", ORT, CACHE, 8, False)),
    (GPU, Request(), CACHED_RESNET, ("cuda", "fp16", "cudagraph", "native", 256, False)),
    (GPU, Request(images=100), RESNET, ("cuda", "fp16", "torch", "native", 256, False)),
    (GPU, Request(exact=True), RESNET, ("cuda", "fp32", "torch", "native", 256, False)),
    (GPU, Request(), SIGLIP2, ("cuda", "fp16", "torch", TF, 256, False)),
    (GPU, Request(device="cpu"), CACHED_RESNET, ("cpu", "fp32", ORT, CACHE, 8, False)),
    (GPU, Request(precision="bf16", batch_size=64), VIT, ("cuda", "bf16", "cudagraph", TF, 64, False)),  # noqa: E501
    (GPU, Request(images=64, batch_size=64), VIT, ("cuda", "fp16", "cudagraph", TF, 64, False)),
    (GPU, Request(), TIMM, ("cuda", "fp16", "cudagraph", TF, 256, False)),
    # The CLI's path: -b and -j go into the request, and the plan runs them.
    (AVX2, Request(batch_size=64, workers=3), CACHED_RESNET, ("cpu", "fp32", ORT, CACHE, 64, False)),  # noqa: E501
    (AVX2, Request(images=3, batch_size=2, workers=1), RESNET, ("cpu", "fp32", "torch", "native", 2, True)),  # noqa: E501
    (GPU, Request(images=100, batch_size=64, workers=3), RESNET, ("cuda", "fp16", "cudagraph", "native", 64, False)),  # noqa: E501
]  # fmt: skip


def facts(plan: Plan) -> tuple[str, str, str, str, int]:
    """What the tables check of a plan; only a cache entry's plan starts without torch."""
    assert plan.needs_torch == (plan.network not in ("onnx cache", "int8 cache"))
    return (plan.device, plan.precision, plan.runtime, plan.network, plan.batch_size)


@pytest.mark.parametrize(("hardware", "request_", "checkpoint", "expected"), TABLE)
def test_the_plan_for_each_machine_and_option(
    hardware: Hardware, request_: Request, checkpoint: Checkpoint, expected: tuple
) -> None:
    plan = choose_plan(request_, checkpoint, hardware)
    assert (*facts(plan), plan.export_after) == expected
    assert set(plan.reasons) == set(CHOICES)
    assert all(plan.reasons.values())  # every choice says why
    if request_.batch_size:
        assert plan.reasons["batch_size"] == "as asked"
    # JPEGs go to nvJPEG only where the processor takes the tensors it gives (not timm's).
    assert plan.device_decode == (
        plan.device == "cuda" and not request_.exact and checkpoint.device_tensors
    )
    assert plan.workers == (
        request_.workers or min(hardware.cores, 4 if plan.device_decode else 32)
    )


@pytest.mark.parametrize(
    ("hardware", "request_", "error", "message"),
    [
        (AVX2, Request(device="cuda"), DeviceError, "no CUDA device is available"),
        (GPU, Request(device="cuda:1"), DeviceError, "use cuda:0 to cuda:0"),
        (AVX2, Request(device="mps"), DeviceError, "MPS is not available"),
        (GPU.__class__(cores=1, cuda=("old",)), Request(precision="bf16"), DeviceError, "fp16"),
        (AVX2, Request(precision="fp64"), UsageError, "unknown precision"),
        (AVX2, Request(runtime="onnxruntime", exact=True), UsageError, "not with --exact"),
        (AVX2, Request(runtime="onednn"), UsageError, "bf16 or fp16"),
        (AVX2, Request(runtime="tensorrt"), UsageError, "unknown runtime"),
        (AVX2, Request(precision="int8", int8=True, labels=3), UsageError, "not zero-shot"),
    ],
)
def test_what_cannot_run_is_one_clear_error(
    hardware: Hardware, request_: Request, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        choose_plan(request_, RESNET, hardware)


def test_a_runtime_asked_by_name_is_the_one_that_runs() -> None:
    plan = choose_plan(Request(runtime="torch"), CACHED_RESNET, AVX2)
    assert (plan.runtime, plan.network) == ("torch", "native")
    packed = choose_plan(Request(precision="bf16", runtime="onednn"), RESNET, AVX2)
    assert packed.runtime == "onednn"  # asked for: tried even where the probe saw no kernels


def test_a_runtime_that_cannot_be_built_falls_back_to_torch_with_its_reason() -> None:
    chosen = choose_plan(Request(), RESNET, AVX2)
    plan = chosen.fallen_back("the export disagreed")
    assert plan.runtime == "torch" and "the export disagreed" in plan.reasons["runtime"]
    assert chosen.runtime == ORT and chosen.reasons["runtime"].startswith("fp32")  # a new plan
    with pytest.raises(TypeError):  # nothing changes a plan in place, its reasons neither
        chosen.reasons["runtime"] = "changed"  # type: ignore[index]
    import pickle

    assert pickle.loads(pickle.dumps(plan)) == plan  # as a Ray worker would get it
    assert plan.as_dict()["runtime"] == {"value": "torch", "why": plan.reasons["runtime"]}


def test_as_dict_holds_every_choice_with_its_reason_as_plain_data() -> None:
    import json

    plan = choose_plan(Request(batch_size=64, workers=3), CACHED_RESNET, AVX2)
    data = plan.as_dict()
    assert list(data) == list(CHOICES)
    assert json.loads(json.dumps(data)) == data  # plain data: what env prints, a run records
    assert data["batch_size"] == {"value": 64, "why": "as asked"}
    assert data["workers"] == {"value": 3, "why": "as asked"}
    assert all(row["why"] for row in data.values())


# (hardware, request, checkpoint) -> (channels_last, cudnn.benchmark, BatchNorm folded)
TORCH_SETUP = [
    (AVX2, Request(), RESNET, (True, False, True)),
    (AVX2, Request(exact=True), RESNET, (True, False, False)),
    (AVX2, Request(), CACHED_RESNET, (False, False, False)),  # no torch model at all
    (AVX2, Request(), SIGLIP2, (False, False, True)),  # not a plain image batch
    (GPU, Request(), RESNET, (True, True, True)),
    (GPU, Request(exact=True), RESNET, (True, False, False)),
    (GPU.__class__(cores=2, mps=True), Request(device="mps"), RESNET, (False, False, True)),
]


@pytest.mark.parametrize(("hardware", "request_", "checkpoint", "expected"), TORCH_SETUP)
def test_what_is_done_to_the_torch_model_is_the_plans(
    hardware: Hardware, request_: Request, checkpoint: Checkpoint, expected: tuple
) -> None:
    plan = choose_plan(request_, checkpoint, hardware)
    assert (plan.channels_last, plan.cudnn_benchmark, plan.fold_batchnorm) == expected


@pytest.mark.parametrize(
    ("hardware", "threads", "why"),
    [
        (AVX2, 2, "one per usable core (2)"),
        (replace(GPU, thread_limit=3), 3, "OMP_NUM_THREADS=3, as torch takes it"),
        (replace(AVX2, thread_limit=8), 2, "one per usable core (2)"),
    ],
)
def test_onnx_runtime_threads_are_the_plans(hardware: Hardware, threads: int, why: str) -> None:
    plan = choose_plan(Request(device="cpu"), CACHED_RESNET, hardware)
    assert (plan.intra_op_threads, plan.reasons["intra_op_threads"]) == (threads, why)


INT8 = Request(precision="int8", int8=True)
ACCEPTED = Check(images=64, same_top1=98.4, max_score_gap=0.08, threshold=95.0)
REFUSED = Check(images=64, same_top1=81.2, max_score_gap=0.9, threshold=95.0)
ICACHE = "int8 cache"


@pytest.mark.parametrize(
    ("hardware", "request_", "checkpoint", "expected"),
    [
        # A first run: calibrates on its first 64 images, the torch model loaded for it.
        (AVX2, INT8, RESNET, ("cpu", "int8", "openvino", "native", 16, 64)),
        (AMX, INT8, TIMM, ("cpu", "int8", "openvino", TF, 16, 64)),
        (GPU, INT8, RESNET, ("cpu", "int8", "openvino", "native", 16, 64)),  # auto: the CPU
        # An earlier run's accepted model: without torch, nothing to calibrate.
        (AVX2, INT8, replace(RESNET, int8=ACCEPTED), ("cpu", "int8", "openvino", ICACHE, 16, 0)),
        # Refused by an earlier run's guard, or too short a run: fp32, as -p fp32 would run.
        (AVX2, INT8, replace(CACHED_RESNET, int8=REFUSED), ("cpu", "fp32", ORT, CACHE, 8, 0)),
        (AVX2, replace(INT8, images=2), RESNET, ("cpu", "fp32", "torch", "native", 8, 0)),
        (AVX2, INT8, SIGLIP2, ("cpu", "fp32", "torch", TF, 8, 0)),
    ],
)  # fmt: skip
def test_int8_is_planned_only_where_asked_and_says_why_not(
    hardware: Hardware, request_: Request, checkpoint: Checkpoint, expected: tuple
) -> None:
    plan = choose_plan(request_, checkpoint, hardware)
    assert (*facts(plan), plan.calibrate) == expected
    if plan.precision == "fp32":  # asked for int8, given fp32: one line says why
        assert plan.note is not None and plan.note == plan.reasons["precision"]
        assert plan.note.startswith("int8")
    else:
        assert plan.note is None


def test_auto_never_chooses_int8() -> None:
    for hardware in (AVX2, AMX, GPU):
        for checkpoint in (RESNET, replace(CACHED_RESNET, int8=ACCEPTED), TIMM):
            plan = choose_plan(Request(int8=True), checkpoint, hardware)
            assert plan.precision != "int8" and plan.runtime != "openvino"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (Request(precision="int8"), r"pip install '\.\[int8\]'"),  # no OpenVINO
        (replace(INT8, device="cuda"), "computes on the CPU"),
        (replace(INT8, compile_model=True), "--compile"),
        (replace(INT8, runtime="onnxruntime"), "int8 runs in openvino"),
        (Request(runtime="openvino", device="cpu"), "it runs --precision int8"),
    ],
)
def test_int8_that_cannot_run_is_one_clear_error(request_: Request, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        choose_plan(request_, RESNET, GPU)


def test_a_plan_that_stayed_in_fp32_keeps_its_runtime_and_says_why() -> None:
    plan = choose_plan(INT8, RESNET, AVX2).stayed_fp32(REFUSED.refusal())
    assert (plan.precision, plan.runtime, plan.calibrate) == ("fp32", "openvino", 0)
    assert plan.note == plan.reasons["precision"]
    assert plan.note.startswith("int8 refused: same top-1 as fp32 on 81.2% of 64")
