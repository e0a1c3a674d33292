"""Label a folder with the library API and write a CSV of file -> top-1 label and score.

python examples/label_folder.py photos/ labels.csv [--model microsoft/resnet-50]
"""

from __future__ import annotations

import argparse
import csv

from resnet_cli import classify, load_classifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("output")
    parser.add_argument("--model", default="microsoft/resnet-50")
    args = parser.parse_args()

    classifier = load_classifier(args.model)  # device and precision: auto
    with open(args.output, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "label", "score"])
        # Records come back in input order, one per file; a broken file has .error instead.
        for record in classify(classifier, [args.folder], top_k=1):
            if record.ok:
                best = record.predictions[0]
                writer.writerow([record.input, best.label, f"{best.score:.4f}"])
            else:
                writer.writerow([record.input, "", record.error])


if __name__ == "__main__":
    main()
