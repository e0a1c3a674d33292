"""The one probe of the machine a run computes on: CPU features, cores, CUDA, MPS, oneDNN.

Everything the chooser (``select``) needs to know about hardware comes from ``probe``, and
nothing else in the package looks at /proc/cpuinfo or asks torch what it can run. The probe
imports torch only where the answer needs it (a CUDA driver is loaded, or oneDNN's kernels are
asked about), so a CPU run that starts from a cached ONNX export never imports it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from dataclasses import dataclass, field, replace

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FEATURES = (
    "avx2",
    "avx512f",
    "avx512_bf16",
    "amx_bf16",
    "amx_fp16",
    "avx512_fp16",
    # INT8 multiply-adds that do not saturate (runtimes/int8.py picks its weights' bits by them)
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
)


@dataclass(frozen=True)
class Hardware:
    """What a run may compute on. ``cuda``: the CUDA devices torch sees, by name (empty where
    there is no driver or no device); ``onednn``: the reduced precisions oneDNN computes in
    hardware on this CPU (None: not asked, torch was not needed)."""

    cores: int
    cpu: str = ""
    features: frozenset[str] = frozenset()
    native_bf16: bool = False  # AVX512-BF16 or AMX, or RESNET_CLI_CPU_BF16=1
    cuda: tuple[str, ...] = ()
    cuda_bf16: bool = False
    mps: bool = False
    onednn: frozenset[str] | None = None
    notes: tuple[str, ...] = field(default=())
    thread_limit: int | None = None  # OMP_NUM_THREADS, where set to a positive number

    def with_torch(self) -> Hardware:
        """This probe with what only torch can tell: oneDNN's kernels, and MPS."""
        if self.onednn is not None:
            return self
        import torch

        kernels = set()
        for name in ("bf16", "fp16"):
            check = getattr(torch.ops.mkldnn, f"_is_mkldnn_{name}_supported", None)
            with contextlib.suppress(Exception):
                if check is not None and check():
                    kernels.add(name)
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return replace(self, onednn=frozenset(kernels), mps=mps)


def probe(cuda: bool = True) -> Hardware:
    """The machine as a run sees it. ``cuda``: ask torch about CUDA devices where a driver is
    loaded (False: a run told to use the CPU need not import torch to know)."""
    flags = _cpu_flags()
    told = native_bf16_told()
    capped = onednn_capped_below_bf16()
    native = told if told is not None else any(flag in flags for flag in _BF16_FLAGS)
    notes: tuple[str, ...] = ()
    if told is not None:
        notes = ("RESNET_CLI_CPU_BF16 set: native bf16 as told",)
    elif capped and native:
        native = False
        notes = (f"{capped} caps oneDNN below bf16: no native bf16",)
    hardware = Hardware(
        cores=usable_cores(),
        cpu=_cpu_model(),
        features=frozenset(flag for flag in FEATURES if flag in flags),
        native_bf16=native,
        notes=notes,
        thread_limit=omp_threads(),
    )
    if cuda and cuda_possible():
        import torch

        if torch.cuda.is_available():
            names = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            hardware = replace(hardware, cuda=names, cuda_bf16=torch.cuda.is_bf16_supported())
    return hardware


def use_threads(count: int) -> None:
    """Let torch use ``count`` threads (Ray starts its workers with one)."""
    import torch

    torch.set_num_threads(max(1, count))


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def omp_threads() -> int | None:
    """OMP_NUM_THREADS, where it is a positive number: the threads torch computes on, and so
    ONNX Runtime's and OpenVINO's (Ray sets it to each actor's CPUs)."""
    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", "0"))
    except ValueError:
        return None
    return limit if limit > 0 else None


def native_bf16_told() -> bool | None:
    """RESNET_CLI_CPU_BF16=1 or 0: treat the CPU as one with or without native bf16, whatever
    it has (the tests pin it, so --precision auto means the same on every machine); None:
    not told."""
    told = os.environ.get("RESNET_CLI_CPU_BF16", "").strip()
    return told == "1" if told in ("0", "1") else None


# oneDNN's instruction-set caps without bf16 arithmetic (its ONEDNN_MAX_CPU_ISA values).
_NO_BF16_ISAS = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
)


def onednn_capped_below_bf16() -> str | None:
    """``ONEDNN_MAX_CPU_ISA=AVX2`` (or DNNL_MAX_CPU_ISA) where the variable keeps oneDNN, and
    so torch's convolutions, from bf16 instructions the CPU has: bf16 is then emulated, and
    slower than fp32. None where there is no such cap."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip().upper()
        if value:
            return f"{name}={value}" if value in _NO_BF16_ISAS else None
    return None


def cuda_possible() -> bool:
    """Whether torch might find a CUDA device, judged without importing it: an NVIDIA driver
    is loaded and CUDA_VISIBLE_DEVICES does not hide every device."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")


def cpu_identity() -> list[str]:
    """What a CPU-specific artefact (an optimized ONNX graph) depends on: the architecture,
    the model name and the instruction-set flags."""
    return [platform.machine(), _cpu_model(), " ".join(_cpu_flags())]


def _cpu_flags() -> list[str]:
    """The first CPU's feature flags ("flags" on x86, "Features" on Arm)."""
    info = _cpuinfo()
    return (info.get("flags") or info.get("Features") or "").split()


def _cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("CPU part") or platform.processor()


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first CPU's fields in /proc/cpuinfo, read once; empty where there is no such file
    (macOS)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip() and fields:
                    break  # the end of the first CPU's block
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields
