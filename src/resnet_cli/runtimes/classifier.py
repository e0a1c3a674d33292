"""Loading a classifier: the checkpoint, the plan for how it computes, and the model with its
image processor, ready to classify.

``load_classifier`` reads what it can of the checkpoint without torch, asks
``runtimes.select.choose_plan`` how the run computes, and builds exactly that: the torch-free
cached export, or the network (native ResNet or transformers) with the runtime the plan names,
checked before the first image. Every image of the run is scored by that runtime.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import default_model
from ..errors import DeviceError, ModelLoadError, UsageError
from ..inputs.decode import ResizeRule
from ..models.checkpoint import local_config
from ..models.transformers import (
    ModelInputs,
    fold_batchnorm,
    input_shape_of,
    load_with_transformers,
    missing_model_folder,
    model_inputs,
    resize_rule,
    takes_device_tensors,
)
from ..models.zero_shot import ZeroShot, check_model_kind, load_zero_shot
from .base import logits_of
from .hardware import Hardware
from .select import Checkpoint, Plan, Request

if TYPE_CHECKING:
    import torch
    from PIL import Image

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class Classifier:
    """A loaded model with its image processor, on the device and in the runtime its plan
    names, ready to classify."""

    name: str
    model: Any
    processor: Any
    device: Any  # a torch.device (a stand-in in the torch-free start)
    dtype: Any  # a torch.dtype (None in the torch-free start)
    labels: list[str]
    multi_label: bool
    plan: Plan
    forward: Callable[[Any], Any] | None = None  # the runtime: pixels -> logits
    exact: bool = False
    channels_last: bool = False
    resize: ResizeRule | None = None  # set: JPEGs are decoded downscaled to about this size
    files: dict[str, str] | None = None  # the checkpoint's files, for the runtime cache
    input_shape: tuple[int, ...] | None = None  # one image's model input, where fixed
    offline: bool = False  # no network at all: URL inputs are not downloaded either
    zero_shot: ZeroShot | None = None  # the labels are the user's, scored zero-shot
    int8: Any = None  # --precision int8: the guard's verdict (runtimes.int8.Check)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def precision(self) -> str:
        return self.plan.precision

    @property
    def runtime(self) -> str:
        """What scores every image of the run: onnxruntime, torchscript, onednn, torch or
        torch.compile."""
        return self.plan.runtime

    def preprocess(self, images: Sequence[Image.Image | torch.Tensor]) -> Any:
        """Images -> the model's input, by the model's own image processor: a normalized
        pixel tensor, or (``ModelInputs``) everything a processor gives that is not a plain
        image batch, passed to the model as the pipeline passes it."""
        kwargs: dict[str, Any] = {"return_tensors": "pt"}
        first = images[0] if images else None
        if first is not None and not isinstance(first, _pil_image_type()):
            kwargs["device"] = first.device  # type: ignore[union-attr]  # GPU-decoded stay there
        return model_inputs(self.processor(images=list(images), **kwargs))

    def stack(self, pixels: list[Any]) -> Any:
        """One batch from preprocessed images; pinned for a non-blocking copy to a GPU."""
        import torch

        if isinstance(pixels[0], ModelInputs):
            return ModelInputs.stacked(pixels)
        if not isinstance(pixels[0], torch.Tensor):  # NumPy, from the decode threads
            import numpy as np

            return torch.from_numpy(np.stack(pixels))
        if len({row.device for row in pixels}) > 1:
            # Images preprocessed on the host (a PNG, a JPEG that nvJPEG refused) beside
            # images preprocessed on the GPU, in one batch: all of them go to the model's device.
            pixels = [row.to(self.device) for row in pixels]
        batch = torch.stack(pixels)
        if batch.device.type == "cpu" and self.device.type == "cuda":
            batch = batch.pin_memory()  # lets the copy to the GPU overlap with other work
        return batch

    @property
    def preprocess_one(self) -> Callable[[Image.Image], Any] | None:
        """One image's preprocessing, for the decode threads where it needs no torch: on the
        CPU, the native processor's Pillow resize and NumPy normalization, so the main thread
        only stacks and runs the model. None: the processor runs on whole batches in the main
        thread (transformers' processors and --exact's, which use torch's thread pool; GPUs,
        which decode and preprocess JPEGs on the device)."""
        from ..models.native import ExactConvNextProcessor, NativeConvNextProcessor

        native = isinstance(self.processor, NativeConvNextProcessor)
        if (
            self.device.type != "cpu"
            or not native
            or isinstance(self.processor, ExactConvNextProcessor)
        ):
            return None
        return self.processor.prepare

    def predict(self, pixel_values: Any, top_k: int) -> tuple[Any, Any]:
        """Normalized pixels (or ``ModelInputs``) -> (scores, class ids) of the top-k labels,
        on the model's device."""
        import torch

        assert self.forward is not None
        with torch.inference_mode():
            if isinstance(pixel_values, ModelInputs):
                # Floating-point inputs in the weights' dtype (under autocast they stay fp32);
                # token ids, masks and shapes as they are.
                inputs = pixel_values.to(self.device, None if self.plan.autocast else self.dtype)
                logits = self.forward.inputs(inputs.tensors, self.device.type)  # type: ignore[attr-defined]
                return self._top_k(logits, top_k)
            in_torch = self.runtime not in ("onnxruntime", "openvino")
            if self.channels_last and in_torch and pixel_values.dim() == 4:
                pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            pixel_values = pixel_values.to(self.device, non_blocking=True)
            # A traced model's output is a dict or tuple; every other runtime's, the logits.
            return self._top_k(logits_of(self.forward(pixel_values)), top_k)

    def _top_k(self, logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits.float()
        probabilities = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
        return probabilities.topk(min(top_k, self.num_labels), dim=-1)

    @property
    def calibration_images(self) -> int:
        """Images the run must hand ``calibrate`` before its first batch (0: none)."""
        return self.plan.calibrate if self.int8 is None else 0

    def calibrate(self, pixels: list[Any]) -> None:
        """Calibrate INT8 on the run's first images (preprocessed, ``calibration_images`` of
        them, or fewer where the input ended first) and check it against fp32 on them: the
        run goes on in INT8 if the guard accepts it, else in fp32, and the plan says why."""
        import numpy as np

        from .int8 import Check, agreement

        pending = self.forward
        if len(pixels) < self.plan.calibrate:
            self.int8 = Check(len(pixels), 0.0, 0.0, agreement())
            self.forward = pending.fp32  # type: ignore[union-attr]
            self.plan = self.plan.stayed_fp32(
                f"int8 calibrates on a first run's first {self.plan.calibrate} images, and the "
                f"input ended after {len(pixels)}: computing in fp32"
            )
            return
        batch = self.stack(pixels)
        array = batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch)
        self.forward, self.int8 = pending.calibrate(  # type: ignore[union-attr]
            array, self.multi_label, self.files
        )
        if not self.int8.accepted:
            self.plan = self.plan.stayed_fp32(self.int8.refusal())

    def save_quick_start(self) -> bool:
        """Save this model's ONNX export in the runtime cache, so the next run of the same
        checkpoint starts from it without torch (the CLI does it after a run whose plan says
        ``export_after``; a second or two, once per checkpoint). True if the cache holds it;
        False where the checkpoint cannot start that way (not fp32 on the CPU, --exact, not on
        disk, a processor not reproduced in NumPy: the plan's ``quick_start``)."""
        if not self.plan.quick_start or self.files is None or self.input_shape is None:
            return False
        import torch

        from .select import save_export

        try:
            return save_export(self.model, torch.randn(2, *self.input_shape), self.files)
        except Exception:  # after the results: must not turn a good run into a crash
            return False


