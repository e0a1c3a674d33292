"""A zero-shot model as a classifier of fixed labels (see ``zero_shot``): pixels in, one logit
per label out, the text side computed once."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from ..errors import ModelLoadError, first_line
from .transformers import processed

# Texts go through the text tower this many at a time (all padded alike, as the pipeline pads
# them together): a few thousand labels need not hold a few thousand texts' activations at once.
TEXT_CHUNK = 256


class ZeroShotHead(torch.nn.Module):
    """The image tower, then its embedding, normalized, against the labels' normalized text
    embeddings, times the model's logit scale plus its bias: the model's ``logits_per_image``
    for these labels, without its text tower. That last step runs in fp32 whatever the tower
    ran in (autocast, fp16 weights): it is a few hundred multiply-adds an image, and the
    scale (about 100 for CLIP) would magnify a half-precision cosine's rounding."""

    def __init__(self, model: Any, text_embeds: torch.Tensor):
        super().__init__()
        self.model = model
        self.config = model.config
        self.scale, self.bias = logit_scale_and_bias(model)
        # A plain attribute, not a buffer: casting the model to fp16 must not round it. It
        # follows the weights to their device (``_apply``), and the images on first use.
        self.text_embeds = text_embeds.float()

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        """``.to()``, ``.cuda()``, ``.half()``: the weights as asked, and the labels'
        embeddings onto the weights' device, still in fp32. So they are on the GPU before a
        CUDA graph of this forward is captured, which must read them where they stay."""
        moved = super()._apply(fn, recurse)
        device = next(self.model.parameters()).device
        if self.text_embeds.device != device:
            self.text_embeds = self.text_embeds.to(device)
        return moved

    def forward(self, pixel_values: torch.Tensor | None = None, **inputs: Any) -> torch.Tensor:
        image = pooled(self.model.get_image_features(pixel_values=pixel_values, **inputs))
        with _full_precision(image.device.type):
            image = image.float()
            image = image / image.norm(p=2, dim=-1, keepdim=True)
            if self.text_embeds.device != image.device:
                self.text_embeds = self.text_embeds.to(image.device)
            cosine = torch.matmul(image, self.text_embeds.t())
            return cosine * self.scale + self.bias


class ModelForwardHead(torch.nn.Module):
    """The model's own forward with the labels' tokens, for a model whose scores are not a
    scaled cosine of two embeddings (BLIP-2's retrieval head): right, but its text tower runs
    on every batch."""

    plan_note = (
        "AutoModelForZeroShotImageClassification: the model's own forward on every batch, "
        "text tower included (its scores are not a scaled cosine of two embeddings)"
    )

    def __init__(self, model: Any, text: dict[str, torch.Tensor]):
        super().__init__()
        self.model = model
        self.config = model.config
        self.names = list(text)
        for name, value in text.items():  # integer buffers: they follow the model's device
            self.register_buffer(f"text_{name}", value, persistent=False)

    def forward(self, pixel_values: torch.Tensor | None = None, **inputs: Any) -> torch.Tensor:
        text = {name: getattr(self, f"text_{name}") for name in self.names}
        logits = self.model(**text, pixel_values=pixel_values, **inputs).logits_per_image
        return logits.float()


def zero_shot_head(
    name: str, network: Any, text: dict[str, Any], sample: dict[str, Any]
) -> torch.nn.Module:
    """The model as a classifier of the labels ``text`` holds (the tokenized sentences):
    ``ZeroShotHead`` where it gives the model's own logits on ``sample`` (a processed image),
    else ``ModelForwardHead``. A model that cannot score ``sample`` at all is a
    ModelLoadError now, not an error record per image. The check runs the model's forward on
    two of the labels only: the text tower's work is the start-up's largest part."""
    checked = {key: value[:2] for key, value in text.items()}  # padded with all the labels
    with torch.no_grad():
        try:
            expected = network(**checked, **sample).logits_per_image.float()
        except Exception as exc:
            raise ModelLoadError(
                f"model {name!r} cannot score images against text: {first_line(exc)}"
            ) from exc
        try:
            head: torch.nn.Module = ZeroShotHead(network, embed_text(network, text))
            got = head(**sample)[:, : expected.shape[-1]]
            scale = max(1.0, float(expected.abs().max()))
            if torch.allclose(got, expected, rtol=0, atol=1e-4 * scale):
                return head
        except Exception:  # no get_image_features, another pooling: the model's own forward
            pass
    return ModelForwardHead(network, text)


def embed_text(network: Any, text: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each tokenized sentence's embedding, normalized, in fp32: the text side of the model's
    forward, once."""
    rows = len(next(iter(text.values())))
    parts = []
    with torch.no_grad():
        for start in range(0, rows, TEXT_CHUNK):
            chunk = {key: value[start : start + TEXT_CHUNK] for key, value in text.items()}
            parts.append(pooled(network.get_text_features(**chunk)).float())
    embeds = torch.cat(parts)
    return embeds / embeds.norm(p=2, dim=-1, keepdim=True)


def pooled(output: Any) -> torch.Tensor:
    """The embedding ``get_image_features``/``get_text_features`` give: a tensor, or (in
    transformers 5) the pooled output of the tower's ModelOutput."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def logit_scale_and_bias(network: Any) -> tuple[float, float]:
    """The model's logits are ``cosine * scale + bias``: CLIP's exp(logit_scale), SigLIP's
    exp(logit_scale) and logit_bias, ALIGN's 1 / temperature."""
    with torch.no_grad():
        if hasattr(network, "logit_scale"):
            scale = float(network.logit_scale.float().exp())
        elif hasattr(network, "temperature"):
            scale = 1.0 / float(network.temperature.float())
        else:
            raise ValueError("the model has no logit scale or temperature")
        bias = float(network.logit_bias.float()) if hasattr(network, "logit_bias") else 0.0
    return scale, bias


def sample_inputs(model: str, processor: Any) -> dict[str, torch.Tensor]:
    """A small random picture as the processor prepares it, for the head's check."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    prepared = processed(model, processor, [Image.fromarray(pixels, "RGB")])
    return {key: value for key, value in dict(prepared).items() if hasattr(value, "shape")}


def _full_precision(device_type: str) -> Any:
    """Autocast off, where it is on (a bf16 run on the CPU); else nothing, so that tracing
    for an export meets no autocast context."""
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
