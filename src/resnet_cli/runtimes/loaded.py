"""A loaded classifier: the model with its image processor, on the device and in the runtime
its plan names, ready to classify (``Classifier``); and the torch-free one a cached export or
INT8 model starts a run with (``ArrayClassifier``: NumPy in, NumPy out).

``classifier.load_classifier`` makes them; ``pipeline`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..inputs.decode import ResizeRule
from ..models.transformers import ModelInputs, model_inputs
from ..models.zero_shot import ZeroShot
from .base import logits_of
from .select import Plan

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from ..models.checkpoint import ArrayConvNextProcessor


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
    def threads_processor(self) -> ArrayConvNextProcessor | None:
        """The processor whose ``prepare`` (one image, no torch) runs in the decode threads:
        on the CPU, the native processor's Pillow resize and NumPy normalization, so the main
        thread only stacks and runs the model. None: the processor runs on whole batches in
        the main thread (transformers' processors and --exact's, which use torch's thread
        pool; GPUs, which decode and preprocess JPEGs on the device)."""
        from ..models.native import ExactConvNextProcessor, NativeConvNextProcessor

        native = isinstance(self.processor, NativeConvNextProcessor)
        if (
            self.device.type != "cpu"
            or not native
            or isinstance(self.processor, ExactConvNextProcessor)
        ):
            return None
        return self.processor

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
            if self.plan.channels_last and in_torch and pixel_values.dim() == 4:
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

        from .build import save_export

        try:
            sample = torch.randn(2, *self.input_shape)
            return save_export(self.model, sample, self.files, self.plan.intra_op_threads)
        except Exception:  # after the results: must not turn a good run into a crash
            return False


@dataclass
class ArrayClassifier(Classifier):
    """A cached export run by ONNX Runtime (or a cached INT8 model run by OpenVINO), with
    NumPy preprocessing: no torch anywhere."""

    def preprocess(self, images: Sequence[Any]) -> Any:
        return self.processor(images)["pixel_values"]

    @property
    def threads_processor(self) -> ArrayConvNextProcessor | None:
        return self.processor

    def stack(self, pixels: list[Any]) -> Any:
        import numpy as np

        return np.stack(pixels)

    def predict(self, pixel_values: Any, top_k_: int) -> tuple[Any, Any]:
        from .onnx_runtime import top_k

        assert self.forward is not None
        return top_k(self.forward(pixel_values), top_k_, self.multi_label)

    def save_quick_start(self) -> bool:
        return True  # it is one


class Cpu:
    """What the engine and the summary read of a device: its type and its name (the
    torch-free classifier's stand-in for a torch.device)."""

    type = "cpu"
    index = None

    def __str__(self) -> str:
        return "cpu"


def _pil_image_type() -> type:
    from PIL import Image

    return Image.Image
