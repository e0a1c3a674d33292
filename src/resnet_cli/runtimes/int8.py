"""INT8 on the CPU: the model quantized by NNCF and run by OpenVINO, calibrated on the run's
own first images, checked against fp32 on them before it is used, and cached for later runs.

Why OpenVINO and NNCF rather than ONNX Runtime's quantizer (measured on a 2-core AMD EPYC,
``benchmarks/int8_bench.py``; ``benchmarks/results-int8-*.md``): ResNet-50 ran 1.7-1.8x
faster in OpenVINO's INT8 than in ONNX Runtime's, and on the real EfficientNet-Lite0 ONNX
Runtime's best QDQ variant kept far fewer top-1 answers of fp32 (NNCF corrects the bias that
quantizing depthwise convolutions shifts; ONNX Runtime's quantizer has no such step).

- ``--precision int8`` plans the ``openvino`` runtime. Without a cache entry, the torch model
  is exported to ONNX before the first image and the run holds its first
  ``CALIBRATION_IMAGES`` images back: NNCF calibrates on them (the "mixed" preset: weights
  symmetric per channel, activations asymmetric per tensor; the first convolution and the
  depthwise ones kept in fp32, which the measurements said hurt most), and the guard
  (``Check``) compares the INT8 model's answers with fp32's on the same images. Only when at
  least ``agreement()`` of them (95% by default) keep fp32's top-1 does the run use INT8;
  otherwise every image is scored in fp32 (OpenVINO, from the same export) and the run says
  why in one line.
- The verdict is cached with the model, keyed by the checkpoint's files, this recipe, the
  OpenVINO and NNCF versions and the CPU: a later run of the same checkpoint starts from the
  INT8 model without torch (a checkpoint whose processor is reproduced in NumPy), or goes
  straight to fp32 with the same one line where the guard refused it.

Its cache entries (``int8/KEY.json`` with ``KEY.xml`` and ``KEY.bin``, and ``KEY.blob``: the
model compiled for this CPU, which later runs import instead of compiling it, used only where
its SHA-256 is the record's) are ``cache``'s, as the ONNX exports are: the same keys, records,
private folders, and pruning of the tool's own entries only.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..atomic import replaced_atomically
from .cache import Kind, checkpoint_identity, make_private_folders
from .hardware import cpu_identity

# Images the first run holds back to calibrate on. Measured on the real EfficientNet-Lite0:
# 16 and 32 images gave the same agreement with fp32 as 64 on held-out photos, 128 no better;
# 64 is a second or two of decoding, and enough that the guard's share means something
# (one image is 1.6 points of it).
CALIBRATION_IMAGES = 64
# Percent of the calibration images that must keep fp32's top-1: at most 3 of 64 may change.
# The aim is 96% on the user's photos, and 64 images measure it coarsely (binomial): at 95%
# a model that keeps 96% passes 3 times in 4 and one that keeps 90% once in 10; at 97% (one
# change allowed) the model that meets the aim would pass only once in 4.
DEFAULT_AGREEMENT = 95.0
# The cache's INT8 entries: the verdict in the record, the model beside it (when accepted),
# and the model as OpenVINO compiled it for this CPU (``.blob``, written by the first run that
# loads the model; its SHA-256 is in the record): importing it takes 0.06 s where compiling
# the model takes 0.18 (ResNet-50). An entry is whole without it.
ENTRIES = Kind("int8", format=1, suffixes=(".xml", ".bin", ".blob"), used=".json")
MODEL_FILES = (".xml", ".bin")
RECIPE = {
    "quantizer": "nncf.quantize",
    "preset": "mixed",
    "fp32_layers": "first and depthwise convolutions",
    "bias_correction": "fast",
    "weights": "8-bit with VNNI, else 7-bit (NNCF's overflow fix)",
    "images": CALIBRATION_IMAGES,
}
PACKAGES = ("openvino", "nncf")


def available() -> bool:
    """OpenVINO and NNCF are installed (the int8 extra): a first run can calibrate."""
    return all(importlib.util.find_spec(name) is not None for name in PACKAGES)


def agreement() -> float:
    """The guard's threshold, in percent: RESNET_CLI_INT8_AGREEMENT, else 95."""
    told = os.environ.get("RESNET_CLI_INT8_AGREEMENT", "").strip()
    try:
        return min(100.0, max(0.0, float(told))) if told else DEFAULT_AGREEMENT
    except ValueError:
        return DEFAULT_AGREEMENT


