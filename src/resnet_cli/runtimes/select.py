"""THE choice of how a run computes: options + checkpoint + hardware -> a plan with reasons.

``choose_plan`` is a pure function, and the only place that decides the device, the precision,
the runtime that runs the forward pass, the batch size and decode workers (as asked, else
its own), whether JPEGs are decoded on the device, channels_last, cuDNN's autotuning,
BatchNorm folding and ONNX Runtime's (and OpenVINO's) intra-op threads. It imports no
runtime: ``build`` applies what it says. The CLI, the library, the Ray actors and the
torch-free quick start all load through it, and ``resnet-classify env`` prints what it says
and why. Every image of a run is scored by the runtime the plan names: nothing changes
runtime mid-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import DeviceError, UsageError, install_extra
from .hardware import Hardware

if TYPE_CHECKING:
    from .int8 import Check

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
# Below this many images an ONNX export (a second or two for ResNet-50) costs more than ONNX
# Runtime saves (about 1.5x on a 2-core AVX2 machine: 40 ms an image): such runs stay in torch
# and leave the export for the next run's quick start instead.
EXPORT_WORTH_IMAGES = 64

RUNTIMES = (
    "onnxruntime",
    "torchscript",
    "onednn",
    "cudagraph",
    "torch",
    "torch.compile",
    "openvino",
)
# Images a first --precision int8 run calibrates on (runtimes/int8.py says why 64).
CALIBRATION_IMAGES = 64


@dataclass(frozen=True)
class Request:
    """What the user asked for that bears on how a run computes."""

    device: str = "auto"
    precision: str = "auto"
    exact: bool = False
    compile_model: bool = False
    batch_size: int | None = None
    workers: int | None = None
    images: int | None = None  # how many images the run will classify, where known
    onnx: bool = True  # ONNX Runtime installed and not turned off (RESNET_CLI_ONNX=0)
    runtime: str = "auto"  # or one of RUNTIMES, as sentence-transformers' backend=
    labels: int = 0  # zero-shot labels given (--labels): the model scores them, not its own
    int8: bool = False  # OpenVINO and NNCF installed (the int8 extra)


@dataclass(frozen=True)
class Checkpoint:
    """What is known of the model before its network is built.

    ``native``: a ResNet that resnet_cli builds without transformers (with a processor it
    reproduces, exactly where the request is --exact); ``cached``: an ONNX export of these
    very files is in the runtime cache; ``cacheable``: an export of it could be cached (its
    files are on disk and its processor is reproduced in NumPy); ``image_batch``: its processor
    gives a fixed-size 4-D pixel batch (what every runtime but eager torch takes);
    ``device_tensors``: its processor takes uint8 image tensors on the device (transformers'
    torchvision-backed processors and the native one; timm checkpoints' takes PIL images only,
    so their JPEGs are decoded on the CPU)."""

    native: bool = False
    cached: bool = False
    cacheable: bool = False
    image_batch: bool = True
    device_tensors: bool = True
    int8: Check | None = None  # the INT8 guard's verdict an earlier run cached, where asked
    network_note: str | None = None  # how the loaded zero-shot network scores, where not usual


@dataclass(frozen=True)
class Plan:
    """How a run computes. ``network``: what builds the model (``onnx cache``: nothing, the
    cached export runs without torch; ``native``; ``transformers``). ``quick_start``: an ONNX
    export of this checkpoint can be saved, for later runs to start from without torch;
    ``export_after``: save it after the run (a run too short to be worth exporting first).
    ``calibrate``: images the run holds back to calibrate INT8 on before its first batch.
    ``channels_last``, ``cudnn_benchmark``, ``fold_batchnorm``: what is done to the torch
    network before the first image; ``intra_op_threads``: the threads an ONNX Runtime or
    OpenVINO session computes on. ``note``: the one line a run says on stderr about the plan
    (INT8 asked for, fp32 used). ``reasons``: why, per field, for ``resnet-classify env``
    and the results' metadata (``as_dict``)."""

    device: str
    precision: str
    runtime: str
    network: str
    batch_size: int
    workers: int
    device_decode: bool
    channels_last: bool
    cudnn_benchmark: bool
    fold_batchnorm: bool
    intra_op_threads: int
    quick_start: bool = False
    export_after: bool = False
    calibrate: int = 0
    note: str | None = None
    reasons: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Read-only, as the rest of the plan: a change of plan is a new plan (``replace``).
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled (for a Ray worker) with its reasons as a plain dict."""
        values = [getattr(self, each.name) for each in fields(self)]
        return (Plan, (*values[:-1], dict(self.reasons)))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Every choice as plain data, with its reason: ``{field: {"value": ..., "why": ...}}``
        (what ``resnet-classify env`` prints and a results file's metadata records)."""
        return {
            name: {"value": getattr(self, name), "why": self.reasons.get(name, "")}
            for name in CHOICES
        }

    @property
    def needs_torch(self) -> bool:
        return self.network not in ("onnx cache", "int8 cache")

    @property
    def autocast(self) -> bool:
        """Reduced precision on the CPU runs under autocast, over fp32 weights; elsewhere the
        weights themselves are cast."""
        return self.device == "cpu" and self.precision in ("bf16", "fp16")

    def fallen_back(self, why: str) -> Plan:
        """This plan with eager torch where the faster runtime it named could not be built
        (or did not give the eager model's logits): a slower run, never a failed one."""
        return replace(self, runtime="torch", reasons={**self.reasons, "runtime": f"torch: {why}"})

    def stayed_fp32(self, note: str) -> Plan:
        """This INT8 plan after the guard (or a run too short to calibrate on) kept it in
        fp32: the same runtime, on the fp32 model."""
        reasons = {**self.reasons, "precision": note}
        return replace(self, precision="fp32", calibrate=0, note=note, reasons=reasons)