def load_classifier(
    model: str | None = None,
    *,
    revision: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    exact: bool = False,
    offline: bool = False,
    compile_model: bool = False,
    images: int | None = None,
    runtime: str = "auto",
    trust_remote_code: bool = False,
    labels: Sequence[str] | None = None,
    template: str | None = None,
) -> Classifier:
    """Load an image-classification model and its processor from the hub or a local folder
    (default: microsoft/resnet-50; with ``labels``, openai/clip-vit-base-patch32).

    ``exact`` keeps the pipeline's arithmetic (fp32, no folding, full decodes); otherwise
    BatchNorm is folded and the model runs in the plan's precision and runtime.
    ``compile_model`` wraps it in torch.compile: a slower start for a faster steady state.
    ``offline``: no network at all, neither the hub nor URL inputs (HF_HUB_OFFLINE=1 keeps
    only the hub offline). ``images``: how many images the run will classify, where known (a
    run too short to earn back an ONNX export stays in torch; see ``runtimes.select``).
    ``runtime``: one of ``runtimes.select.RUNTIMES`` instead of the chooser's pick (a
    UsageError where it cannot run the model so), as sentence-transformers' ``backend=``.
    ``trust_remote_code``: let transformers run the Python code a model's files name (its
    config's ``auto_map``); off, such a model is a ModelLoadError.
    ``labels``: your own classes, for a zero-shot model (CLIP, SigLIP), each scored as
    ``template`` (default "This is a photo of {}.") with it, as
    ``pipeline("zero-shot-image-classification")`` scores it.
    """
    zero_shot = None if labels is None else ZeroShot.of(labels, template)
    if zero_shot is None and template is not None:
        raise UsageError("a template applies to labels: give labels too")
    model = model or default_model(zero_shot is not None)
    check_model_options(device, precision, exact)
    missing = missing_model_folder(model)
    if missing is not None:  # before the hub, torch or transformers: a mistyped path is instant
        raise ModelLoadError(missing)
    if model.startswith("~"):  # quoted, so the shell left it: a folder in a home
        model = os.path.expanduser(model)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # for the hub; URL inputs see Classifier.offline
    on_disk = local_config(model, revision)
    if on_disk is not None:  # labels for a classifier, or none for CLIP: said before torch
        check_model_kind(model, on_disk, zero_shot)
    planning = plan_inputs(
        model,
        revision=revision,
        device=device,
        precision=precision,
        exact=exact,
        compile_model=compile_model,
        images=images,
        runtime=runtime,
        zero_shot=zero_shot,
    )
    checkpoint, files = planning.checkpoint, planning.files
    plan = planning.plan()
    if not plan.needs_torch and files is not None:
        # A checkpoint exported (or quantized) by an earlier run starts without torch (0.2 s,
        # not 3-4 s).
        cached = _load_cached(model, files, plan, checkpoint.int8)
        if cached is not None:
            return dataclasses.replace(cached, offline=offline)
        checkpoint = dataclasses.replace(checkpoint, cached=False, int8=None)
    planning = dataclasses.replace(planning, hardware=planning.hardware.with_torch())
    import torch

    from ..models.checkpoint import label_fields
    from ..models.native import load_native
    from .select import build_runtime
    from .torch_eager import torch_dtype

    # Where a ResNet checkpoint is on disk, it is built without transformers (a 3x quicker
    # start on the CPU; on a GPU, 4 s less of a start that torchvision's import for nvJPEG
    # already makes long), for --exact too where its processor is reproduced exactly;
    # everything else goes through transformers.
    network: Any
    native = load_native(model, revision, exact) if checkpoint.native else None
    if native is not None:
        network, processor, config, files = native
        input_shape = input_shape_of(model, processor)
        fields = label_fields(config)
    else:
        if zero_shot is not None:
            processor, network, sigmoid = load_zero_shot(
                model, revision, offline, zero_shot, trust_remote_code
            )
            fields = {"labels": list(zero_shot.labels), "multi_label": sigmoid}
        else:
            processor, network = load_with_transformers(model, revision, offline, trust_remote_code)
            # The live config: timm checkpoints' to_dict() holds label_names, not id2label.
            fields = label_fields(
                {
                    **network.config.to_dict(),
                    "id2label": dict(network.config.id2label),
                    "num_labels": network.config.num_labels,
                }
            )
        input_shape = input_shape_of(model, processor)
        checkpoint = dataclasses.replace(
            checkpoint,
            native=False,
            image_batch=input_shape is not None,
            device_tensors=takes_device_tensors(processor),
        )
        files = files if checkpoint.cacheable else None
    plan = dataclasses.replace(planning, checkpoint=checkpoint).plan()
    note = getattr(network, "plan_note", None)  # a zero-shot model's scores need its forward
    if note is not None:
        plan = dataclasses.replace(plan, reasons={**plan.reasons, "network": note})
    torch_device = _torch_device(plan.device)
    dtype = torch_dtype(plan.precision)
    tune_backends(torch_device, exact)
    network.eval()
    if not exact:
        fold_batchnorm(network)
    if not plan.autocast and dtype != torch.float32:
        network.to(dtype)
    # channels_last changes only the order of the same fp32 arithmetic (--exact stays within
    # 1e-4 of the pipeline) and runs 1.3x faster on the CPU; MPS gains nothing from it.
    channels_last = torch_device.type != "mps" and checkpoint.image_batch
    if channels_last:
        network.to(memory_format=torch.channels_last)
    try:
        network.to(torch_device)
    except Exception as exc:
        raise DeviceError(f"could not move the model to {torch_device}: {exc}") from exc
    if plan.runtime == "torch.compile":
        network = torch.compile(network)
    # The check's sample: random pixels in the model's input shape (a broken runtime gives
    # other logits on anything; a real image's would not be known before the first batch).
    sample = torch.randn(2, *input_shape) if input_shape is not None else torch.empty(0)
    forward, plan = build_runtime(plan, network, sample, files)
    return Classifier(
        name=model,
        model=network,
        processor=processor,
        device=torch_device,
        dtype=dtype,
        plan=plan,
        forward=forward,
        exact=exact,
        files=files,
        channels_last=channels_last,
        resize=None if exact else resize_rule(processor),
        input_shape=input_shape,
        offline=offline,
        zero_shot=zero_shot,
        **fields,
    )


