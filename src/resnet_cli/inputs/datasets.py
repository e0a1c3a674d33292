"""Hugging Face datasets as inputs: a hub id or a local folder -> one Source per row, in order.

Rows are read in small batches with the image column left encoded (``Image(decode=False)``),
so the bytes go to the engine's decode workers like a file's would, and a 10-million-row
dataset never sits in memory. ``datasets`` is imported only here, and only when a dataset is
named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import DatasetLoadError, UsageError, exception_chain, first_line
from .sources import Source, is_url, looks_like_path, offline_mode

# The project's demo: the dataset the seed example classifies.
DEMO_DATASET = "huggingface/cats-image"
_ROWS_PER_READ = 64


@dataclass
class DatasetInput:
    """One split of a dataset, opened: ``rows`` is None when streaming (not known up front).

    ``image_files``: a local imagefolder, whose rows are named by their files; ``classes``:
    its class names, when its class folders give each row a label (``label_column``).
    """

    name: str
    split: str
    column: str
    rows: int | None
    data: Any  # a datasets.Dataset or IterableDataset with only the columns read left
    image_files: bool = False
    classes: list[str] | None = None
    label_column: str | None = None

    def sources(self) -> Iterator[Source]:
        """One Source per row, in row order, named ``<dataset>:<split>:<row>``; an
        imagefolder's by the image file's path, as it would be named given as an input (the
        folder as given, joined with the file's path inside it), with its class as the
        source's ``true_label``."""
        index = 0
        for batch in self.data.iter(batch_size=_ROWS_PER_READ):
            labels = batch[self.label_column] if self.label_column else None
            for at, value in enumerate(batch[self.column]):
                name = f"{self.name}:{self.split}:{index}"
                if self.image_files:
                    name = self._file_name(value) or name
                source = row_source(name, value)
                if labels is not None:
                    source = dataclasses.replace(source, true_label=self._class(labels[at]))
                yield source
                index += 1

    def rows_done(self, done: Container[Source], names: Iterable[str]) -> int:
        """How many of the rows an earlier run recorded: ``names`` are its records' names,
        ``done`` matches a source against them (an imagefolder's files by their path)."""
        if self.image_files:
            return sum(source in done for source in self.sources())
        prefix = f"{self.name}:{self.split}:"
        return sum(name.startswith(prefix) for name in names)

    def _file_name(self, value: Any) -> str | None:
        path = value.get("path") if isinstance(value, dict) else None
        if not path or is_url(path):
            return None
        for root in {os.path.abspath(self.name), os.path.realpath(self.name)}:
            inside = os.path.relpath(path, root)
            if not inside.startswith(os.pardir):
                return os.path.join(self.name, inside)
        return str(path)

    def _class(self, label: Any) -> str | None:
        if self.classes is None or not isinstance(label, int) or not 0 <= label < len(self.classes):
            return None  # -1: a row without a label
        return self.classes[label]

    def row_image(self, name: str) -> bytes | None:
        """The encoded image of the row a record name points to (for report thumbnails), or
        None: streamed rows cannot be looked up again."""
        prefix = f"{self.name}:{self.split}:"
        if self.rows is None or not name.startswith(prefix):
            return None
        index = int(name[len(prefix) :])
        source = row_source(name, self.data[index][self.column])
        if source.data is not None:
            return source.data
        if source.path is not None:
            from .decode import read_file

            return read_file(source.path)
        return None


def row_source(name: str, value: Any) -> Source:
    """A row's image cell -> a Source: encoded bytes, a file path, a URL, or an error."""
    if value is None:
        return Source(name=name, error="no image in this row")
    if isinstance(value, dict):  # an Image feature read with decode=False
        data, path = value.get("bytes"), value.get("path")
        if data:
            return Source(name=name, data=bytes(data))
        if path:
            return Source(name=name, url=path) if is_url(path) else Source(name=name, path=path)
        return Source(name=name, error="no image in this row")
    if isinstance(value, bytes | bytearray):
        return Source(name=name, data=bytes(value)) if value else _empty(name)
    if isinstance(value, str) and value.strip():
        return Source(name=name, url=value) if is_url(value) else Source(name=name, path=value)
    if isinstance(value, str):
        return _empty(name)
    # A decoded image (a PIL image from a column we could not leave encoded).
    return Source(name=name, image=value)


def _empty(name: str) -> Source:
    return Source(name=name, error="no image in this row")


def open_dataset(
    name: str,
    *,
    split: str | None = None,
    image_column: str | None = None,
    streaming: bool = False,
) -> DatasetInput:
    """Open one split of a hub dataset, a ``save_to_disk`` folder, a folder of parquet files
    or an ``imagefolder``-style folder of images.

    ``split`` defaults to the only split, else ``test``, else the first; ``image_column`` to
    the first column whose feature is an Image.
    """
    _quiet_datasets()
    saved = _is_saved_to_disk(name)
    image_files = False
    if saved:
        table, split = _open_saved(name, split)
    elif not _looks_like_hub_id(name):
        if not os.path.exists(name):
            raise UsageError(
                f"dataset folder {name!r} does not exist: check the path, or pass a hub id"
            )
        table, split = _open_with_loader(name, split, streaming)
        image_files = getattr(table.info, "builder_name", None) == "imagefolder"
    else:
        table, split = _open_hub(name, split, streaming)
    column = pick_image_column(name, table.features, image_column)
    classes = _class_names(table.features) if image_files else None
    label_column = _LABEL_COLUMN if classes is not None and column != _LABEL_COLUMN else None
    table = table.select_columns([column, *([label_column] if label_column else [])])
    feature = table.features[column] if table.features is not None else None
    if type(feature).__name__ == "Image":
        from datasets import Image

        table = table.cast_column(column, Image(decode=False))
    rows = None if streaming and not saved else len(table)
    return DatasetInput(
        name=name,
        split=split,
        column=column,
        rows=rows,
        data=table,
        image_files=image_files,
        classes=classes if label_column else None,
        label_column=label_column,
    )


# The column datasets' imagefolder builder fills from the class folders (a ClassLabel).
_LABEL_COLUMN = "label"


def _class_names(features: Any) -> list[str] | None:
    """An imagefolder's class names, when its class folders label the rows."""
    feature = None if features is None else features.get(_LABEL_COLUMN)
    if feature is None or type(feature).__name__ != "ClassLabel":
        return None
    return [str(name) for name in feature.names]


def pick_split(dataset: str, splits: list[str], wanted: str | None) -> str:
    """The split to classify: the one asked for, else the only one, else test, else the first."""
    if not splits:
        raise UsageError(f"dataset {dataset!r} has no splits to classify")
    if wanted is not None:
        if wanted not in splits:
            raise UsageError(
                f"dataset {dataset!r} has no split {wanted!r}: pick one of {', '.join(splits)}"
            )
        return wanted
    if len(splits) == 1:
        return splits[0]
    return "test" if "test" in splits else splits[0]


def pick_image_column(dataset: str, features: Any, wanted: str | None) -> str:
    """The column holding images: the one asked for, else the first Image feature."""
    if features is None:
        raise UsageError(
            f"dataset {dataset!r} does not say what its columns hold: name the image column "
            "with --image-column"
            if wanted is None
            else f"dataset {dataset!r}: cannot check column {wanted!r} (no column types known)"
        )
    described = ", ".join(f"{n} ({_kind(f)})" for n, f in features.items())
    if wanted is not None:
        if wanted not in features:
            raise UsageError(
                f"dataset {dataset!r} has no column {wanted!r}: its columns are {described}"
            )
        if _kind(features[wanted]) not in ("image", "string", "binary"):
            raise UsageError(
                f"column {wanted!r} of dataset {dataset!r} holds {_kind(features[wanted])}, not "
                "images, image bytes, paths or URLs"
            )
        return wanted
    for column, feature in features.items():
        if _kind(feature) == "image":
            return str(column)
    raise UsageError(
        f"dataset {dataset!r} has no image column: its columns are {described}; "
        "name one with --image-column"
    )


def _kind(feature: Any) -> str:
    kind = type(feature).__name__
    if kind == "Image":
        return "image"
    dtype = getattr(feature, "dtype", None)
    if kind == "Value" and dtype in ("string", "large_string"):
        return "string"
    if kind == "Value" and dtype in ("binary", "large_binary"):
        return "binary"
    return str(dtype) if kind == "Value" else kind


def _quiet_datasets() -> None:
    """Our stderr is for our progress and summary, not datasets' bars and notices."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _is_saved_to_disk(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "dataset_dict.json")) or os.path.isfile(
        os.path.join(path, "state.json")
    )


def _looks_like_hub_id(name: str) -> bool:
    return not looks_like_path(name) and all(name.split("/")) and not os.path.exists(name)


def _open_saved(path: str, split: str | None) -> tuple[Any, str]:
    """A folder written by ``save_to_disk`` (memory-mapped: never loaded whole)."""
    from datasets import DatasetDict, load_from_disk

    try:
        saved = load_from_disk(path)
    except Exception as exc:
        raise UsageError(f"cannot read dataset folder {path!r}: {first_line(exc)}") from None
    if isinstance(saved, DatasetDict):
        chosen = pick_split(path, list(saved), split)
        return saved[chosen], chosen
    own = str(saved.split) if saved.split is not None else "train"
    return saved, pick_split(path, [own], split)


def _open_with_loader(path: str, split: str | None, streaming: bool) -> tuple[Any, str]:
    """A local folder of data files (parquet, csv, json, arrow) or of images (imagefolder)."""
    from datasets import get_dataset_split_names, load_dataset

    try:
        chosen = pick_split(path, list(get_dataset_split_names(path)), split)
        return load_dataset(path, split=chosen, streaming=streaming), chosen
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(
            f"cannot read {path!r} as a dataset (a save_to_disk folder, or a folder of parquet "
            f"files or images): {first_line(exc)}"
        ) from None


def _open_hub(name: str, split: str | None, streaming: bool) -> tuple[Any, str]:
    """A hub dataset: the cached copy without a request if there is one, else downloaded.

    Like models: a dead network or a wrong name is one clear error in seconds, not minutes
    of retries.
    """
    from datasets import get_dataset_split_names, load_dataset

    def load(offline: bool) -> tuple[Any, str]:
        with _hub_offline(offline):
            chosen = pick_split(name, list(get_dataset_split_names(name)), split)
            return load_dataset(name, split=chosen, streaming=streaming), chosen

    offline = offline_mode()
    if not streaming:  # a streamed dataset has no cached copy to use
        try:
            return load(offline=True)
        except UsageError:
            raise
        except Exception as exc:
            if offline:
                raise DatasetLoadError(
                    f"dataset {name!r} is not in the local cache and offline mode is on: run "
                    "once with network access, or pass --dataset PATH to a local copy"
                ) from exc
    elif offline:
        raise DatasetLoadError(
            f"--streaming reads dataset {name!r} from the hub, and offline mode is on: drop "
            "--offline, or download it first (without --streaming)"
        )
    _check_hub(name)
    try:
        return load(offline=False)
    except UsageError:
        raise
    except Exception as exc:
        raise DatasetLoadError(f"could not load dataset {name!r}: {first_line(exc)}") from exc


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """Switch datasets' and huggingface_hub's offline mode for one load (both read it at
    import, so the environment variable alone is too late here)."""
    import datasets.config
    import huggingface_hub.constants as hub

    saved = datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE = offline or saved[0]
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE = saved


def _check_hub(name: str) -> None:
    """Ask the hub about the dataset once, without retries."""
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(name, timeout=10)
    except Exception as exc:
        kinds = {type(e).__name__ for e in exception_chain(exc)}
        if kinds & {"RepositoryNotFoundError", "GatedRepoError"}:
            message = (
                f"dataset {name!r} was not found on the Hugging Face hub, or it is private or "
                "gated: check the name, or log in (hf auth login, or set HF_TOKEN)"
            )
        else:
            message = (
                f"could not reach the Hugging Face hub to download dataset {name!r} (not in the "
                "local cache either): check the network, or pass --dataset PATH to a local copy"
            )
        raise DatasetLoadError(message) from exc