@dataclass(frozen=True)
class Check:
    """The guard's verdict on one calibration: how many images, the share of them whose
    top-1 label INT8 kept, the largest difference in any label's score, and the threshold."""

    images: int
    same_top1: float  # percent
    max_score_gap: float
    threshold: float  # percent
    created: str = ""
    digest: str = ""  # of the calibration pixels: which images they were, not the images

    @property
    def accepted(self) -> bool:
        return self.images >= 1 and self.same_top1 >= self.threshold

    def summary(self) -> str:
        return (
            f"same top-1 as fp32 on {self.same_top1:.1f}% of {self.images} calibration "
            f"images (threshold {self.threshold:g}%), largest score gap {self.max_score_gap:.3f}"
        )

    def refusal(self) -> str:
        """The one line a run says when the guard keeps it in fp32."""
        return f"int8 refused: {self.summary()}; computing in fp32"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "accepted": self.accepted}


def check_of(reference: Any, quantized: Any, multi_label: bool, threshold: float) -> Check:
    """The guard's verdict from fp32's and INT8's logits on the same images."""
    import numpy as np

    from .onnx_runtime import scores_of

    reference = np.asarray(reference, dtype=np.float32)
    quantized = np.asarray(quantized, dtype=np.float32)
    same = float((reference.argmax(-1) == quantized.argmax(-1)).mean()) * 100
    gap = float(np.abs(scores_of(reference, multi_label) - scores_of(quantized, multi_label)).max())
    return Check(
        images=len(reference),
        same_top1=round(same, 2),
        max_score_gap=round(gap, 4),
        threshold=threshold,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


# --------------------------------------------------------------------------- the cache


def entry_path(files: dict[str, str]) -> Path:
    """The cache entry's record (``KEY.json``, which holds the verdict; the model is
    ``KEY.xml`` and ``KEY.bin`` beside it). Keyed by the checkpoint's files (as the ONNX
    export is), the recipe, the OpenVINO and NNCF versions (read without importing them) and
    the CPU, whose instruction set decides INT8's arithmetic (VNNI or not), with
    ONEDNN_MAX_CPU_ISA where it is set."""
    from importlib.metadata import PackageNotFoundError, version

    releases: list[str | None] = []
    for name in PACKAGES:
        try:
            releases.append(version(name))
        except PackageNotFoundError:
            releases.append(None)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return ENTRIES.path(
        [ENTRIES.format, RECIPE, releases, cpu_identity(), isa, vnni(), checkpoint_identity(files)]
    )


def cached_check(files: dict[str, str] | None) -> Check | None:
    """The verdict an earlier run cached for this checkpoint (an accepted one only with its
    model beside it), or None; never imports OpenVINO."""
    if files is None:
        return None
    try:
        path = entry_path(files)
        record = ENTRIES.record(path)  # None: no entry, or not the tool's own
        check = Check(**record["check"]) if record is not None else None
    except Exception:  # an unreadable verdict: calibrate anew
        return None
    if check is None:
        return None
    if check.accepted and not all(path.with_suffix(s).is_file() for s in MODEL_FILES):
        return None
    return check


def _save(files: dict[str, str], model: Any, check: Check) -> None:
    """Write the entry: the model (when accepted), then its record with the verdict, which
    makes it complete. A cache that cannot take it (a read-only home, a full disk) only means
    the next run calibrates again."""
    try:
        path = entry_path(files)
        make_private_folders(path.parent)  # 0700, as the exports' folder
        if check.accepted:
            import openvino

            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".writing-") as folder:
                staged = Path(folder) / "model.xml"
                openvino.save_model(model, str(staged), compress_to_fp16=False)
                os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
                os.replace(staged, path.with_suffix(".xml"))
        ENTRIES.write_record(path, {"check": asdict(check), "recipe": RECIPE})
        ENTRIES.prune(keep=path)
    except Exception:
        return


# --------------------------------------------------------------------------- running