def _load_cached(model: str, files: dict[str, str], plan: Plan, verdict: Any) -> Any:
    """The torch-free classifier from the runtime cache that ``plan`` names; None where its
    entry turns out unusable."""
    from .onnx_runtime import array_classifier, load_cached

    if plan.network == "onnx cache":
        return load_cached(model, files, plan)
    from .int8 import load_cached_forward

    cached = array_classifier(model, files, plan, lambda labels: load_cached_forward(files))
    return None if cached is None else dataclasses.replace(cached, int8=verdict)


@dataclass(frozen=True)
class PlanInputs:
    """What a run's plan is chosen from, before anything is loaded: the options, the machine
    and the checkpoint as its files on disk tell it (``files``: None where it is not on disk)."""

    request: Request
    hardware: Hardware
    checkpoint: Checkpoint
    files: dict[str, str] | None

    def plan(self, **checkpoint_changes: Any) -> Plan:
        """``choose_plan`` on these, with the checkpoint's facts changed as given (what
        loading the model, or reading its processor, has found out since)."""
        from .select import choose_plan

        checkpoint = dataclasses.replace(self.checkpoint, **checkpoint_changes)
        return choose_plan(self.request, checkpoint, self.hardware)


def plan_inputs(
    model: str,
    *,
    revision: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    exact: bool = False,
    compile_model: bool = False,
    images: int | None = None,
    runtime: str = "auto",
    hardware: Hardware | None = None,
    zero_shot: ZeroShot | None = None,
) -> PlanInputs:
    """The plan's inputs for a run of ``model``, read without torch (``hardware``: a probe
    already made, else this device's); ``load_classifier`` and ``resnet-classify env`` both
    start here, so env shows the plan a run would get. ``zero_shot``: the labels the run
    scores, where they are not the model's own."""
    from .int8 import available, cached_check
    from .onnx_runtime import enabled

    request = Request(
        device=device,
        precision=precision,
        exact=exact,
        compile_model=compile_model,
        images=images,
        onnx=enabled(),
        runtime=runtime,
        labels=0 if zero_shot is None else len(zero_shot.labels),
        int8=precision == "int8" and available(),
    )
    checkpoint, files = read_checkpoint(model, revision, exact)
    if precision == "int8" and not exact:
        checkpoint = dataclasses.replace(checkpoint, int8=cached_check(files))
    return PlanInputs(request, hardware or _probe(device), checkpoint, files)