# The plan's choices, in the order env prints them (every field but ``note`` and ``reasons``).
CHOICES = (
    "device",
    "precision",
    "runtime",
    "network",
    "batch_size",
    "workers",
    "device_decode",
    "channels_last",
    "cudnn_benchmark",
    "fold_batchnorm",
    "intra_op_threads",
    "quick_start",
    "export_after",
    "calibrate",
)


def choose_plan(request: Request, checkpoint: Checkpoint, hardware: Hardware) -> Plan:
    """The plan for ``request`` on ``checkpoint`` and ``hardware``; a DeviceError where the
    device or precision asked for is not there, a UsageError for a bad name."""
    device, device_why = _device(request.device, hardware, request.precision)
    precision, precision_why = _precision(request, checkpoint, device, hardware)
    quick_start, quick_start_why = _quick_start(request, checkpoint, device, precision)
    batch, batch_why = _batch_size(request, device, precision)
    runtime, runtime_why, export_after = _runtime(
        request, checkpoint, hardware, device, precision, quick_start, batch
    )
    # An INT8 model an earlier run cached starts without torch; a checkpoint whose processor
    # is not in NumPy cannot, and calibrates again.
    int8_ready = precision == "int8" and checkpoint.int8 is not None and checkpoint.cacheable
    network, network_why = _network(request, checkpoint, runtime, int8_ready)
    device_decode, device_decode_why = _device_decode(request, checkpoint, device)
    workers, workers_why = _workers(request, hardware, device_decode)
    torch_model = network not in ("onnx cache", "int8 cache")
    channels_last, channels_last_why = _channels_last(checkpoint, device, torch_model)
    cudnn, cudnn_why = _cudnn_benchmark(request, device)
    fold, fold_why = _fold_batchnorm(request, torch_model)
    threads, threads_why = _intra_op_threads(hardware)
    calibrate = CALIBRATION_IMAGES if precision == "int8" and not int8_ready else 0
    return Plan(
        device=device,
        precision=precision,
        runtime=runtime,
        network=network,
        batch_size=batch,
        workers=workers,
        device_decode=device_decode,
        channels_last=channels_last,
        cudnn_benchmark=cudnn,
        fold_batchnorm=fold,
        intra_op_threads=threads,
        quick_start=quick_start,
        export_after=export_after,
        calibrate=calibrate,
        note=precision_why if request.precision == "int8" and precision != "int8" else None,
        reasons={
            "device": device_why,
            "precision": precision_why,
            "runtime": runtime_why,
            "network": network_why,
            "batch_size": batch_why,
            "workers": workers_why,
            "device_decode": device_decode_why,
            "channels_last": channels_last_why,
            "cudnn_benchmark": cudnn_why,
            "fold_batchnorm": fold_why,
            "intra_op_threads": threads_why,
            "quick_start": quick_start_why,
            "export_after": _export_after_why(export_after, quick_start, runtime),
            "calibrate": (
                f"the run's first {calibrate} images, before its first batch"
                if calibrate
                else "nothing to calibrate"
            ),
        },
    )


