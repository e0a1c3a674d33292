"""Coarse categories ("dog", "vehicle", "food") for the predictions of models whose labels are
the ImageNet-1k classes, from the table tools/derive_categories.py derived from WordNet 3.0.

No torch here: the table is a small TSV shipped in the package.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import NamedTuple

from .text import normalized_label

TABLE = "data/imagenet_categories.tsv"
# A label set is ImageNet-1k's when it has its 1,000 classes and nearly every label is that
# class's (the name microsoft/resnet-50 and timm give it, or its WordNet synset id): fine-tunes
# that rename a few classes still count, a different label set never matches by chance.
MIN_MATCHING = 0.95


class ClassInfo(NamedTuple):
    """One ImageNet-1k class in the table."""

    synset: str  # WordNet 3.0 noun id, n01440764
    label: str  # "tench, Tinca tinca"
    category: str  # "fish"
    path: str  # the hypernyms from the class to its category: "tench > cyprinid > ... > fish"


@functools.cache
def imagenet_classes() -> tuple[ClassInfo, ...]:
    """The table's 1,000 classes, in class-id order."""
    text = resources.files(__package__).joinpath(TABLE).read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line]
    assert [int(row[0]) for row in rows] == list(range(len(rows)))
    return tuple(ClassInfo(*row[1:5]) for row in rows)


def category_names() -> list[str]:
    """Every category the table uses, sorted."""
    return sorted({c.category for c in imagenet_classes()})


def is_imagenet_1k(labels: Sequence[str]) -> bool:
    """Whether ``labels`` (in class-id order) are the ImageNet-1k classes."""
    classes = imagenet_classes()
    if len(labels) != len(classes):
        return False
    matching = sum(
        normalized_label(label) in (normalized_label(c.label), c.synset)
        for label, c in zip(labels, classes, strict=True)
    )
    return matching >= MIN_MATCHING * len(classes)


def categories_for(labels: Sequence[str]) -> tuple[str, ...] | None:
    """Each class id's category for an ImageNet-1k label set; None for any other."""
    return _categories_for(tuple(labels))


@functools.lru_cache(maxsize=8)  # the Ray engine asks once a batch
def _categories_for(labels: tuple[str, ...]) -> tuple[str, ...] | None:
    if not is_imagenet_1k(labels):
        return None
    return tuple(c.category for c in imagenet_classes())


def kinds_of(class_id: int, label: str) -> tuple[str, ...]:
    """What an ImageNet-1k class is, from the class up to its category, normalized: the
    hypernyms on its WordNet path and the category ("coffee", "beverage", "food" for
    espresso); () where ``class_id`` is not that class (another label set)."""
    classes = imagenet_classes()
    if not 0 <= class_id < len(classes):
        return ()
    found = classes[class_id]
    if normalized_label(found.label) != normalized_label(label):
        return ()
    path = [normalized_label(kind) for kind in found.path.split(" > ")[1:]]
    return (*path, normalized_label(found.category))


def resolve_categories(labels: Sequence[str], wanted: bool | None, model: str) -> bool:
    """Whether a run gives its predictions categories: by default exactly when the model's
    labels are ImageNet-1k's; ``wanted`` True (--category) insists, False (--no-category)
    never."""
    from .errors import UsageError

    available = categories_for(labels) is not None
    if wanted and not available:
        raise UsageError(
            f"--category needs a model whose labels are the 1,000 ImageNet-1k classes; "
            f"{model}'s {len(labels)} labels are not: drop --category"
        )
    return available and wanted is not False