def _torch_device(name: str) -> torch.device:
    import torch

    return torch.device(name)


def _probe(device: str) -> Hardware:
    from .hardware import probe

    hardware = probe(cuda=device != "cpu")
    # MPS, and the device a bf16 or fp16 CPU run computes with, only torch can tell.
    return hardware.with_torch() if device == "mps" else hardware


def read_checkpoint(
    model: str, revision: str | None, exact: bool
) -> tuple[Checkpoint, dict[str, str] | None]:
    """What the chooser needs to know of the checkpoint, read from its files without torch
    (all False where they are not on disk yet), and the files."""
    from ..models.checkpoint import (
        array_processor,
        local_files,
        read_json,
        reproduces_exactly,
        supported,
    )
    from .onnx_runtime import cached_path

    files = local_files(model, revision)
    if files is None:
        return Checkpoint(), None
    try:
        config = read_json(files["config.json"])
        processor = array_processor(files, config)
    except Exception:  # an unreadable file: transformers will say what is wrong with it
        return Checkpoint(), None
    resnet = (
        supported(config)
        and processor is not None
        and "preprocessor_config.json" in files
        and (not exact or reproduces_exactly(processor))
    )
    cacheable = processor is not None
    return (
        Checkpoint(
            native=resnet,
            cached=cacheable and not exact and cached_path(files) is not None,
            cacheable=cacheable,
            # timm checkpoints' processor (TimmWrapperImageProcessor) takes PIL images only.
            device_tensors=config.get("model_type") != "timm_wrapper",
        ),
        files,
    )


def check_device_name(name: str) -> str:
    """Validate the spelling of a --device value (availability is checked when loading)."""
    if not _DEVICE_PATTERN.match(name):
        raise UsageError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return name


def check_model_options(device: str, precision: str, exact: bool) -> None:
    """The checks that need no torch: --device spelling and --exact's fp32 (resolve_precision
    checks the precision's name). The CLI runs them before loading anything, so a usage error
    costs no start-up."""
    check_device_name(device)
    if exact and precision not in ("auto", "fp32"):
        raise UsageError(f"--exact computes in fp32; drop --precision {precision}")


def _pil_image_type() -> type:
    from PIL import Image

    return Image.Image


def tune_backends(device: torch.device, exact: bool) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once per input shape and keep the
    fastest, as timm's inference.py does: batches here come in one or two shapes. --exact
    keeps torch's defaults, which the pipeline runs with."""
    import torch

    if device.type == "cuda" and not exact:
        torch.backends.cudnn.benchmark = True
