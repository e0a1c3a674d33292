"""Model and image-processor loading, device and precision resolution, offline handling."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .decode import ResizeRule
from .errors import DeviceError, ModelLoadError, UsageError, exception_chain, first_line
from .sources import looks_like_path, offline_mode

if TYPE_CHECKING:
    import torch
    from PIL import Image

DEFAULT_MODEL = "microsoft/resnet-50"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
FREEZE_AFTER_IMAGES = 64
# bf16 on the CPU: packing the weights takes tens of milliseconds, not an export's seconds,
# so it happens at the first batch, and every image of a run is computed the same way (its
# scores do not depend on where in the run it came).
PACK_AFTER_IMAGES = 1
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


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


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda if available, else cpu; an unavailable device is a DeviceError."""
    import torch

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name} was asked for, but no CUDA device is available here "
                "(no GPU, no driver, or a CPU-only torch build); use --device cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(
                f"--device {name} was asked for, but this machine has {count} CUDA device(s): "
                f"use cuda:0 to cuda:{count - 1}"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps was asked for, but MPS is not available; use --device cpu")
    return device


def native_bf16_told() -> bool | None:
    """RESNET_CLI_CPU_BF16=1 or 0: treat the CPU as one with or without native bf16, whatever
    it has (the tests pin it, so --precision auto means the same on every machine); None:
    not told."""
    told = os.environ.get("RESNET_CLI_CPU_BF16", "").strip()
    return told == "1" if told in ("0", "1") else None


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), so bf16 is faster."""
    told = native_bf16_told()
    if told is not None:
        return told
    import torch

    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            with contextlib.suppress(Exception):
                if check():
                    return True
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """'auto' -> the fastest accurate dtype for the device: fp16 on CUDA/MPS, bf16 on CPUs with
    native bf16, fp32 elsewhere (emulated bf16 is slower than fp32)."""
    import torch

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type in ("cuda", "mps"):
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"this GPU ({device}) does not support bf16; use --precision fp16")
    return dtype


def precision_name(dtype: torch.dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@dataclass
class Classifier:
    """A loaded model with its image processor, device and precision, ready to classify."""

    name: str
    model: Any
    processor: Any
    device: torch.device
    dtype: torch.dtype
    labels: list[str]
    multi_label: bool
    exact: bool = False
    channels_last: bool = False
    resize: ResizeRule | None = None  # set: JPEGs are decoded downscaled to about this size
    # On the CPU, after this many images the model moves to a faster runtime (``freeze``). It
    # costs a second or two, so runs of a batch or two never pay it; None turns it off.
    freeze_after: int | None = None
    files: dict[str, str] | None = None  # the checkpoint's files, for the runtime cache
    runtime: str = "torch"  # torch, torchscript or onnxruntime: what runs the forward pass
    image_batch: bool = True  # the processor gives a 4-D pixel batch; else ``ModelInputs``
    _autocast: bool = field(default=False, repr=False)
    _frozen: Any = field(default=None, repr=False)
    _frozen_shape: tuple[int, ...] | None = field(default=None, repr=False)
    _seen: int = field(default=0, repr=False)
    _input_shape: tuple[int, ...] | None = field(default=None, repr=False)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    def preprocess(self, images: Sequence[Image.Image | torch.Tensor]) -> Any:
        """Images -> the model's input, by the model's own image processor: a normalized
        pixel tensor, or (``ModelInputs``) everything a processor gives that is not a plain
        image batch, passed to the model as the pipeline passes it."""
        kwargs: dict[str, Any] = {"return_tensors": "pt"}
        first = images[0] if images else None
        if first is not None and not isinstance(first, _pil_image_type()):
            kwargs["device"] = first.device  # type: ignore[union-attr]  # GPU-decoded stay there
        return model_inputs(self.processor(images=list(images), **kwargs))

    def stack(self, pixels: list[torch.Tensor]) -> torch.Tensor:
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

    def predict(self, pixel_values: Any, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalized pixels (or ``ModelInputs``) -> (scores, class ids) of the top-k labels,
        on the model's device."""
        import torch

        if isinstance(pixel_values, ModelInputs):
            # Floating-point inputs in the weights' dtype (under autocast they stay fp32);
            # token ids, masks and shapes as they are.
            inputs = pixel_values.to(self.device, None if self._autocast else self.dtype)
            reduced = (
                torch.autocast(self.device.type, dtype=self.dtype)
                if self._autocast
                else contextlib.nullcontext()
            )
            with torch.inference_mode(), reduced:
                return self._top_k(logits_of(self.model(**inputs.tensors)), top_k)
        if self.channels_last and self.runtime != "onnxruntime" and pixel_values.dim() == 4:
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        pixel_values = pixel_values.to(self.device, non_blocking=True)
        self._seen += len(pixel_values)
        self._input_shape = self._input_shape or tuple(pixel_values.shape[1:])
        if self.freeze_after is not None and self._seen >= self.freeze_after:
            self.freeze_after = None  # one try, whatever its outcome
            self.freeze(pixel_values)
        with torch.inference_mode():
            if self._frozen is not None and tuple(pixel_values.shape[1:]) == self._frozen_shape:
                logits = logits_of(self._frozen(pixel_values))
            elif self._autocast:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    logits = logits_of(self.model(pixel_values=pixel_values))
            else:
                logits = logits_of(self.model(pixel_values=pixel_values.to(self.dtype)))
            return self._top_k(logits, top_k)

    def _top_k(self, logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
        logits = logits.float()
        probabilities = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
        return probabilities.topk(min(top_k, self.num_labels), dim=-1)

    def freeze(self, sample: torch.Tensor) -> bool:
        """Swap the eager CPU model for a faster runtime of the same arithmetic. In fp32: ONNX
        Runtime where it is installed (about 1.5x faster for ResNet-50 on a 2-core AVX2
        machine; its export is cached for the next run), else TorchScript with oneDNN
        fusions. In bf16 (CPUs with AMX or AVX512-BF16): a native ResNet through oneDNN's
        fused convolutions with weights packed once (``packed.py``; ResNet-50 on 2 AMX cores:
        about 2.5x faster than eager autocast). (A TorchScript trace of a bf16 copy was no
        alternative: 1.1x for ResNet-50, none for ViT-B, after a 1.4 s trace.) A runtime is
        kept only if its logits match the eager model's on the sample; any failure keeps the
        eager model: this is an optimization, never a new way to fail."""
        if not self._may_swap():
            return False
        reduced = self._reduced()
        if reduced is None:
            built = self._onnx_checked(sample) if self._may_export() else None
            built = built or _checked(_torchscript, self.model, sample)
        else:
            built = _checked(_packed_in(reduced), self.model, sample, reduced)
        if built is None:
            return False
        self._frozen, self.runtime = built
        self._frozen_shape = tuple(sample.shape[1:])
        return True

    def cache_runtime(self) -> None:
        """After a run too short to swap runtimes: export the model for the next run's quick
        start, where that is possible and not done yet (a second or two, once per model)."""
        from . import runtime

        if self.files is None or self._frozen_shape is not None or self._input_shape is None:
            return
        if not self._may_export():
            return
        try:
            if runtime.cache_path(self.files).is_file():
                return
        except Exception:  # an unreadable checkpoint file, an onnxruntime that fails to import
            return
        import torch

        self._onnx_checked(torch.randn(2, *self._input_shape))

    def _onnx_checked(self, sample: torch.Tensor) -> tuple[Any, str] | None:
        """The model in an ONNX Runtime session, checked against the eager model; the graph
        the session optimized is kept in the runtime cache for the next run's quick start."""
        from . import runtime

        def build(optimized_to: str | None) -> tuple[Any, str] | None:
            onnx = functools.partial(_onnx_runtime, optimized_to=optimized_to)
            return _checked(onnx, self.model, sample)

        return runtime.build_cached(self.files, build)

    def _may_swap(self) -> bool:
        import torch

        return (
            self.device.type == "cpu"
            and not self.exact
            and self.image_batch
            and (self.dtype == torch.float32 or self._autocast)
        )

    def _may_export(self) -> bool:
        """Whether ONNX Runtime may run this model: fp32 alone (its CPU kernels have no bf16)."""
        import torch

        from . import runtime

        return self._may_swap() and self.dtype == torch.float32 and runtime.enabled()

    def _reduced(self) -> torch.dtype | None:
        """The dtype the eager model computes in under autocast; None: as its weights are."""
        return self.dtype if self._autocast else None


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


def _checked(
    build: Any, model: Any, sample: torch.Tensor, autocast: torch.dtype | None = None
) -> tuple[Any, str] | None:
    """``build(model, one image)``, kept only if it gives the eager model's logits on two
    images (so no runtime may have baked in the batch size); None on any failure.
    ``autocast``: the eager model runs under CPU autocast to this dtype. The reference logits
    are computed before the build, and the build never changes the model (``unchanged``)."""
    import warnings

    import torch

    probe = sample[:2] if len(sample) > 1 else sample
    reduced = (
        torch.autocast("cpu", dtype=autocast) if autocast is not None else contextlib.nullcontext()
    )
    # A broken trace gives other logits altogether; bf16's own rounding stays far inside 3%.
    tolerance = 1e-3 if autocast is None else 3e-2
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # exporters' deprecation and tracer notes
            with reduced:
                expected = logits_of(model(pixel_values=probe)).float()
            with unchanged(model):
                built, name = build(model, sample[:1])
            scale = max(1.0, float(expected.abs().max()))
            got = logits_of(built(probe)).float()
            if torch.allclose(got, expected, rtol=0, atol=tolerance * scale):
                return built, name
    except ModelChangedError:
        raise
    except Exception:
        pass
    return None


class ModelChangedError(RuntimeError):
    """A runtime build wrote into the model it was built from (a bug: never caught)."""


@contextlib.contextmanager
def unchanged(model: Any) -> Iterator[None]:
    """Build a runtime from ``model`` without changing it: every module's train/eval mode is
    put back as it was (exporters wrap the model in a new module, in training mode, and
    restore *that* mode recursively), and a parameter or buffer written to in between (as
    BatchNorm does to its statistics in training mode) is a ``ModelChangedError``."""
    modes = [(module, module.training) for module in model.modules()]
    versions = _versions(model)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        if _versions(model) != versions:
            raise ModelChangedError("building a faster runtime changed the model's weights")


def _versions(model: Any) -> list[tuple[str, int, int]]:
    """Each parameter and buffer's identity and in-place write counter."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return [(name, tensor.data_ptr(), _version(tensor)) for name, tensor in tensors]


def _version(tensor: Any) -> int:
    try:
        return int(tensor._version)
    except RuntimeError:  # an inference tensor keeps no counter, and cannot be written to
        return -1


def _torchscript(model: Any, example: torch.Tensor) -> tuple[Any, str]:
    import torch

    traced = torch.jit.trace(model, (example,), strict=False)
    return torch.jit.optimize_for_inference(torch.jit.freeze(traced)), "torchscript"


def _packed_in(dtype: torch.dtype) -> Callable[[Any, torch.Tensor], tuple[Any, str]]:
    """A native ResNet through oneDNN's fused convolutions, weights in ``dtype`` packed once
    (``packed.PackedResNet``); anything else raises."""

    def build(model: Any, example: torch.Tensor) -> tuple[Any, str]:
        from .packed import PackedResNet

        return PackedResNet(model, dtype), "onednn"

    return build


class _OnnxForward:
    """An ONNX Runtime session called like the torch model: pixels in, logits out."""

    def __init__(self, data: bytes, optimized_to: str | None = None):
        from .runtime import new_session

        self.session = new_session(data, optimized_to)

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        import torch

        from .runtime import INPUT

        array = pixel_values.float().contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {INPUT: array})[0])


def _onnx_runtime(
    model: Any, example: torch.Tensor, optimized_to: str | None = None
) -> tuple[Any, str]:
    from .runtime import export

    return _OnnxForward(export(model, example), optimized_to), "onnxruntime"


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a model's output: a ModelOutput or dict (eager), a tuple (traced)."""
    if isinstance(output, dict):
        return output["logits"]
    return output[0] if isinstance(output, tuple | list) else output


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


def load_classifier(
    model: str = DEFAULT_MODEL,
    *,
    revision: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    exact: bool = False,
    offline: bool = False,
    compile_model: bool = False,
) -> Classifier:
    """Load an image-classification model and its processor from the hub or a local folder.

    ``exact`` keeps the pipeline's arithmetic (fp32, no folding or freezing, full decodes);
    otherwise BatchNorm is folded and the model runs in the resolved precision.
    ``compile_model`` wraps it in torch.compile: a slower start for a faster steady state.
    """
    check_model_options(device, precision, exact)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"  # for the hub, and for URL inputs downloaded later
    from .runtime import load_cached

    # A ResNet checkpoint exported by an earlier run starts without torch (0.2 s, not 3-4 s).
    cached = load_cached(model, revision, device, precision, not (exact or compile_model))
    if cached is not None:
        return cached
    torch_device = resolve_device(device)
    dtype = resolve_precision("fp32" if exact else precision, torch_device)
    tune_backends(torch_device, exact)

    import torch

    from .checkpoint import label_fields
    from .native import load_native

    # Where a ResNet checkpoint is on disk, it is built without transformers (a 3x quicker
    # start on the CPU; on a GPU, 4 s less of a start that torchvision's import for nvJPEG
    # already makes long), for --exact too where its processor is reproduced exactly;
    # everything else goes through transformers.
    network: Any
    native = load_native(model, revision, exact)
    files = None
    if native is not None:
        network, processor, config, files = native
    else:
        processor, network = _load_with_transformers(model, revision, offline)
        # The live config: timm checkpoints' to_dict() holds label_names, not id2label.
        config = {
            **network.config.to_dict(),
            "id2label": dict(network.config.id2label),
            "num_labels": network.config.num_labels,
        }
        files = _cacheable_files(model, revision)
    image_batch = native is not None or takes_image_batch(model, processor)
    network.eval()
    if not exact:
        fold_batchnorm(network)
    autocast = torch_device.type == "cpu" and dtype != torch.float32
    if not autocast and dtype != torch.float32:
        network.to(dtype)
    # channels_last changes only the order of the same fp32 arithmetic (--exact stays within
    # 1e-4 of the pipeline) and runs 1.3x faster on the CPU; MPS gains nothing from it.
    channels_last = torch_device.type != "mps" and image_batch
    if channels_last:
        network.to(memory_format=torch.channels_last)
    try:
        network.to(torch_device)
    except Exception as exc:
        raise DeviceError(f"could not move the model to {torch_device}: {exc}") from exc

    if compile_model:
        network = torch.compile(network)
    return Classifier(
        name=model,
        model=network,
        processor=processor,
        device=torch_device,
        dtype=dtype,
        exact=exact,
        files=files,
        channels_last=channels_last,
        resize=None if exact else resize_rule(processor),
        freeze_after=(
            _swap_after(torch_device, dtype, native is not None, compile_model)
            if image_batch
            else None
        ),
        image_batch=image_batch,
        _autocast=autocast,
        **label_fields(config),
    )


def takes_image_batch(model: str, processor: Any) -> bool:
    """Whether the processor gives the model a plain 4-D image batch (what every fast path
    takes), found on one small picture; a processor that fails on it would fail on every
    image, so that is one ModelLoadError now, not an error record per image."""
    from PIL import Image

    try:
        processed = processor(
            images=[Image.new("RGB", (64, 48), (127, 127, 127))], return_tensors="pt"
        )
        inputs = model_inputs(processed)
    except Exception as exc:
        raise ModelLoadError(
            f"the image processor of model {model!r} cannot prepare an RGB image: {first_line(exc)}"
        ) from exc
    return not isinstance(inputs, ModelInputs)


def _cacheable_files(model: str, revision: str | None) -> dict[str, str] | None:
    """The checkpoint's files where a later run could start from its ONNX export without
    torch (its processor reproduced in NumPy); else None: no export is kept for it."""
    from .checkpoint import array_processor, local_files

    files = local_files(model, revision)
    try:
        return files if files is not None and array_processor(files) is not None else None
    except Exception:  # an unreadable config file
        return None


def tune_backends(device: torch.device, exact: bool) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once per input shape and keep the
    fastest, as timm's inference.py does: batches here come in one or two shapes. --exact
    keeps torch's defaults, which the pipeline runs with."""
    import torch

    if device.type == "cuda" and not exact:
        torch.backends.cudnn.benchmark = True


def _swap_after(
    device: torch.device, dtype: torch.dtype, native: bool, compiled: bool
) -> int | None:
    """After how many images a CPU model moves to a faster runtime (``Classifier.freeze``):
    in fp32, 64 (an ONNX export takes a second or two); in bf16 or fp16, at once for a native
    ResNet where oneDNN has kernels for it (packing its weights takes tens of milliseconds),
    never otherwise (nothing faster than eager autocast is known). None: never."""
    import torch

    if device.type != "cpu" or compiled:
        return None
    if dtype == torch.float32:
        return FREEZE_AFTER_IMAGES
    from .packed import has_kernels

    return PACK_AFTER_IMAGES if native and has_kernels(dtype) else None


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
        return f"model folder {model!r} does not exist: check the path, or pass a hub id"
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
