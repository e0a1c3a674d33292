"""Models through transformers: loading (cache first, then the hub, each failure one line that
says what to do), what a processor gives (an image batch, or ``ModelInputs``), the resize it
applies, and BatchNorm folding."""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import TRY_OFFLINE, ModelLoadError, ResnetCliError, exception_chain, first_line
from ..inputs.decode import ResizeRule
from ..inputs.sources import looks_like_path, offline_mode

# One part of a hub id, as huggingface_hub's validate_repo_id takes it (its "--" and ".."
# rules are checked beside it).
_HUB_ID_PART = re.compile(r"^\w(?:[\w.-]*\w)?$")
T = TypeVar("T")


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
        inputs = model_inputs(processed(model, processor, [picture]))
        if isinstance(inputs, ModelInputs):
            return None
        shapes.add(tuple(inputs.shape[1:]))
    return shapes.pop() if len(shapes) == 1 else None


def processed(model: str, processor: Any, pictures: list[Any]) -> Any:
    """The processor's output for ``pictures`` (PIL images, made up to probe it): a
    processor that fails on them would fail on every image, so that is a ModelLoadError."""
    try:
        return processor(images=pictures, return_tensors="pt")
    except Exception as exc:
        raise ModelLoadError(
            f"the image processor of model {model!r} cannot prepare an RGB image: {first_line(exc)}"
        ) from exc


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


def load_with_transformers(
    model: str, revision: str | None, offline: bool, trust_remote_code: bool = False
) -> tuple[Any, Any]:
    """(image processor, model) through transformers' Auto classes: cache first, then hub.
    ``trust_remote_code``: run the Python code a model's files name (its config's
    ``auto_map``); never without it. A zero-shot checkpoint (CLIP, SigLIP) is a UsageError
    saying to give it labels: loaded as an image classifier it would get a random head."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    from .checkpoint import check_model_kind

    def load(kwargs: dict[str, Any]) -> tuple[Any, Any]:
        config = AutoConfig.from_pretrained(model, **kwargs)
        check_model_kind(model, config.to_dict(), None)
        return (
            AutoImageProcessor.from_pretrained(model, **kwargs),
            AutoModelForImageClassification.from_pretrained(model, config=config, **kwargs),
        )

    return load_local_first(model, revision, offline, trust_remote_code, load)


def load_local_first(
    model: str,
    revision: str | None,
    offline: bool,
    trust_remote_code: bool,
    load: Callable[[dict[str, Any]], T],
) -> T:
    """``load(from_pretrained's keyword arguments)``: from the local cache first, then from
    the hub, with ``trust_remote_code`` said outright and no terminal I/O while it runs
    (``pretrained_options``, ``no_terminal_io``); a failure is a ModelLoadError that says
    what to do (a ResnetCliError ``load`` raises goes up as it is)."""
    from transformers.utils import logging as transformers_logging

    # Our stderr is for our progress and summary; transformers' "Loading weights" bar is noise.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    local_only = offline or offline_mode()

    def attempt(local_files_only: bool) -> T:
        with no_terminal_io():
            return load(pretrained_options(revision, trust_remote_code, local_files_only))

    try:
        # A cached copy loads without a single request: a fast start, and no waiting on a
        # network that is down. Only a cache miss goes to the hub.
        return attempt(local_files_only=True)
    except ResnetCliError:
        raise
    except Exception as exc:
        if local_only or os.path.isdir(model):
            raise ModelLoadError(explain_load_failure(model, revision, local_only, exc)) from exc
    check_hub(model, revision)
    try:
        return attempt(local_files_only=False)
    except ResnetCliError:
        raise
    except Exception as exc:
        raise ModelLoadError(explain_load_failure(model, revision, False, exc)) from exc


def pretrained_options(
    revision: str | None, trust_remote_code: bool = False, local_files_only: bool = True
) -> dict[str, Any]:
    """What every ``from_pretrained`` call of this tool passes: ``trust_remote_code`` always
    said outright (left unset, transformers asks on the terminal, and reads the answer from
    standard input: a path line ``y`` would consent)."""
    return {
        "revision": revision,
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
    }


@contextlib.contextmanager
def no_terminal_io() -> Iterator[None]:
    """While a model loads: standard input reads as empty and standard output goes to
    standard error, so that no library can read the input list (which is on stdin) or write
    a prompt among the records (which are on stdout)."""
    stdin, stdout = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(""), sys.stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout = stdin, stdout


def takes_device_tensors(processor: Any) -> bool:
    """Whether ``processor`` takes uint8 CHW image tensors on a device and preprocesses them
    there (``device=``): transformers' torchvision-backed processors do; others, such as
    timm checkpoints' TimmWrapperImageProcessor, take PIL images only."""
    try:
        from transformers.image_processing_utils_fast import BaseImageProcessorFast
    except ImportError:
        return False
    return isinstance(processor, BaseImageProcessorFast)


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
    if "trust_remote_code" in text:
        where = f"model folder {model!r}" if is_folder else f"model {model!r}"
        return (
            f"{where} needs its own Python code to load (its config's auto_map): pass "
            "--trust-remote-code to run it, only if you trust where it comes from"
        )
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
            f"network access, or pass --model PATH to a folder written by save_pretrained() "
            f"({TRY_OFFLINE} makes one)"
        )
    if "Unrecognized" in text or "image classification" in text.lower():
        return f"model {model!r} is not an image-classification model"
    if any(
        n in names for n in ("ConnectionError", "ConnectTimeout", "ReadTimeout", "ConnectError")
    ):
        return (
            f"could not reach the Hugging Face hub to download model {model!r}: check the "
            f"network, or pass --model PATH to a local copy and --offline ({TRY_OFFLINE} "
            "makes one)"
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
