"""Loading a classifier: the checkpoint, the plan for how it computes, and the model with its
image processor, ready to classify.

``load_classifier`` reads what it can of the checkpoint without torch, asks
``runtimes.select.choose_plan`` how the run computes, and builds exactly that: the torch-free
cached export, or the network (native ResNet or transformers) with the runtime the plan names,
checked before the first image. Every image of the run is scored by that runtime.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .decode import ResizeRule
from .errors import DeviceError, ModelLoadError, UsageError, exception_chain, first_line
from .runtimes.base import logits_of
from .runtimes.select import Checkpoint, Plan, Request
from .sources import looks_like_path, offline_mode

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_MODEL = "microsoft/resnet-50"
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# One part of a hub id, as huggingface_hub's validate_repo_id takes it (its "--" and ".."
# rules are checked beside it).
_HUB_ID_PART = re.compile(r"^\w(?:[\w.-]*\w)?$")


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
        from .native import ExactConvNextProcessor, NativeConvNextProcessor

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
            if self.channels_last and self.runtime != "onnxruntime" and pixel_values.dim() == 4:
                pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
            pixel_values = pixel_values.to(self.device, non_blocking=True)
            # A traced model's output is a dict or tuple; every other runtime's, the logits.
            return self._top_k(logits_of(self.forward(pixel_values)), top_k)

    def _top_k(self, logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits.float()
        probabilities = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
        return probabilities.topk(min(top_k, self.num_labels), dim=-1)

    def save_quick_start(self) -> bool:
        """Save this model's ONNX export in the runtime cache, so the next run of the same
        checkpoint starts from it without torch (the CLI does it after a run whose plan says
        ``export_after``; a second or two, once per checkpoint). True if the cache holds it;
        False where the checkpoint cannot start that way (not fp32 on the CPU, --exact, not on
        disk, a processor not reproduced in NumPy: the plan's ``quick_start``)."""
        if not self.plan.quick_start or self.files is None or self.input_shape is None:
            return False
        import torch

        from .runtimes.select import save_export

        try:
            return save_export(self.model, torch.randn(2, *self.input_shape), self.files)
        except Exception:  # after the results: must not turn a good run into a crash
            return False


def load_classifier(
    model: str = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    exact: bool = False,
    offline: bool = False,
    compile_model: bool = False,
    images: int | None = None,
    runtime: str = "auto",
) -> Classifier:
    """Load an image-classification model and its processor from the hub or a local folder.

    ``exact`` keeps the pipeline's arithmetic (fp32, no folding, full decodes); otherwise
    BatchNorm is folded and the model runs in the plan's precision and runtime.
    ``compile_model`` wraps it in torch.compile: a slower start for a faster steady state.
    ``offline``: no network at all, neither the hub nor URL inputs (HF_HUB_OFFLINE=1 keeps
    only the hub offline). ``images``: how many images the run will classify, where known (a
    run too short to earn back an ONNX export stays in torch; see ``runtimes.select``).
    ``runtime``: one of ``runtimes.select.RUNTIMES`` instead of the chooser's pick (a
    UsageError where it cannot run the model so), as sentence-transformers' ``backend=``.
    """
    check_model_options(device, precision, exact)
    missing = missing_model_folder(model)
    if missing is not None:  # before the hub, torch or transformers: a mistyped path is instant
        raise ModelLoadError(missing)
    if model.startswith("~"):  # quoted, so the shell left it: a folder in a home
        model = os.path.expanduser(model)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # for the hub; URL inputs see Classifier.offline
    from .runtimes.select import choose_plan

    request = plan_request(device, precision, exact, compile_model, images, runtime)
    hardware = _probe(device)
    checkpoint, files = read_checkpoint(model, revision, exact)
    plan = choose_plan(request, checkpoint, hardware)
    if not plan.needs_torch and files is not None:
        from .runtimes.onnx_runtime import load_cached

        # A checkpoint exported by an earlier run starts without torch (0.2 s, not 3-4 s).
        cached = load_cached(model, files, plan)
        if cached is not None:
            return dataclasses.replace(cached, offline=offline)
        checkpoint = dataclasses.replace(checkpoint, cached=False)
    hardware = hardware.with_torch()

    import torch

    from .checkpoint import label_fields
    from .native import load_native
    from .runtimes.select import build_runtime
    from .runtimes.torch_eager import torch_dtype

    # Where a ResNet checkpoint is on disk, it is built without transformers (a 3x quicker
    # start on the CPU; on a GPU, 4 s less of a start that torchvision's import for nvJPEG
    # already makes long), for --exact too where its processor is reproduced exactly;
    # everything else goes through transformers.
    network: Any
    native = load_native(model, revision, exact) if checkpoint.native else None
    if native is not None:
        network, processor, config, files = native
        input_shape = input_shape_of(model, processor)
    else:
        processor, network = _load_with_transformers(model, revision, offline)
        # The live config: timm checkpoints' to_dict() holds label_names, not id2label.
        config = {
            **network.config.to_dict(),
            "id2label": dict(network.config.id2label),
            "num_labels": network.config.num_labels,
        }
        input_shape = input_shape_of(model, processor)
        checkpoint = dataclasses.replace(
            checkpoint, native=False, image_batch=input_shape is not None
        )
        files = files if checkpoint.cacheable else None
    plan = choose_plan(request, checkpoint, hardware)
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
        **label_fields(config),
    )


