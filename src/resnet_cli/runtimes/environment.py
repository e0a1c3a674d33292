"""``resnet-classify env``: what a bug report needs, as ``hf env`` and ``transformers env``
print it: versions, the machine as the chooser sees it, and the plan a run of ``--model``
would take (without downloading anything), with the reason for each choice."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models.zero_shot import ZeroShot

PACKAGES = (
    "resnet-cli",
    "torch",
    "torchvision",
    "transformers",
    "huggingface-hub",
    "onnxruntime",
    "openvino",
    "nncf",
    "pillow",
    "numpy",
    "timm",
    "ray",
)


def describe(
    model: str,
    revision: str | None,
    device: str,
    precision: str,
    exact: bool,
    zero_shot: ZeroShot | None = None,
    model_from: str = "--model",
    batch_size: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Versions, hardware, the plan for ``model`` (scoring ``zero_shot``'s labels, where
    given; ``batch_size`` and ``workers`` as asked, where asked) and the runtime cache, as
    plain data; ``model_from``: where the model's name came from (``config.resolve_model``)."""
    from ..config import config_path
    from ..errors import UsageError
    from ..models.checkpoint import check_model_kind, local_config
    from ..models.transformers import input_shape_of, missing_model_folder
    from .cache import cache_dir
    from .classifier import plan_inputs
    from .hardware import probe

    hardware = probe(cuda=True).with_torch()
    planning = plan_inputs(
        model,
        revision=revision,
        device=device,
        precision=precision,
        exact=exact,
        hardware=hardware,
        zero_shot=zero_shot,
        batch_size=batch_size,
        workers=workers,
    )
    files, changes = planning.files, {}
    notes = []
    missing = missing_model_folder(model)
    config = local_config(model, revision)
    if config is not None:  # labels for a classifier, or none for CLIP: a run would stop
        try:
            check_model_kind(model, config, zero_shot)
        except UsageError as exc:
            notes.append(str(exc))
    if missing is not None:  # what a run would stop on, said here too
        notes.append(missing)
    elif files is None:
        notes.append("not on disk yet: the plan is for a first run, which downloads it")
    elif not planning.checkpoint.native:
        processor = _local_processor(model, revision)
        if processor is None:
            notes.append("its image processor could not be read: an image batch is assumed")
        else:
            changes["image_batch"] = input_shape_of(model, processor) is not None
    plan = planning.plan(**changes)
    verdict = planning.checkpoint.int8
    folder = cache_dir()
    exports = sorted(folder.glob("onnx/*.onnx")) if folder.is_dir() else []
    return {
        "resnet-classify": _version("resnet-cli"),
        "python": f"{platform.python_version()} ({platform.system()} {platform.machine()})",
        "packages": {name: _version(name) for name in PACKAGES[1:]},
        "hardware": {
            "cpu": hardware.cpu,
            "cores": hardware.cores,
            "features": sorted(hardware.features),
            "native_bf16": hardware.native_bf16,
            "onednn_kernels": sorted(hardware.onednn or ()),
            "cuda": list(hardware.cuda),
            "cuda_bf16": hardware.cuda_bf16,
            "mps": hardware.mps,
            "notes": list(hardware.notes),
        },
        "model": {
            "name": model,
            "from": model_from,
            "revision": revision,
            "zero_shot": None if zero_shot is None else zero_shot.meta(),
            "on_disk": files is not None,
            "notes": notes,
        },
        "plan": plan.as_dict(),
        # With --precision int8: the guard's verdict an earlier run cached, if any.
        "int8": None
        if precision != "int8"
        else {"calibrated": verdict is not None, **(verdict.as_dict() if verdict else {})},
        "config_file": str(config_path()),
        "runtime_cache": {
            "folder": str(folder),
            "exports": len(exports),
            "megabytes": round(sum(_size(path) for path in exports) / 2**20, 1),
        },
    }


def format_text(facts: dict[str, Any]) -> str:
    """``describe``'s facts for people: a line each, a plan row per choice."""
    hardware, model = facts["hardware"], facts["model"]
    packages = ", ".join(f"{name} {found}" for name, found in facts["packages"].items())
    lines = [
        f"resnet-classify {facts['resnet-classify']}",
        f"Python {facts['python']}",
        f"packages: {packages}",
        f"CPU: {hardware['cpu'] or 'unknown'}, {hardware['cores']} usable cores; "
        f"features: {' '.join(hardware['features']) or 'none of note'}; "
        f"native bf16: {'yes' if hardware['native_bf16'] else 'no'}; "
        f"oneDNN kernels: {' '.join(hardware['onednn_kernels']) or 'fp32 only'}",
        "CUDA: " + (", ".join(hardware["cuda"]) or "none"),
        f"MPS: {'yes' if hardware['mps'] else 'no'}",
        *(f"note: {note}" for note in hardware["notes"]),
        f"model: {model['name']}"
        + (f" @ {model['revision']}" if model["revision"] else "")
        + f" (from {model['from']})",
        *(
            [
                f"labels: {', '.join(model['zero_shot']['labels'])} (zero-shot, each as "
                f"{model['zero_shot']['template']!r})"
            ]
            if model.get("zero_shot")
            else []
        ),
        *(f"note: {note}" for note in model["notes"]),
        "plan:",
    ]
    width = max(len(name) for name in facts["plan"])
    for name, row in facts["plan"].items():
        lines.append(f"  {name.replace('_', ' '):<{width}}  {row['value']!s:<12}  {row['why']}")
    verdict = facts["int8"]
    if verdict is not None:
        if not verdict["calibrated"]:
            lines.append("int8: not calibrated yet (a first run calibrates on its first images)")
        else:
            lines.append(
                f"int8: {'accepted' if verdict['accepted'] else 'refused'}, "
                + (
                    f"same top-1 as fp32 on {verdict['same_top1']}% of {verdict['images']} "
                    f"calibration images (threshold {verdict['threshold']}%), largest score gap "
                    f"{verdict['max_score_gap']}, calibrated {verdict['created']}"
                )
            )
    cache = facts["runtime_cache"]
    lines.append(
        f"runtime cache: {cache['folder']} ({cache['exports']} export(s), {cache['megabytes']} MB)"
    )
    lines.append(f"config file: {facts['config_file']}")
    return "\n".join(lines)


def _local_processor(model: str, revision: str | None) -> Any:
    """The model's image processor from disk (never the network), or None."""
    try:
        from transformers import AutoImageProcessor

        from ..models.transformers import no_terminal_io, pretrained_options

        with no_terminal_io():  # env never runs a model's own code (trust_remote_code=False)
            return AutoImageProcessor.from_pretrained(model, **pretrained_options(revision))
    except Exception:
        return None


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