def vnni() -> bool:
    """This CPU multiplies and adds INT8 without saturating (VNNI or AMX), and oneDNN is not
    told to stay below it (ONEDNN_MAX_CPU_ISA=AVX2, AVX or AVX512_CORE)."""
    from .hardware import probe

    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if capped in ("SSE41", "AVX", "AVX2", "AVX512_CORE"):
        return False
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & probe(cuda=False).features)


def import_openvino() -> Any:
    """OpenVINO, without its model converter and its telemetry. ``import openvino`` imports
    the converter (``openvino.convert_model``, which this tool never calls: NNCF and the
    runtime read ONNX and IR files with ``Core``), half of the import's time (30 ms of 60,
    in the torch-free start of a cached ``-p int8`` run); the converter starts an
    openvino_telemetry client, which writes a client id under ~/intel and sends an "import"
    event unless the user opted out. A tool that promises --offline and no files beside its
    outputs hides both while OpenVINO loads (``openvino`` takes a missing converter in its
    stride); either can still be imported afterwards by whoever asks for it by name."""
    with _hidden("openvino_telemetry", "openvino.tools.ovc"):
        import openvino
    return openvino


def import_nncf() -> Any:
    """NNCF, without its telemetry (its client is openvino_telemetry too, started when NNCF is
    imported; NNCF_CI=1 also turns it off, and a user's own setting of it wins). Its INFO
    lines (the layers it skipped) are not for our users, nor torch's note that no CUDA
    runtime is found (NNCF imports torch's C++ extension helper)."""
    import logging

    import_openvino()
    os.environ.setdefault("NNCF_CI", "1")
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    with _hidden("openvino_telemetry"):
        import nncf
    nncf.set_log_level(logging.ERROR)
    return nncf


@contextlib.contextmanager
def _hidden(*modules: str) -> Iterator[None]:
    """``import`` of any of ``modules`` fails in here (unless something imported it before)."""
    hidden = [name for name in modules if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # ImportError
    try:
        yield
    finally:
        for name in hidden:
            sys.modules.pop(name, None)


class OpenVinoForward:
    """A compiled OpenVINO model called like the torch model: pixels in, logits out (torch
    tensors in a torch run, NumPy arrays in the torch-free start). fp32 arithmetic wherever
    the model is not quantized: OpenVINO would otherwise run those layers in bf16 on a CPU
    that has it."""

    def __init__(self, model: Any, threads: int):
        """``model``: an ``openvino.Model``, the path of its saved form, or the bytes of a
        model compiled for this CPU (``compiled_bytes``)."""
        openvino = import_openvino()
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY",
        }
        core = openvino.Core()
        if isinstance(model, bytes):
            self.compiled = core.import_model(io.BytesIO(model), "CPU", config)
        else:
            self.compiled = core.compile_model(model, "CPU", config)
        self.output = self.compiled.output(0)
        self.request = self.compiled.create_infer_request()

    def compiled_bytes(self) -> bytes:
        """The compiled model, as ``OpenVinoForward(bytes)`` takes it back on this CPU."""
        exported: bytes = self.compiled.export_model().getvalue()
        return exported

    def run(self, array: Any) -> Any:
        import numpy as np

        return self.request.infer({0: np.ascontiguousarray(array, dtype=np.float32)})[
            self.output
        ].copy()

    def __call__(self, pixel_values: Any) -> Any:
        import numpy as np

        if isinstance(pixel_values, np.ndarray):
            return self.run(pixel_values)
        import torch

        return torch.from_numpy(self.run(pixel_values.float().contiguous().numpy()))


class PendingInt8:
    """The runtime of a run that calibrates: the model's export in OpenVINO, in fp32 until
    ``calibrate`` is handed the run's first images (the pipeline does that before its first
    batch, so every image of a run is scored by one model)."""

    def __init__(self, model: Any, threads: int):
        self.model = model  # the export as an openvino.Model
        self.threads = threads
        self.fp32 = OpenVinoForward(model, threads)
        self.calibration_images = CALIBRATION_IMAGES

    def __call__(self, pixel_values: Any) -> Any:
        return self.fp32(pixel_values)

    def calibrate(
        self, pixels: Any, multi_label: bool, files: dict[str, str] | None
    ) -> tuple[OpenVinoForward, Check]:
        """Quantize on ``pixels`` (the run's first images, N x C x H x W), check INT8 against
        fp32 on them, and return the runtime the run uses (INT8 where the guard accepts it,
        the same export in fp32 where not) with the verdict, cached for later runs of the
        checkpoint made of ``files``."""
        import numpy as np

        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        quantized = quantize(self.model, pixels)
        int8 = OpenVinoForward(quantized, self.threads)
        reference = _in_batches(self.fp32, pixels)
        check = check_of(reference, _in_batches(int8, pixels), multi_label, agreement())
        digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
        check = Check(**{**asdict(check), "digest": digest})
        if files is not None:
            _save(files, quantized, check)
        return (int8 if check.accepted else self.fp32), check


