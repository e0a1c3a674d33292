"""resnet-classify: classify images with Hugging Face image-classification models.

The public API, importable without loading torch (heavy modules load on first use)::

    from resnet_cli import load_classifier, classify
    classifier = load_classifier("microsoft/resnet-50")
    for record in classify(classifier, ["cat.jpg", "photos/"], top_k=3):
        print(record.input, record.predictions[0].label)

    zero_shot = load_classifier(labels=["person", "receipt", "screenshot"])  # CLIP

The whole command (output file, --resume, --report, --organize, --xmp) is ``run``::

    from resnet_cli import run
    result = run(["photos/"], output="labels.jsonl", resume=True, report="report.html")
    print(result.inputs, result.failed, result.exit_code)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import DeviceError, ImageError, ModelLoadError, ResnetCliError, UsageError
from .inputs.sources import Source, collect_inputs
from .pipeline.options import RunOptions
from .results import Prediction, Record

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "DeviceError",
    "ImageError",
    "ModelLoadError",
    "Prediction",
    "Record",
    "ResnetCliError",
    "RunOptions",
    "RunResult",
    "Source",
    "UsageError",
    "Watcher",
    "__version__",
    "classify",
    "collect_inputs",
    "load_classifier",
    "open_dataset",
    "run",
]

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from .inputs.datasets import DatasetInput
    from .pipeline.run import RunResult, Watcher
    from .runtimes.loaded import Classifier


def load_classifier(model: str | None = None, **options: Any) -> Classifier:
    """Load a model and its image processor (see ``resnet_cli.runtimes.classifier.
    load_classifier``): microsoft/resnet-50 by default; with ``labels=["cat", "receipt"]``,
    a zero-shot model (openai/clip-vit-base-patch32 by default) scoring your own labels."""
    from .runtimes.classifier import load_classifier as load

    return load(model, **options)


def open_dataset(name: str, **options: Any) -> DatasetInput:
    """Open one split of a Hugging Face dataset (hub id or local folder) as classify() input.

    Options: ``split``, ``image_column``, ``streaming`` (see
    ``resnet_cli.dataset_source.open_dataset``). Its rows are named ``<name>:<split>:<row>``;
    an imagefolder's by their image files, with their class folder as ``true_label``.
    """
    from .inputs.datasets import open_dataset as open_split

    return open_split(name, **options)


def classify(
    classifier: Classifier, inputs: Iterable[Any], *, top_k: int = 5, **options: Any
) -> Iterator[Record]:
    """Classify inputs in order, one Record each.

    An input is a path, folder or glob (str or PathLike), a PIL image, raw encoded bytes, a
    ``Source``, or a dataset from ``open_dataset`` (each of its rows).
    Options: ``max_pixels``, ``min_score`` (predictions scoring under it are left out; a
    record may then have none). Images per batch and decode threads are the classifier's
    plan's: ``load_classifier(model, batch_size=..., workers=...)`` sets them.
    """
    from .pipeline.local import classify as run

    return run(classifier, _as_sources(inputs), top_k=top_k, **options)


def run(
    inputs: Iterable[str | os.PathLike[str]],
    options: RunOptions | None = None,
    *,
    watcher: Watcher | None = None,
    **option_values: Any,
) -> RunResult:
    """Do what ``resnet-classify INPUTS... [OPTIONS]`` does: classify files, folders, globs
    and URLs (or ``dataset=``) into ``output`` (stdout without one), resuming a file an
    earlier run left (``resume=True``), with the report, --organize, --xmp and the quick-start
    export. Options are ``RunOptions``' fields, as keywords (``top_k=3, output="labels.jsonl",
    report="report.html", labels=["cat", "receipt"]``) or one ``RunOptions``.

    Returns a ``RunResult`` (counts, time, ``exit_code`` as the command's); raises a
    ``ResnetCliError`` where the command prints an error (``errors.exit_code`` gives its
    code). ``watcher``: what to show while it works (default: warnings on stderr).
    """
    from .pipeline.run import run as run_all

    if options is None:
        options = RunOptions.of(**option_values)
    elif option_values:
        raise UsageError("pass the options as keywords or as one RunOptions, not both")
    return run_all([os.fspath(name) for name in inputs], options, watcher)


def __getattr__(name: str) -> Any:
    """``RunResult`` and ``Watcher``, importable from here without loading the run."""
    if name in ("RunResult", "Watcher"):
        from .pipeline import run as module

        return getattr(module, name)
    raise AttributeError(name)


def _as_sources(inputs: Iterable[Any]) -> Iterator[Source]:
    from .inputs.datasets import DatasetInput

    for position, item in enumerate(inputs):
        if isinstance(item, Source):
            yield item
        elif isinstance(item, DatasetInput):
            yield from item.sources()
        elif isinstance(item, str | os.PathLike):
            yield from collect_inputs([os.fspath(item)])
        elif isinstance(item, bytes | bytearray):
            yield Source(name=f"<bytes {position}>", data=bytes(item))
        else:
            yield Source(name=f"<image {position}>", image=item)
