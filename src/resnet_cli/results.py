"""Records: what classifying one input produced. Plain data, no torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .categories import kinds_of
from .text import normalized_label


@dataclass(frozen=True)
class Prediction:
    """One label for one image: its rank (1 = best), the label, the probability, the class id,
    and the label's coarse category where the model's labels have them (categories.py)."""

    rank: int
    label: str
    score: float
    class_id: int
    category: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "rank": self.rank,
            "label": self.label,
            "score": self.score,
            "class_id": self.class_id,
        }
        if self.category is not None:
            data["category"] = self.category
        return data


@dataclass(frozen=True)
class Record:
    """The outcome for one input: its predictions, or the error that stopped it; for an
    imagefolder's image, ``true_label``, the class folder it is in (None for other inputs)."""

    input: str
    predictions: tuple[Prediction, ...] = field(default=())
    error: str | None = None
    true_label: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        if self.error is not None:
            data: dict[str, Any] = {"input": self.input, "error": self.error}
        else:
            data = {"input": self.input, "predictions": [p.to_dict() for p in self.predictions]}
        if self.true_label is not None:  # last, and only when set: other records stay as they were
            data["true_label"] = self.true_label
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record written by ``to_dict`` (used when reading results back)."""
        truth = data.get("true_label")
        true_label = None if truth is None else str(truth)
        if data.get("error") is not None:
            return cls(input=data["input"], error=str(data["error"]), true_label=true_label)
        predictions = tuple(
            Prediction(
                rank=int(p["rank"]),
                label=str(p["label"]),
                score=float(p["score"]),
                class_id=int(p["class_id"]),
                category=None if p.get("category") is None else str(p["category"]),
            )
            for p in data.get("predictions", [])
        )
        return cls(input=data["input"], predictions=predictions, true_label=true_label)


def failure(input_name: str, message: str) -> Record:
    """An error record for an input that could not be classified."""
    return Record(input=input_name, error=message)


# A classified record "needs review" when its top-1 score is below REVIEW_SCORE or its lead over
# the second label is below REVIEW_MARGIN: the HTML report and the table both use this rule.
REVIEW_SCORE = 0.5
REVIEW_MARGIN = 0.1


# The rules by which a top-1 label is right for a true label (an imagefolder's class folder).
BY_LABEL, BY_CATEGORY = "label", "category"


def top1_match(record: Record) -> str | None:
    """By which rule a classified record's top-1 is its true label: ``"label"``, the label
    or one of the names it lists ("tabby" for "tabby, tabby cat"); ``"category"``, its
    coarse category or a kind on the WordNet path to it ("cat" or "domestic cat" for
    "Egyptian cat", "coffee" for "espresso"), for models whose predictions have categories.
    Case and ``_``/space are ignored, and a folder named in the plural ("cats") is its
    singular too. None: wrong, or nothing to judge (no true label, no prediction)."""
    if record.true_label is None or not record.predictions:
        return None
    truth = normalized_label(record.true_label)
    truths = {truth, truth[:-1]} if truth.endswith("s") and len(truth) > 3 else {truth}
    best = record.predictions[0]
    names = {normalized_label(best.label), *(normalized_label(n) for n in best.label.split(","))}
    if truths & names:
        return BY_LABEL
    if best.category is None:  # a model without categories: the label alone
        return None
    kinds = {normalized_label(best.category), *kinds_of(best.class_id, best.label)}
    return BY_CATEGORY if truths & kinds else None


def top1_right(record: Record) -> bool | None:
    """Whether a classified record's top-1 is right for its true label, by either rule of
    ``top1_match`` (None: it has no true label, or no prediction)."""
    if record.true_label is None or not record.predictions:
        return None
    return top1_match(record) is not None


def top_margin(record: Record) -> float | None:
    """How far the top-1 score leads the second (None with fewer than two predictions)."""
    if len(record.predictions) < 2:
        return None
    return record.predictions[0].score - record.predictions[1].score


def needs_review(
    record: Record, min_score: float = REVIEW_SCORE, min_margin: float = REVIEW_MARGIN
) -> bool:
    """Whether a classified record is doubtful: a low top-1 score or a narrow lead."""
    if not record.ok:
        return False
    if not record.predictions:
        return True
    margin = top_margin(record)
    return record.predictions[0].score < min_score or (margin is not None and margin < min_margin)