def plan_request(
    device: str,
    precision: str,
    exact: bool,
    compile_model: bool,
    images: int | None,
    runtime: str = "auto",
) -> Request:
    """The options that bear on the plan, with whether ONNX Runtime may run."""
    from .runtimes.onnx_runtime import enabled

    return Request(
        device=device,
        precision=precision,
        exact=exact,
        compile_model=compile_model,
        images=images,
        onnx=enabled(),
        runtime=runtime,
    )


def _torch_device(name: str) -> torch.device:
    import torch

    return torch.device(name)


def _probe(device: str) -> Any:
    from .runtimes.hardware import probe

    hardware = probe(cuda=device != "cpu")
    # MPS, and the device a bf16 or fp16 CPU run computes with, only torch can tell.
    return hardware.with_torch() if device == "mps" else hardware


def read_checkpoint(
    model: str, revision: str | None, exact: bool
) -> tuple[Checkpoint, dict[str, str] | None]:
    """What the chooser needs to know of the checkpoint, read from its files without torch
    (all False where they are not on disk yet), and the files."""
    from .checkpoint import array_processor, local_files, read_json, reproduces_exactly, supported
    from .runtimes.onnx_runtime import cached_path

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
        ),
        files,
    )


def input_shape_of(model: str, processor: Any) -> tuple[int, ...] | None:
    """One image's model input shape where the processor gives a fixed-size 4-D pixel batch
    (what every runtime but eager torch takes), found on two small pictures of different
    shapes; None where it gives anything else (patch sequences, token ids, a size that
    follows the image's). A processor that fails on them would fail on every image, so that
    is one ModelLoadError now, not an error record per image."""
    from PIL import Image

    shapes = set()
    for size in ((64, 48), (48, 64)):
        picture = Image.new("RGB", size, (127, 127, 127))
        try:
            inputs = model_inputs(processor(images=[picture], return_tensors="pt"))
        except Exception as exc:
            raise ModelLoadError(
                f"the image processor of model {model!r} cannot prepare an RGB image: "
                f"{first_line(exc)}"
            ) from exc
        if isinstance(inputs, ModelInputs):
            return None
        shapes.add(tuple(inputs.shape[1:]))
    return shapes.pop() if len(shapes) == 1 else None


def missing_model_folder(model: str) -> str | None:
    """Why ``model`` names no model: one line where it is meant as a local folder and there
    is none, with the closest folder there is; None where it exists or is for the hub.

    Meant as a folder: written as a path (``./``, ``/``, ``~``, a trailing or a second
    ``/``, a character no hub id has), or hub-shaped (``name``, ``org/name``) beside a folder
    named almost like it (``tiny-resnt`` next to ``tiny-resnet/``; ``org/`` existing here
    with a folder in it named almost like ``name``). Reads folder listings only."""
    if os.path.exists(model) or os.path.exists(os.path.expanduser(model)):
        return None
    parts = model.split("/")
    hub_shaped = (
        not looks_like_path(model)
        and len(parts) <= 2
        and all(_HUB_ID_PART.match(part) for part in parts)
        and "--" not in model
        and ".." not in model
    )
    if hub_shaped and len(parts) == 2 and not os.path.isdir(parts[0]):
        return None  # org/name, and no folder org here: the hub's
    guess = _closest_folder(model)
    if not hub_shaped:
        hint = f"did you mean {guess!r}?" if guess else "check the path, or pass a hub id"
        return f"no such model folder: {model!r}: {hint}"
    if guess is None:
        return None
    # A bare name could still be meant for the hub: say how to ask it.
    hub = "" if "/" in model else " (a model on the hub is named by its full id, org/name)"
    return f"no such model folder: {model!r}: did you mean {guess!r}?{hub}"


