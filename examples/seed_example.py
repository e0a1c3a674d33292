"""The seed example (AutoImageProcessor + ResNetForImageClassification on one cat picture, label
from id2label), done through resnet-classify's library API.

    python examples/seed_example.py                      # huggingface/cats-image, like the seed
    python examples/seed_example.py examples/images/chelsea.jpg
    python examples/seed_example.py cat.jpg --model ./my-resnet   # a local model folder

The seed code loads the dataset and model from the hub; without network access (and no cached
copy) this script says so in one line and exits 3, as the CLI does.
"""

from __future__ import annotations

import argparse
import sys

from resnet_cli import ResnetCliError, classify, load_classifier


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="an image file (default: huggingface/cats-image)")
    parser.add_argument("--model", default="microsoft/resnet-50")
    args = parser.parse_args()
    try:
        classifier = load_classifier(args.model)
        if args.image:
            inputs: list[object] = [args.image]
        else:
            from datasets import load_dataset

            inputs = [load_dataset("huggingface/cats-image")["test"]["image"][0]]
        (record,) = classify(classifier, inputs, top_k=1)
    except ResnetCliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # datasets raises its own errors when the hub cannot be reached
        print(
            f"Error: could not load huggingface/cats-image: {exc}".splitlines()[0], file=sys.stderr
        )
        return 3
    if not record.ok:
        print(f"Error: {record.error}", file=sys.stderr)
        return 1
    # The seed prints model.config.id2label[logits.argmax(-1).item()]: the top-1 label.
    print(record.predictions[0].label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
