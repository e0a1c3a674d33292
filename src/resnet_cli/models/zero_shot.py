"""Zero-shot classes: the user's own labels scored by a CLIP-style model (CLIP, SigLIP, SigLIP 2:
whatever ``AutoModelForZeroShotImageClassification`` loads), as transformers'
``pipeline("zero-shot-image-classification")`` scores them.

The pipeline runs the text tower on every call. Here each label's sentence ("This is a photo of
cat.") is embedded once, when the model loads, and the model becomes a classifier like any
other: ``ZeroShotHead`` takes the pixels and gives one logit per label (the image tower, its
normalized embedding against the fixed text embeddings, the model's own logit scale and bias),
so the engine, every runtime that takes the vision tower (ONNX Runtime, TorchScript, CPU
autocast, fp16 on a GPU) and everything downstream (top-k, records, the table, the report,
--organize, --resume) work unchanged. Scores are the pipeline's: a sigmoid for SigLIP models, a
softmax over the labels for the others.

The labels, the template and the checks of the options need no torch; the rest imports it
inside the functions that compute.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .checkpoint import check_model_kind, is_zero_shot

# The pipeline's own hypothesis template (transformers' zero_shot_image_classification.py);
# its default model is config.DEFAULT_ZERO_SHOT_MODEL.
DEFAULT_TEMPLATE = "This is a photo of {}."


@dataclass(frozen=True)
class ZeroShot:
    """The user's labels, and the sentence each is put in (``template``'s ``{}``)."""

    labels: tuple[str, ...]
    template: str = DEFAULT_TEMPLATE

    @classmethod
    def of(cls, labels: Sequence[str], template: str | None = None) -> ZeroShot:
        """Checked labels (stripped, at least one, none empty or twice) and template (one
        ``{}``, where the label goes); a UsageError that says what to fix."""
        cleaned = tuple(str(label).strip() for label in labels)
        if not cleaned:
            raise UsageError("no labels: give at least one, e.g. --labels 'cat, dog, receipt'")
        if "" in cleaned:
            raise UsageError("an empty label: remove the stray comma or blank line")
        seen: set[str] = set()
        for label in cleaned:
            if label in seen:
                raise UsageError(f"label {label!r} is given twice: give each label once")
            seen.add(label)
        template = DEFAULT_TEMPLATE if template is None else template
        try:
            differs = template.format("a") != template.format("b")
        except (IndexError, KeyError, ValueError):
            differs = False
        if not differs:
            raise UsageError(
                f"--template {template!r} needs one {{}} where the label goes, as in "
                f"{DEFAULT_TEMPLATE!r} (write {{{{ and }}}} for a literal brace)"
            )
        return cls(cleaned, template)

    def sentences(self) -> list[str]:
        """What the text tower reads: each label in the template, as the pipeline forms it."""
        return [self.template.format(label) for label in self.labels]

    def meta(self) -> dict[str, Any]:
        """How a results file's metadata records the label set."""
        return {"labels": list(self.labels), "template": self.template}


def zero_shot_options(
    labels: str | None, labels_file: str | None, template: str | None
) -> ZeroShot | None:
    """--labels "a, b, c" (comma-separated) or --labels-file FILE (one a line, blank lines
    skipped), with --template: the run's ZeroShot, or None for a plain classifier."""
    if labels is not None and labels_file is not None:
        raise UsageError("give --labels or --labels-file, not both")
    if labels is None and labels_file is None:
        if template is not None:
            raise UsageError("--template applies to --labels or --labels-file: give one of them")
        return None
    if labels_file is not None:
        listed = read_labels_file(labels_file)
    else:
        assert labels is not None
        listed = [part.strip() for part in labels.split(",")]
        if listed and not listed[-1]:
            listed.pop()  # "cat, dog," : a trailing comma
    return ZeroShot.of(listed, template)


def read_labels_file(path: str) -> list[str]:
    """The labels in a UTF-8 text file, one a line; blank lines skipped."""
    try:
        with open(os.path.expanduser(path), encoding="utf-8-sig") as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raise UsageError(f"--labels-file {path!r} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read --labels-file {path!r}: {exc.strerror or exc}") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def zero_shot_on_disk(model: str, revision: str | None = None) -> bool | None:
    """Whether ``model`` is a zero-shot checkpoint, as its config.json in a local folder or
    the hub cache says; None where it is not there (nothing is downloaded to find out)."""
    from .checkpoint import local_config

    config = local_config(model, revision)
    return None if config is None else is_zero_shot(config)


def sigmoid_scores(model_type: str) -> bool:
    """Whether scores are each label's sigmoid (SigLIP's pairwise training) rather than a
    softmax over the labels: the pipeline's rule, by the config's model_type."""
    return "siglip" in model_type


def tokenizer_options(model_type: str) -> dict[str, Any]:
    """How the pipeline tokenizes the sentences: padded to the longest, except SigLIP models,
    trained on texts padded to 64 tokens (their text tower pools the last position)."""
    if "siglip" in model_type:
        return {"padding": "max_length", "max_length": 64, "truncation": True}
    return {"padding": True}


def load_zero_shot(
    model: str,
    revision: str | None,
    offline: bool,
    zero_shot: ZeroShot,
    trust_remote_code: bool = False,
) -> tuple[Any, Any, bool]:
    """(image processor, the model as a classifier of ``zero_shot``'s labels, sigmoid scores)
    through transformers' Auto classes, cache first, then the hub, as an image classifier
    loads (``load_local_first``: ``trust_remote_code`` said outright, stdin never read); the
    labels' text embedded once, in fp32 on the CPU."""
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForZeroShotImageClassification,
        AutoTokenizer,
    )

    from .transformers import load_local_first
    from .zero_shot_head import sample_inputs, zero_shot_head

    def load(kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
        config = AutoConfig.from_pretrained(model, **kwargs)
        check_model_kind(model, config.to_dict(), zero_shot)
        return (
            AutoImageProcessor.from_pretrained(model, **kwargs),
            AutoTokenizer.from_pretrained(model, **kwargs),
            AutoModelForZeroShotImageClassification.from_pretrained(model, config=config, **kwargs),
        )

    processor, tokenizer, network = load_local_first(
        model, revision, offline, trust_remote_code, load
    )
    network.eval()
    model_type = str(network.config.model_type)
    text = tokenizer(zero_shot.sentences(), return_tensors="pt", **tokenizer_options(model_type))
    head = zero_shot_head(model, network, dict(text), sample_inputs(model, processor))
    return processor, head, sigmoid_scores(model_type)
