"""The whole command from Python: label a folder into a JSON Lines file with an HTML report,
and continue where an interrupted run stopped.

    python examples/resume_and_report.py photos/ labels.jsonl report.html [--model M]

Run it again after Ctrl-C (or after adding photos): the photos already in labels.jsonl are
skipped, the rest appended, and the report is written anew over the whole file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resnet_cli import ResnetCliError, run
from resnet_cli.errors import exit_code


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("output", type=Path)
    parser.add_argument("report", type=Path)
    parser.add_argument("--model", default="microsoft/resnet-50")
    args = parser.parse_args()
    try:
        result = run(
            [args.folder],
            model=args.model,
            output=args.output,
            resume=args.output.exists(),  # an earlier run's file: continue it
            report=args.report,
            top_k=3,
        )
    except ResnetCliError as exc:  # what the command prints as "Error: ..."
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    if result.nothing_to_do:
        print(f"every photo is already in {args.output}")
    else:
        print(f"{result.inputs} photos labelled ({result.failed} failed) in {result.elapsed:.1f}s")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