def _network(
    request: Request, checkpoint: Checkpoint, runtime: str, int8_ready: bool
) -> tuple[str, str]:
    """What builds the model: nothing (a cache entry runs without torch), native or
    transformers (zero-shot: with the user's labels)."""
    if request.labels:
        return "zero-shot", checkpoint.network_note or (
            f"AutoModelForZeroShotImageClassification: the text of your {request.labels} "
            "label(s) embedded once, each image's embedding scored against them"
        )
    if runtime == "onnxruntime" and checkpoint.cached:
        return "onnx cache", "the cached export runs without torch"
    if int8_ready:
        return "int8 cache", "the cached INT8 model runs without torch"
    if checkpoint.native:
        return "native", "a ResNet checkpoint on disk: built without transformers"
    return "transformers", "AutoModelForImageClassification"


def _quick_start(
    request: Request, checkpoint: Checkpoint, device: str, precision: str
) -> tuple[bool, str]:
    """Whether an ONNX export of this checkpoint can start later runs without torch."""
    why_not = None
    if device != "cpu" or precision != "fp32":
        why_not = "it is for fp32 on the CPU"
    elif request.exact or request.compile_model:
        why_not = "--exact and --compile run the torch model"
    elif not checkpoint.image_batch:
        why_not = "the processor gives more than a fixed-size image batch"
    elif not checkpoint.cacheable:
        why_not = "the checkpoint is not on disk, or its processor is not reproduced in NumPy"
    elif not request.onnx:
        why_not = "ONNX Runtime is not installed, or RESNET_CLI_ONNX=0"
    elif request.labels:
        why_not = "the cache's key has no labels in it"
    if why_not is not None:
        return False, f"no torch-free start from an export: {why_not}"
    return True, "an ONNX export of this checkpoint can start later runs without torch"


def _export_after_why(export_after: bool, quick_start: bool, runtime: str) -> str:
    if export_after:
        return "a run too short to export first: saved after it, for the next run's start"
    if quick_start and runtime == "onnxruntime":
        return "the run's own export is cached as it is made"
    return "nothing to save after the run"


def _channels_last(checkpoint: Checkpoint, device: str, torch_model: bool) -> tuple[bool, str]:
    if not torch_model:
        return False, "no torch model: the cached model runs as it was saved"
    if device == "mps":
        return False, "MPS gains nothing from it"
    if not checkpoint.image_batch:
        return False, "the processor gives more than a fixed-size image batch"
    # The same fp32 arithmetic in another order (--exact stays within 1e-4 of the pipeline).
    return True, "the same arithmetic in another memory order: 1.3x faster on the CPU"


def _cudnn_benchmark(request: Request, device: str) -> tuple[bool, str]:
    if not device.startswith("cuda"):
        return False, "cuDNN is CUDA's"
    if request.exact:
        return False, "--exact keeps torch's defaults, which the pipeline runs with"
    return True, "cuDNN times its algorithms once per batch shape and keeps the fastest"


def _fold_batchnorm(request: Request, torch_model: bool) -> tuple[bool, str]:
    if not torch_model:
        return False, "no torch model: the cached model runs as it was saved"
    if request.exact:
        return False, "--exact keeps the pipeline's arithmetic"
    return True, "into the convolution before it: one pass less, the same logits but for rounding"


def _intra_op_threads(hardware: Hardware) -> tuple[int, str]:
    """ONNX Runtime's and OpenVINO's threads: every usable core, or fewer where
    OMP_NUM_THREADS says so, as torch takes it (Ray sets it to an actor's CPUs)."""
    limit = hardware.thread_limit
    if limit is not None and limit < hardware.cores:
        return limit, f"OMP_NUM_THREADS={limit}, as torch takes it"
    return hardware.cores, f"one per usable core ({hardware.cores})"


