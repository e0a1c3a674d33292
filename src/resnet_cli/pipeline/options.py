"""What a run is asked to do: the main command's options as one typed object, which the
command line fills from its flags and a Python caller from keywords (``resnet_cli.run``)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_MODEL
from ..errors import UsageError
from ..inputs.datasets import DEMO_DATASET
from ..inputs.decode import DEFAULT_MAX_PIXELS
from ..models.zero_shot import DEFAULT_TEMPLATE, ZeroShot


@dataclass(frozen=True)
class RunOptions:
    """One run's options; each field is the flag of the same name (``--top-k`` is
    ``top_k``). ``check`` refuses the combinations that make no sense, before any work."""

    top_k: int = 5
    min_score: float = 0.0
    model: str = DEFAULT_MODEL
    revision: str | None = None
    device: str = "auto"
    batch_size: int | None = None  # None: the plan's choice
    precision: str = "auto"
    exact: bool = False
    output_format: str | None = None  # None: from the output's extension, else jsonl or table
    output: Path | None = None  # None: standard output
    output_name: str | None = None  # as typed: "newdir/" keeps its slash
    null: bool = False
    workers: int | None = None  # None: the plan's choice
    resume: bool = False
    overwrite: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    compile_model: bool = False
    dataset: str | None = None
    split: str | None = None
    image_column: str | None = None
    streaming: bool = False
    demo: bool = False
    offline: bool = False
    trust_remote_code: bool = False
    report: Path | None = None
    quiet: bool = False
    engine: str = "local"
    ray_address: str | None = None
    category: bool | None = None  # None: on when the model's labels are ImageNet-1k's
    organize: Path | None = None
    organize_by: str | None = None
    organize_mode: str | None = None
    dry_run: bool = False
    xmp: bool = False
    xmp_name: str | None = None
    zero_shot: ZeroShot | None = None  # --labels: the user's classes, not the model's

    @classmethod
    def of(cls, **values: Any) -> RunOptions:
        """Options from keywords as a Python caller writes them: paths as str or Path,
        ``labels=[...]`` (and ``template``) for a zero-shot run; unknown names are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names - {"labels", "template"})
        if unknown:
            raise UsageError(f"unknown run option {unknown[0]!r}: see resnet_cli.RunOptions")
        labels, template = values.pop("labels", None), values.pop("template", None)
        if labels is not None:
            values["zero_shot"] = ZeroShot(tuple(labels), template or DEFAULT_TEMPLATE)
        if values.get("output") is not None:  # as typed: "newdir/" keeps its slash
            values.setdefault("output_name", os.fspath(values["output"]))
        for name in ("output", "report", "organize"):
            if values.get(name) is not None:
                values[name] = Path(values[name])
        return cls(**values)

    def records_settings(self) -> dict[str, Any]:
        """The options a resumed output must share with the run that began it (its
        metadata records them; ``claim_output`` checks them)."""
        return {
            "model": self.model,
            "top_k": self.top_k,
            "min_score": self.min_score,
            "zero_shot": None if self.zero_shot is None else self.zero_shot.meta(),
        }

    def model_options(self) -> dict[str, Any]:
        """The options ``load_classifier`` takes besides the model's name."""
        zero_shot = self.zero_shot
        return {
            "labels": None if zero_shot is None else list(zero_shot.labels),
            "template": None if zero_shot is None else zero_shot.template,
            "revision": self.revision,
            "device": self.device,
            "precision": self.precision,
            "exact": self.exact,
            "offline": self.offline,
            "compile_model": self.compile_model,
            "trust_remote_code": self.trust_remote_code,
        }

    def check(self, inputs: list[str], dataset: str | None) -> None:
        """Refuse what cannot be done, before anything slow (``dataset``: the one to
        classify, from ``dataset_name``)."""
        from ..runtimes.classifier import check_model_options

        if not inputs and dataset is None:
            raise UsageError(
                "no inputs: name image files, folders or globs, '-' for stdin, or --dataset"
            )
        if self.null and "-" not in inputs:
            raise UsageError("-0/--null only applies to '-' (paths read from stdin)")
        check_model_options(self.device, self.precision, self.exact)
        if not 0.0 <= self.min_score <= 1.0:  # NaN too
            raise UsageError(f"--min-score is a score from 0 to 1, not {self.min_score:g}")
        what = "DIR" if self.engine == "ray" else "FILE"
        if self.resume and self.output is None:
            raise UsageError(f"--resume needs --output {what}")
        if self.overwrite and self.output is None and self.report is None:
            raise UsageError(f"--overwrite needs --output {what} or --report FILE")
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite contradict each other: pick one")
        if self.report is not None:
            if self.output is not None and self.output.resolve() == self.report.resolve():
                raise UsageError("--report and --output name the same file: choose two names")
            from ..output.report import check_report_path

            # --resume regenerates the report of the run it continues.
            check_report_path(self.report, replace=self.overwrite or self.resume)

    def dataset_name(self, inputs: list[str]) -> str | None:
        """The dataset to classify (--dataset, or the demo's), after checking the options
        that only make sense with one."""
        if self.demo and (self.dataset or inputs):
            raise UsageError(f"--demo classifies {DEMO_DATASET}: drop the other inputs, or --demo")
        dataset = DEMO_DATASET if self.demo else self.dataset
        if dataset is None:
            for name, value in (
                ("--split", self.split),
                ("--image-column", self.image_column),
                ("--streaming", self.streaming),
            ):
                if value:
                    raise UsageError(f"{name} only applies to --dataset")
        return dataset


