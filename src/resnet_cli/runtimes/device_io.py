"""What runs on the accelerator around the forward pass: JPEG decoding on the device
(nvJPEG), EXIF orientation there, results copied back through pinned memory without
blocking, and a batch halved when the device runs out of memory. The local engine calls
these; it never imports torch itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .classifier import Classifier


def to_host(scores: Any, ids: Any) -> tuple[Any, Any, Any]:
    """(scores, ids, event): on the host, or on their way there from a CUDA device, with the
    event that marks the copy done (None when there is nothing to wait for)."""
    if not getattr(scores, "is_cuda", False):  # NumPy arrays, CPU tensors
        return scores, ids, None
    import torch

    # Device-to-host copies with non_blocking land in pinned memory, readable once the
    # event recorded after them has passed.
    scores, ids = scores.to("cpu", non_blocking=True), ids.to("cpu", non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return scores, ids, event


def apply_orientation(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """Turn a CHW image tensor upright by its EXIF orientation (as PIL's exif_transpose does).

    nvJPEG ignores EXIF, so GPU-decoded images are turned here, on the device.
    """
    import torch

    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(image, -1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(image, 1, dims=(-2, -1))
    return image


def decode_on_device(device: Any, jpegs: list[bytes]) -> list[torch.Tensor | None]:
    """JPEGs decoded as one batch on the device (nvJPEG on CUDA), as CHW uint8 tensors there.

    A batch the decoder rejects is retried image by image; an image it still rejects is None
    (the caller decodes it on the CPU).
    """
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    def decode(items: list[bytes]) -> list[Any]:
        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in items]
        return list(decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device))

    try:
        return decode(jpegs)
    except Exception:
        decoded: list[torch.Tensor | None] = []
        for data in jpegs:
            try:
                decoded.append(decode([data])[0])
            except Exception:
                decoded.append(None)
        return decoded


def predict_splitting_on_oom(
    classifier: Classifier, batch: torch.Tensor, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model; if the device runs out of memory, halve the batch and retry the halves."""
    try:
        return classifier.predict(batch, top_k)
    except Exception as exc:
        if not _is_out_of_memory(exc) or len(batch) == 1:
            raise
    if classifier.device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    half = len(batch) // 2
    first = predict_splitting_on_oom(classifier, batch[:half], top_k)
    second = predict_splitting_on_oom(classifier, batch[half:], top_k)
    return _concatenate(first[0], second[0]), _concatenate(first[1], second[1])


def _concatenate(first: Any, second: Any) -> Any:
    """Two halves' results, joined: NumPy arrays (ONNX Runtime) or torch tensors."""
    import numpy as np

    if isinstance(first, np.ndarray):
        return np.concatenate([first, second])
    import torch

    return torch.cat([first, second])


def _is_out_of_memory(exc: BaseException) -> bool:
    # torch.OutOfMemoryError by name: the ONNX Runtime path runs without importing torch.
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()