def _device(name: str, hardware: Hardware, precision: str = "auto") -> tuple[str, str]:
    if name == "auto":
        if precision == "int8":
            return "cpu", "auto: --precision int8 computes on the CPU"
        if hardware.cuda:
            return "cuda", f"auto: CUDA is available ({hardware.cuda[0]})"
        return "cpu", "auto: no CUDA device"
    if name.startswith("cuda"):
        if not hardware.cuda:
            raise DeviceError(
                f"--device {name} was asked for, but no CUDA device is available here "
                "(no GPU, no driver, or a CPU-only torch build); use --device cpu"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= len(hardware.cuda):
            raise DeviceError(
                f"--device {name} was asked for, but this machine has {len(hardware.cuda)} "
                f"CUDA device(s): use cuda:0 to cuda:{len(hardware.cuda) - 1}"
            )
        return name, "as asked"
    if name == "mps" and not hardware.mps:
        raise DeviceError("--device mps was asked for, but MPS is not available; use --device cpu")
    return name, "as asked"


# Decode threads where nvJPEG decodes: they only read files and their JPEG markers, and more
# of them take the GIL from the main thread that feeds the GPU. On an H200 with 16 cores, the
# library's whole run: 4,053 images/s with 4 threads, 2,736 with 16 (gpu_profile.py).
DEVICE_DECODE_WORKERS = 4


def _workers(request: Request, hardware: Hardware, device_decode: bool) -> tuple[int, str]:
    if request.workers:
        return request.workers, "as asked"
    if device_decode:
        workers = max(1, min(hardware.cores, DEVICE_DECODE_WORKERS))
        return workers, f"{workers}: they only read files for nvJPEG, and more hold the GIL"
    return max(1, min(hardware.cores, 32)), f"one per usable core ({hardware.cores})"


def _device_decode(request: Request, checkpoint: Checkpoint, device: str) -> tuple[bool, str]:
    if not device.startswith("cuda"):
        return False, "decoding in threads on the CPU"
    if request.exact:
        return False, "--exact decodes as the pipeline does: in threads on the CPU"
    if not checkpoint.device_tensors:
        return False, "the model's image processor takes PIL images only: decoding on the CPU"
    return True, "nvJPEG decodes and preprocesses JPEGs on the GPU"


def _precision(
    request: Request, checkpoint: Checkpoint, device: str, hardware: Hardware
) -> tuple[str, str]:
    if request.precision not in PRECISIONS:
        raise UsageError(f"unknown precision {request.precision!r}: use {', '.join(PRECISIONS)}")
    if request.exact:
        return "fp32", "--exact computes in fp32, as the pipeline does"
    if request.precision == "int8":
        return _int8(request, checkpoint, device)
    if request.precision == "auto":
        if device != "cpu":
            return "fp16", f"auto: fp16 on {device.split(':')[0]}"
        if hardware.native_bf16:
            return "bf16", "auto: this CPU computes bf16 in hardware (AVX512-BF16 or AMX)"
        return "fp32", "auto: this CPU has no native bf16 (emulated bf16 is slower than fp32)"
    if request.precision == "bf16" and device.startswith("cuda") and not hardware.cuda_bf16:
        raise DeviceError(f"this GPU ({device}) does not support bf16; use --precision fp16")
    return request.precision, "as asked"


def _int8(request: Request, checkpoint: Checkpoint, device: str) -> tuple[str, str]:
    """INT8, where the user asked for it (``auto`` never chooses it): on the CPU only; fp32,
    saying why, where an earlier run's guard refused it or this run is too short to
    calibrate on."""
    if device != "cpu":
        raise UsageError(f"--precision int8 computes on the CPU: add --device cpu ({device} asked)")
    if request.labels:
        raise UsageError(
            "--precision int8 quantizes image classifiers, not zero-shot models: with --labels "
            "use --precision fp32 or bf16"
        )
    if request.compile_model:
        raise UsageError("--compile is torch's; --precision int8 runs in OpenVINO: drop one")
    verdict = checkpoint.int8
    if verdict is not None and not verdict.accepted:
        return "fp32", f"{verdict.refusal()} (an earlier run's guard)"
    if verdict is None:
        if not request.int8:
            raise UsageError(f"--precision int8 needs OpenVINO and NNCF: {install_extra('int8')}")
        if not checkpoint.image_batch:
            return "fp32", "int8 refused: the processor gives more than an image batch; fp32"
        if request.images is not None and request.images < CALIBRATION_IMAGES:
            return "fp32", (
                f"int8 calibrates on a first run's first {CALIBRATION_IMAGES} images, and this "
                f"run has {request.images}: computing in fp32"
            )
        return "int8", f"as asked: calibrated on this run's first {CALIBRATION_IMAGES} images"
    return "int8", f"as asked: an earlier run's INT8 model, {verdict.summary()}"


def _runtime(
    request: Request,
    checkpoint: Checkpoint,
    hardware: Hardware,
    device: str,
    precision: str,
    quick_start: bool,
    batch: int,
) -> tuple[str, str, bool]:
    """(runtime, why, export after the run)."""
    if precision == "int8":
        if request.runtime not in ("auto", "openvino"):
            raise UsageError(f"runtime {request.runtime} cannot run this: int8 runs in openvino")
        return "openvino", "INT8: NNCF's quantization, run by OpenVINO", False
    if request.runtime != "auto":
        return _asked_runtime(request, checkpoint, hardware, device, precision)
    if request.compile_model:
        return "torch.compile", "--compile", False
    if device != "cpu":
        if not device.startswith("cuda") or request.exact or not checkpoint.image_batch:
            return "torch", f"eager torch on {device}", False
        if request.images is not None and request.images < batch:
            return "torch", f"eager torch: {request.images} image(s), less than a batch", False
        return (
            "cudagraph",
            f"a CUDA graph on {device}: each batch of {batch} in one launch, not one per layer",
            False,
        )
    if request.exact:
        return "torch", "--exact: the model's own arithmetic, eager", False
    if not checkpoint.image_batch:
        return "torch", "the processor gives more than a fixed-size image batch", False
    if precision != "fp32":
        if checkpoint.native and precision in (hardware.onednn or ()):
            return "onednn", f"a ResNet in {precision}: oneDNN's fused convolutions", False
        why = (
            "oneDNN has no kernels for it on this CPU"
            if hardware.onednn is not None and precision not in hardware.onednn
            else "only ResNets have a packed oneDNN build"
        )
        return "torch", f"eager autocast to {precision} ({why})", False
    if request.onnx and checkpoint.cached and not request.labels:
        return "onnxruntime", "the export an earlier run left in the cache", False
    if request.images is not None and request.images < EXPORT_WORTH_IMAGES:
        return (
            "torch",
            f"{request.images} image(s): an export would cost more than it saves",
            quick_start,
        )
    if request.onnx:
        return (
            "onnxruntime",
            "fp32 on the CPU: ONNX Runtime, exported before the first image",
            False,
        )
    return "torchscript", "fp32 on the CPU without ONNX Runtime: TorchScript with oneDNN", False


def _asked_runtime(
    request: Request, checkpoint: Checkpoint, hardware: Hardware, device: str, precision: str
) -> tuple[str, str, bool]:
    """The runtime asked for by name, where it can run this request; else a UsageError
    saying why not."""
    asked = request.runtime
    if asked not in RUNTIMES:
        raise UsageError(f"unknown runtime {asked!r}: use auto, {', '.join(RUNTIMES)}")
    if asked == "torch.compile" or request.compile_model:
        if asked != "torch.compile" or not request.compile_model:
            raise UsageError("--compile is the torch.compile runtime: ask for one of them")
        return asked, "as asked", False
    if asked == "torch":
        return asked, "as asked", False
    if asked == "cudagraph":
        if not device.startswith("cuda") or request.exact or not checkpoint.image_batch:
            raise UsageError(
                "runtime cudagraph cannot run this: it runs fixed-size image batches on CUDA, "
                "and not with --exact"
            )
        return asked, "as asked", False
    why_not = None
    if device != "cpu" or request.exact:
        why_not = "it runs on the CPU only, and not with --exact"
    elif not checkpoint.image_batch:
        why_not = "the processor gives more than a fixed-size image batch"
    elif asked in ("onnxruntime", "torchscript") and precision != "fp32":
        why_not = "it computes in fp32"
    elif asked == "onnxruntime" and not request.onnx:
        why_not = "ONNX Runtime is not installed, or RESNET_CLI_ONNX=0"
    elif asked == "onednn" and (not checkpoint.native or precision == "fp32"):
        why_not = "it runs native ResNets in bf16 or fp16"
    elif asked == "openvino":
        why_not = "it runs --precision int8"
    if why_not is not None:
        raise UsageError(f"runtime {asked} cannot run this: {why_not}")
    return asked, "as asked", False


def _batch_size(request: Request, device: str, precision: str) -> tuple[int, str]:
    if request.batch_size:
        return request.batch_size, "as asked"
    if device != "cpu":
        return 256, "big batches keep an accelerator busy"
    if precision == "int8":
        # ResNet-50 INT8 on 2 AVX-512 cores, model only: 16 as fast as 32, 1.1x 8.
        return 16, "int8 on the CPU: 16 was fastest"
    if precision == "fp32":
        # ResNet-50 on a 2-core AVX2 machine: 12.0 images/s at 8, 11.4 at 4, 10.0 at 16.
        return 8, "fp32 on the CPU: 8 was fastest"
    # 2 AMX cores, whole command on 300 images: 3.9 s at 16 or 32, 4.3 s at 8.
    return 16, f"{precision} on the CPU: 16 was fastest"