# The layers ``quantize`` can keep in fp32, by kind: the first convolution, the second
# ungrouped one (EfficientNet's and MobileNet's first pointwise convolution, ResNet's first
# 1x1), the depthwise (grouped) ones, the last convolution, the classifier (MatMul, ONNX's
# Gemm), or all of them.
LAYER_KINDS = ("first", "second", "depthwise", "last", "classifier", "all")


def fp32_layer_names(model: Any, kinds: tuple[str, ...]) -> list[str]:
    """The names of ``model``'s layers of these ``LAYER_KINDS``, in the model's order."""
    layers = [
        op
        for op in model.get_ordered_ops()
        if op.get_type_name() in ("Convolution", "GroupConvolution", "MatMul")
    ]
    convolutions = [op for op in layers if op.get_type_name() != "MatMul"]
    ungrouped = [op for op in convolutions if op.get_type_name() == "Convolution"]
    chosen = {
        "first": convolutions[:1],
        "second": [op for op in ungrouped if op is not convolutions[0]][:1],
        "depthwise": [op for op in layers if op.get_type_name() == "GroupConvolution"],
        "last": ungrouped[-1:],
        "classifier": [op for op in layers if op.get_type_name() == "MatMul"],
        "all": layers,
    }
    wanted = {id(op) for kind in kinds for op in chosen[kind]}
    return [op.get_friendly_name() for op in layers if id(op) in wanted]


def quantize(
    model: Any,
    pixels: Any,
    *,
    seven_bit: bool | None = None,
    eight_bit_first: bool = False,
    fp32: tuple[str, ...] = ("first", "depthwise"),
    fp32_names: tuple[str, ...] = (),
    fp32_types: tuple[str, ...] = (),
    preset: str = "mixed",
    bias_correction: str = "fast",
    channel_alignment: bool = False,
    activations_range: str | None = None,
    model_type: str | None = None,
    smooth_quant: float | None = None,
) -> Any:
    """``model`` (an openvino.Model in fp32) quantized by NNCF, calibrated on ``pixels``;
    ``seven_bit``: weights in 7 bits (default: where the CPU has no VNNI), else 8 bits but
    the first quantized layer's 7 unless ``eight_bit_first``. The defaults are
    ``RECIPE``; the other arguments are for benchmarks/int8_bench.py's variants: ``fp32``
    (``LAYER_KINDS`` kept in fp32), ``fp32_names`` (more layers, by name) and ``fp32_types``
    (every operation of these OpenVINO types, e.g. "Add": the residual sums), ``preset``
    ("mixed" or "performance"), ``bias_correction`` ("fast", "full" or "none"),
    ``channel_alignment``, ``activations_range`` (None: NNCF's mean of the images' minima
    and maxima; or a RangeEstimatorParametersSet by name: "minmax", "histogram" ...),
    ``model_type`` (None or "transformer") and ``smooth_quant``
    (SmoothQuant's alpha, which NNCF applies only to a model of type "transformer")."""
    if seven_bit is None:
        seven_bit = not vnni()
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # In fp32: the first convolution and the depthwise (grouped) ones. On the real
    # EfficientNet-Lite0 that kept fp32's top-1 on 93% of held-out photos instead of 87%,
    # halved the largest score gap, and cost no measurable speed (they are memory-bound).
    fp32_layers = fp32_layer_names(model, fp32) + list(fp32_names)
    # Without VNNI (AVX2, AVX-512 before Cascade Lake) x86's u8 x s8 multiply-add saturates
    # on 8-bit weights: 7 bits on every layer there (the real EfficientNet-Lite0 under
    # ONEDNN_MAX_CPU_ISA=AVX2 lost fp32's top-1 on 4 of 64 photos with 8, none with 7). With
    # VNNI, 8 bits (NNCF's default, 7 on the first quantized layer): 91% same top-1 on
    # held-out photos against 83% with 7.
    advanced = AdvancedQuantizationParameters(
        overflow_fix=OverflowFix.ENABLE
        if seven_bit
        else OverflowFix.DISABLE
        if eight_bit_first
        else OverflowFix.FIRST_LAYER,
        disable_channel_alignment=not channel_alignment,
        disable_bias_correction=bias_correction == "none",
    )
    if activations_range is not None:
        advanced.activations_range_estimator_params = getattr(
            RangeEstimatorParametersSet, activations_range.upper()
        )
    if smooth_quant is not None:
        advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(
            convolution=smooth_quant, matmul=smooth_quant
        )
    # Nor its progress bars: stdout carries records, stderr the run's own lines.
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return nncf.quantize(
            model,
            nncf.Dataset([pixels[i : i + 1] for i in range(len(pixels))]),
            preset=nncf.QuantizationPreset(preset),
            model_type=nncf.ModelType(model_type) if model_type else None,
            subset_size=len(pixels),
            fast_bias_correction=bias_correction != "full",
            ignored_scope=nncf.IgnoredScope(names=fp32_layers, types=list(fp32_types))
            if fp32_layers or fp32_types
            else None,
            advanced_parameters=advanced,
        )