def _closest_folder(path: str) -> str | None:
    """``path`` with its first missing part replaced by the most similarly named folder
    beside it (difflib), where that names a folder (or the part was the last); else None."""
    parts = path.rstrip("/").split("/")
    for i, part in enumerate(parts):
        typed = "/".join(parts[: i + 1])
        if not part or os.path.isdir(os.path.expanduser(typed)):
            continue
        parent = os.path.expanduser("/".join(parts[:i]) or ("/" if i else "."))
        try:
            with os.scandir(parent) as entries:
                names = [
                    entry.name
                    for entry in entries
                    if entry.is_dir() and (part.startswith(".") or not entry.name.startswith("."))
                ]
        except OSError:
            return None
        match = difflib.get_close_matches(part, names, n=1)
        if not match:
            return None
        guess = "/".join([*parts[:i], match[0], *parts[i + 1 :]])
        return guess if i == len(parts) - 1 or os.path.isdir(os.path.expanduser(guess)) else None
    return None


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


def fold_batchnorm(model: Any) -> int:
    """Fold eval-mode BatchNorm into the convolution before it, where a module pairs them as
    ``convolution`` then ``normalization`` (the ResNet family's conv layers and shortcuts).
    Saves a pass over every activation; changes logits by float rounding only."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    folded = 0
    for module in model.modules():
        conv = getattr(module, "convolution", None)
        norm = getattr(module, "normalization", None)
        if isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d):
            module.convolution = fuse_conv_bn_eval(conv, norm)
            module.normalization = torch.nn.Identity()
            folded += 1
    return folded


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


def _load_with_transformers(model: str, revision: str | None, offline: bool) -> tuple[Any, Any]:
    """(image processor, model) through transformers' Auto classes: cache first, then hub."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification
    from transformers.utils import logging as transformers_logging

    # Our stderr is for our progress and summary; transformers' "Loading weights" bar is noise.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    local_only = offline or offline_mode()

    def load(local_files_only: bool) -> tuple[Any, Any]:
        kwargs: dict[str, Any] = {"revision": revision, "local_files_only": local_files_only}
        return (
            AutoImageProcessor.from_pretrained(model, **kwargs),
            AutoModelForImageClassification.from_pretrained(model, **kwargs),
        )

    try:
        # A cached copy loads without a single request: a fast start, and no waiting on a
        # network that is down. Only a cache miss goes to the hub.
        return load(local_files_only=True)
    except Exception as exc:
        if local_only or os.path.isdir(model):
            raise ModelLoadError(explain_load_failure(model, revision, local_only, exc)) from exc
    check_hub(model, revision)
    try:
        return load(local_files_only=False)
    except Exception as exc:
        raise ModelLoadError(explain_load_failure(model, revision, False, exc)) from exc


def check_hub(model: str, revision: str | None) -> None:
    """Ask the hub about the model once, without retries, so an unreachable hub or a wrong
    name is one clear error in seconds instead of minutes of retried downloads."""
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(model, revision=revision, timeout=10)
    except Exception as exc:
        raise ModelLoadError(explain_load_failure(model, revision, False, exc)) from exc


def resize_rule(processor: Any) -> ResizeRule | None:
    """The processor's first resize, where it is one we can reproduce exactly; else None,
    and images are decoded in full (always correct, only slower)."""
    if not getattr(processor, "do_resize", False):
        return None
    size = getattr(processor, "size", None)
    shortest = _size_field(size, "shortest_edge")
    height, width = _size_field(size, "height"), _size_field(size, "width")
    if "ConvNext" in type(processor).__name__ and shortest:
        return ResizeRule.convnext(int(shortest), getattr(processor, "crop_pct", None) or 1.0)
    if getattr(processor, "crop_pct", None) is not None:
        return None  # other crop_pct conventions exist; not worth guessing
    if shortest and not (height or width):
        crop = getattr(processor, "crop_size", None)
        crop_edge = max(_size_field(crop, "height") or 0, _size_field(crop, "width") or 0)
        crops = bool(getattr(processor, "do_center_crop", False)) and 0 < crop_edge <= shortest
        return ResizeRule(shortest_edge=int(shortest), crops=crops)
    if height and width and not shortest:
        return ResizeRule(size=(int(width), int(height)))
    return None


