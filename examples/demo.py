"""The project's demo through the library API: classify the huggingface/cats-image dataset (the
seed example's cat) with microsoft/resnet-50 and print the top-5 as a table.

    python examples/demo.py                                   # what `resnet-classify --demo` does
    python examples/demo.py --dataset ./my-saved-dataset --model ./my-resnet   # local copies

Both come from the Hugging Face hub; without network access (and no cached copy) this script
says so in one line and exits 3, as the CLI does.
"""

from __future__ import annotations

import argparse
import sys

from resnet_cli import ResnetCliError, classify, load_classifier, open_dataset
from resnet_cli.inputs.datasets import DEMO_DATASET
from resnet_cli.output.writers import create_writer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=DEMO_DATASET)
    parser.add_argument("--model", default="microsoft/resnet-50")
    parser.add_argument("--top-k", type=int, default=5)
    args = parser.parse_args()
    try:
        rows = open_dataset(args.dataset)  # the only split, else 'test', else the first
        classifier = load_classifier(args.model)
        records = list(classify(classifier, [rows], top_k=args.top_k))
    except ResnetCliError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 3
    table = create_writer("table", sys.stdout)
    table.write(records)
    table.close()
    return 0 if all(r.ok for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