def build_pending(model: Any, example: Any, threads: int) -> tuple[PendingInt8, str]:
    """The torch model exported to ONNX and read by OpenVINO, ready to calibrate on
    ``threads`` threads (with those bound, a ``base.Builder``: ``base.checked`` keeps it only
    if its fp32 logits are the model's)."""
    from .onnx_runtime import export

    openvino = import_openvino()
    with tempfile.TemporaryDirectory(prefix="resnet-cli-int8-") as folder:
        exported = Path(folder) / "model.onnx"
        exported.write_bytes(export(model, example))
        read = openvino.Core().read_model(str(exported))
    return PendingInt8(read, threads), "openvino"


def _in_batches(forward: OpenVinoForward, pixels: Any, size: int = 16) -> Any:
    import numpy as np

    return np.concatenate([forward.run(pixels[i : i + size]) for i in range(0, len(pixels), size)])


def load_cached_forward(files: dict[str, str], threads: int) -> OpenVinoForward | None:
    """The accepted INT8 model an earlier run cached, compiled for ``threads`` threads; None
    where there is none or it does not load (the run then loads the model with torch and
    calibrates anew)."""
    check = cached_check(files)
    if check is None or not check.accepted:
        return None
    path = entry_path(files)
    try:
        ENTRIES.touch(path)  # recently used: the last to be pruned
        compiled = _compiled(path)
        if compiled is not None:
            with contextlib.suppress(Exception):  # else compiled anew, and written again
                return OpenVinoForward(compiled, threads)
        forward = OpenVinoForward(str(path.with_suffix(".xml")), threads)
    except Exception:
        ENTRIES.remove(path)
        return None
    _save_compiled(path, forward)
    return forward


def _compiled(path: Path) -> bytes | None:
    """The entry's compiled model, where its bytes are the ones its record vouches for."""
    record = ENTRIES.record(path)
    digest = record.get("compiled") if record is not None else None
    if not isinstance(digest, str):
        return None
    try:
        data = path.with_suffix(".blob").read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == digest else None


def _save_compiled(path: Path, forward: OpenVinoForward) -> None:
    """Keep the model as compiled for this CPU beside the entry, then its digest in the
    record (a run stopped between the two leaves a blob no record vouches for: compiled anew).
    A cache that cannot take it only means the next run compiles again."""
    try:
        record = ENTRIES.record(path)
        if record is None:
            return
        data = forward.compiled_bytes()
        with replaced_atomically(path.with_suffix(".blob")) as temporary:
            Path(temporary).write_bytes(data)
        fields = {k: v for k, v in record.items() if k not in ("format", "key")}
        ENTRIES.write_record(path, {**fields, "compiled": hashlib.sha256(data).hexdigest()})
    except Exception:
        return