def _size_field(size: Any, key: str) -> Any:
    # Processors keep size as a dict or, in transformers 5, a SizeDict dataclass.
    if isinstance(size, dict):
        return size.get(key)
    return getattr(size, key, None)


def explain_load_failure(
    model: str, revision: str | None, offline: bool, exc: BaseException
) -> str:
    """One actionable line for why a model could not be loaded."""
    names = {type(e).__name__ for e in exception_chain(exc)}
    text = " ".join(str(e) for e in exception_chain(exc))
    is_folder = os.path.isdir(model)
    if is_folder:
        if not os.path.isfile(os.path.join(model, "config.json")):
            return (
                f"model folder {model!r} has no config.json: point --model at a folder written "
                "by save_pretrained(), or at a hub id"
            )
        if "preprocessor_config" in text or "image processor" in text.lower():
            return (
                f"model folder {model!r} has no usable preprocessor_config.json: save the image "
                "processor there too (processor.save_pretrained(folder))"
            )
        if "Unrecognized" in text or "image classification" in text.lower():
            return f"model folder {model!r} does not hold an image-classification model"
        return (
            f"could not load the model in folder {model!r} (weights missing or unreadable: "
            f"expected model.safetensors or pytorch_model.bin): {first_line(exc)}"
        )
    if looks_like_path(model):
        return missing_model_folder(model) or f"no such model folder: {model!r}"
    if "RevisionNotFoundError" in names:
        return f"revision {revision!r} does not exist for model {model!r}: check --revision"
    if "RepositoryNotFoundError" in names or "GatedRepoError" in names:
        return (
            f"model {model!r} was not found on the Hugging Face hub, or it is private or gated: "
            "check the name, or log in (hf auth login, or set HF_TOKEN)"
        )
    if offline or "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names:
        return (
            f"model {model!r} is not in the local cache and offline mode is on: run once with "
            "network access, or pass --model PATH to a folder written by save_pretrained()"
        )
    if "Unrecognized" in text or "image classification" in text.lower():
        return f"model {model!r} is not an image-classification model"
    if any(
        n in names for n in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "ConnectError")
    ):
        return (
            f"could not reach the Hugging Face hub to download model {model!r}: check the "
            "network, or pass --model PATH to a local copy (and --offline)"
        )
    return f"could not load model {model!r}: {first_line(exc)}"


class ModelInputs:
    """What a processor gives that is not a plain image batch (siglip2's patch sequences with
    their mask and shapes, imagegpt's colour-cluster ids): every tensor the model takes, split
    and stacked along the batch together. Never channels_last, and no runtime swap: those are
    for 4-D image batches."""

    def __init__(self, tensors: dict[str, Any]):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int | slice) -> ModelInputs:
        return ModelInputs({name: value[index] for name, value in self.tensors.items()})

    @property
    def shape(self) -> tuple[Any, ...]:
        """A key that is equal only for inputs that stack into one batch."""
        return tuple((name, *value.shape) for name, value in self.tensors.items())

    @classmethod
    def stacked(cls, rows: Sequence[ModelInputs]) -> ModelInputs:
        import torch

        return cls(
            {name: torch.stack([row.tensors[name] for row in rows]) for name in rows[0].tensors}
        )

    def to(self, device: Any, dtype: Any = None) -> ModelInputs:
        moved = {}
        for name, value in self.tensors.items():
            floating = dtype is not None and value.is_floating_point()
            moved[name] = value.to(device, dtype) if floating else value.to(device)
        return ModelInputs(moved)


def model_inputs(processed: Any) -> Any:
    """A processor's output as the model takes it: the pixel tensor where that is all there
    is and it is a 4-D image batch (every fast path's input), else ``ModelInputs``."""
    tensors = {name: value for name, value in dict(processed).items() if hasattr(value, "shape")}
    pixels = tensors.get("pixel_values")
    if len(tensors) == 1 and pixels is not None and len(pixels.shape) == 4:
        return pixels
    if not tensors:
        raise ValueError("the image processor gave no tensors")
    return ModelInputs(tensors)
