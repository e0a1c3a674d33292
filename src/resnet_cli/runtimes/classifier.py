"""Loading a classifier: the checkpoint, the plan for how it computes, and the model with its
image processor, ready to classify.

``load_classifier`` reads what it can of the checkpoint without torch and asks
``runtimes.select.choose_plan`` how the run computes. Where that plan starts from an earlier
run's cache entry, it is the run's plan (the torch-free classifier of ``quick_start``);
otherwise the run's plan is chosen once its network is loaded, from all that loading found
out, and built exactly (``build``): the network made ready and the runtime the plan names,
checked before the first image. A runtime that cannot be built is a new plan, saying why
(``Plan.fallen_back``); the classifier holds the plan that runs. Every image of the run is
scored by that runtime.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import default_model
from ..errors import ModelLoadError, UsageError
from ..models.checkpoint import check_model_kind, local_config
from ..models.transformers import (
    input_shape_of,
    load_with_transformers,
    missing_model_folder,
    resize_rule,
    takes_device_tensors,
)
from ..models.zero_shot import ZeroShot, load_zero_shot
from .hardware import Hardware
from .loaded import Classifier
from .select import Checkpoint, Plan, Request

if TYPE_CHECKING:
    import torch

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


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
    batch_size: int | None = None,
    workers: int | None = None,
    planned: Callable[[Plan, dict[str, str] | None], None] | None = None,
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
    ``batch_size``, ``workers``: images per batch and decode threads, where not the plan's
    own choice (the CLI's -b and -j); the classifier's ``plan`` says what the run uses.
    ``planned``: called with the plan chosen from the files on disk, and the files, before
    anything is loaded (the local engine starts decoding then).
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
        batch_size=batch_size,
        workers=workers,
    )
    checkpoint, files = planning.checkpoint, planning.files
    # The plan as the files on disk tell it, before torch: a request that cannot run is one
    # line at once, and a checkpoint exported (or quantized) by an earlier run starts without
    # torch (0.2 s, not 3-4 s), where this plan says so; it is then the run's plan.
    early = planning.plan()
    if planned is not None:
        planned(early, files)
    if not early.needs_torch and files is not None:
        from .quick_start import load

        cached = load(model, files, early, checkpoint.int8)
        if cached is not None:
            return dataclasses.replace(cached, offline=offline)
        checkpoint = dataclasses.replace(checkpoint, cached=False, int8=None)
    import torch

    from ..models.checkpoint import label_fields
    from ..models.native import load_native
    from .build import build_runtime, prepare
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
            # A zero-shot model whose scores need its own forward says so in the plan.
            network_note=getattr(network, "plan_note", None),
        )
        files = files if checkpoint.cacheable else None
    # The run's plan, chosen from all that is known of the checkpoint now that its network is
    # loaded (its processor's batch, a zero-shot head) and oneDNN's kernels, which only torch
    # can tell; from here on, only a recorded fallback (a new plan) changes it.
    hardware = planning.hardware.with_torch()
    plan = dataclasses.replace(planning, checkpoint=checkpoint, hardware=hardware).plan()
    torch_device = _torch_device(plan.device)
    network = prepare(network, plan, torch_device)
    # The check's sample: random pixels in the model's input shape (a broken runtime gives
    # other logits on anything; a real image's would not be known before the first batch).
    sample = torch.randn(2, *input_shape) if input_shape is not None else torch.empty(0)
    forward, plan = build_runtime(plan, network, sample, files)
    return Classifier(
        name=model,
        model=network,
        processor=processor,
        device=torch_device,
        dtype=torch_dtype(plan.precision),
        plan=plan,
        forward=forward,
        exact=exact,
        files=files,
        resize=None if exact else resize_rule(processor),
        input_shape=input_shape,
        offline=offline,
        zero_shot=zero_shot,
        **fields,
    )


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
    batch_size: int | None = None,
    workers: int | None = None,
) -> PlanInputs:
    """The plan's inputs for a run of ``model``, read without torch (``hardware``: a probe
    already made, else this device's); ``load_classifier`` and ``resnet-classify env`` both
    start here, so env shows the plan a run would get. ``zero_shot``: the labels the run
    scores, where they are not the model's own; ``batch_size``, ``workers``: as asked (-b, -j),
    where asked."""
    from .int8 import available, cached_check
    from .onnx_runtime import enabled

    request = Request(
        device=device,
        precision=precision,
        exact=exact,
        compile_model=compile_model,
        batch_size=batch_size,
        workers=workers,
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
    from .cache import cached_path

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