# What each option means, by its long name: --help shows it, and a Python caller reads it here.
OPTION_HELP = {
    "null": "With '-': stdin paths are NUL-separated (find -print0).",
    "max-pixels": "Refuse images that would decode larger than this (large JPEGs are first "
    "decoded downscaled).",
    "dataset": "Classify a Hugging Face dataset: hub id, save_to_disk folder, folder of parquet "
    "files or imagefolder. Records are named `<dataset>:<split>:<row>` (an "
    "imagefolder's by their files, with the class folder as true_label).",
    "split": "The split. \\[default: the only one, else test, else the first]",
    "image-column": "The column of images (or of image paths, URLs or bytes). "
    "\\[default: the first Image column]",
    "streaming": "Read rows as they download, keep nothing on disk.",
    "demo": f"Try it out: classify {DEMO_DATASET}, Hugging Face's demo dataset of one "
    "cat photo, with the default model, and show a table.",
    "model": "Hugging Face image-classification model: hub id or local folder; with "
    "--labels, a zero-shot one (CLIP, SigLIP, SigLIP 2). \\[default: "
    "$RESNET_CLI_MODEL, else `resnet-classify config`'s, else microsoft/resnet-50; "
    "with --labels, OpenAI's CLIP ViT-B/32 instead of microsoft/resnet-50 and of a "
    "set default that is an image classifier]",
    "labels": "Your own classes, comma-separated ('person, receipt, cat'), scored "
    "zero-shot by a CLIP or SigLIP model as transformers' zero-shot pipeline does.",
    "labels-file": "Your own classes from a text file, one a line.",
    "template": "With --labels: the sentence each label is put in ({} is the label). "
    f"\\[default: '{DEFAULT_TEMPLATE}']",
    "revision": "Hub revision: branch, tag or commit. \\[default: main]",
    "top-k": "Labels per image (capped at the model's).",
    "min-score": "Leave out labels scoring under S (0 to 1), in every format, --xmp and "
    "--organize. An image left with none keeps its record, as one to review (review: "
    "a top-1 under 0.5 or under 0.1 ahead of the next label kept; so above 0.5 the "
    "floor is the review bar). \\[default: 0]",
    "exact": "Reference path: the model's own image processor on fully decoded images, fp32; "
    "scores match transformers.pipeline within 1e-4.",
    "category": "A coarse category for each label (dog, cat, vehicle, food, ...: 28, from "
    "WordNet) in the records, the table and the report. \\[default: on for models "
    "whose labels are ImageNet-1k's]",
    "trust-remote-code": "Let the model's own Python code run (a model whose config.json "
    "names code in its auto_map needs it). Off: such a model is refused; nothing from a model's "
    "files ever runs.",
    "offline": "No network at all: models from the local cache or a folder, no image URLs. "
    "HF_HUB_OFFLINE=1 only keeps the hub offline.",
    "json": "Same as -f json.",
    "output": "Write the records to FILE ('-': stdout), never overwriting one silently, and "
    "what made them to FILE.meta.json.",
    "resume": "With -o (jsonl or csv): skip the inputs already classified there, retry the "
    "failed ones, append the rest.",
    "overwrite": "With -o or --report: replace an existing file.",
    "report": "Also write an HTML contact sheet of the results: thumbnails grouped by label, "
    "doubtful ones first.",
    "xmp": "Also put each local image's labels in its XMP sidecar, for photo managers: "
    "dc:subject (labels), lr:hierarchicalSubject (category|label), the model and date. "
    "Updates only the keywords it added before; never changes the image or anything "
    "else in a sidecar, and leaves one it cannot parse alone (the record's xmp_error).",
    "xmp-name": "The sidecar's name: full, IMG_1.jpg.xmp (darktable, digiKam), or stem, "
    "IMG_1.xmp (Lightroom, exiftool). \\[default: full]",
    "quiet": "No progress bar or summary on stderr.",
    "device": "auto (cuda if available, else cpu), cpu, cuda, cuda:N or mps.",
    "precision": "auto, fp32, bf16, fp16 or int8; auto is the fastest accurate one for the "
    "device (never slower than fp32). int8: CPU only, calibrated on the first run's "
    "first 64 images and kept only if it agrees with fp32 on them.",
    "batch-size": "Images per forward pass. \\[default: auto]",
    "workers": "Decode workers. \\[default: auto]",
    "compile": "Compile the model with torch.compile (slower start, faster after).",
    "organize": "Also sort the images into DIR/CATEGORY/NAME (or DIR/LABEL/NAME), failed ones "
    "into DIR/_failed/, doubtful ones into DIR/_review/. Never overwrites; files in DIR "
    "(however DIR is named) are never inputs.",
    "organize-by": "category or label. \\[default: category where the model has them, else label]",
    "organize-mode": "link (a hard link, else a symlink), symlink, copy, or move (needs -o): a "
    "file moves once its record is on disk, and its source is removed only once a regular "
    "file at the destination holds its bytes (a symlink never does); only this run's "
    "inputs are moved. \\[default: link]",
    "dry-run": "Print the plan (SOURCE -> DEST), touch nothing.",
    "engine": "local: this machine. ray: a Ray cluster, with Ray Data; needs -o DIR, a folder "
    "of parquet (default) or jsonl shards.",
    "ray-address": "The cluster's HOST:PORT or ray://HOST:PORT. \\[default: $RAY_ADDRESS, else "
    "a Ray started on this machine]",
    "version": "Print the version and exit.",
}
