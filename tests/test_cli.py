"""The command end to end through Typer's CliRunner: formats, exit codes, errors, options."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import LABELS, imported, run_probing_imports
from resnet_cli.cli.classify import app
from resnet_cli.output.writers import CSV_HEADER, read_records

runner = CliRunner()


def invoke(*args: str, stdin: bytes | None = None):
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def base(model: Path) -> list[str]:
    return ["-m", str(model), "--offline", "-q"]


def check_predictions(record: dict, top_k: int) -> None:
    predictions = record["predictions"]
    assert [p["rank"] for p in predictions] == list(range(1, top_k + 1))
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores) and sum(scores) <= 1.0 + 1e-5
    for p in predictions:
        assert p["label"] == LABELS[p["class_id"]]


def test_jsonl_one_record_per_input_in_order(tiny_model: Path, images: list[Path]) -> None:
    result = invoke(*base(tiny_model), "-f", "jsonl", "-k", "3", *images)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(p) for p in images]
    for record in records:
        check_predictions(record, top_k=3)
    # Different pictures get different scores: nothing was substituted or reused.
    assert len({r["predictions"][0]["score"] for r in records}) == len(images)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_every_format_parses_back_to_the_same_records(
    fmt: str, tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    inputs = [*images[:2], broken, images[2]]
    reference = invoke(*base(tiny_model), "-f", "jsonl", *inputs)
    expected = read_records(reference.stdout, "jsonl")
    result = invoke(*base(tiny_model), "-f", fmt, *inputs)
    assert result.exit_code == 1
    assert read_records(result.stdout, fmt) == expected
    assert [r.input for r in expected] == [str(p) for p in inputs]
    assert expected[2].error is not None and "not a readable image" in expected[2].error
    assert all(r.ok for i, r in enumerate(expected) if i != 2)


def test_csv_layout_matches_the_contract(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    empty = tmp_path / 'empty, "quoted".jpg'
    empty.write_bytes(b"")
    result = invoke(*base(tiny_model), "-f", "csv", "-k", "2", images[0], empty)
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert tuple(rows[0]) == CSV_HEADER
    assert [r[:2] for r in rows[1:3]] == [[str(images[0]), "1"], [str(images[0]), "2"]]
    assert rows[3] == [str(empty), "", "", "", "", "not a readable image: the file is empty"]
    assert result.stdout_bytes.count(b"\r\n") == 4  # RFC 4180 line endings


def test_json_is_one_array(tiny_model: Path, images: list[Path]) -> None:
    result = invoke(*base(tiny_model), "-f", "json", *images[:2])
    data = json.loads(result.stdout)
    assert isinstance(data, list) and [d["input"] for d in data] == [str(p) for p in images[:2]]


def test_format_and_output_extension_must_agree(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "x.jsonl"
    clash = invoke(*base(tiny_model), "-o", out, "-f", "csv", images[0])
    assert clash.exit_code == 2 and not out.exists()
    assert clash.stderr == (
        f"Error: -f csv and -o {str(out)!r} disagree (.jsonl is jsonl): drop -f, or write to "
        f"{str(tmp_path / 'x.csv')!r}\n"
    )
    # An extension that names no format leaves -f free; a matching one is fine.
    for name in ("x.txt", "x.csv"):
        result = invoke(*base(tiny_model), "-o", tmp_path / name, "-f", "csv", images[0])
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).read_text().startswith("input,rank,label")


def test_json_flag_is_format_json(tiny_model: Path, images: list[Path]) -> None:
    expected = invoke(*base(tiny_model), "-f", "json", *images[:2]).stdout
    assert json.loads(expected)
    assert invoke(*base(tiny_model), "--json", *images[:2]).stdout == expected
    assert invoke(*base(tiny_model), "--json", "-f", "json", *images[:2]).stdout == expected
    clash = invoke(*base(tiny_model), "--json", "-f", "csv", *images[:2])
    assert clash.exit_code == 2 and clash.stdout == ""
    assert clash.stderr == "Error: --json means -f json, not -f csv: pass one of the two\n"


def test_table_for_one_image_and_for_many(tiny_model: Path, images: list[Path]) -> None:
    one = invoke(*base(tiny_model), "-f", "table", "-k", "3", images[0])
    assert one.exit_code == 0
    top = json.loads(invoke(*base(tiny_model), "-f", "jsonl", "-k", "3", images[0]).stdout)
    for p in top["predictions"]:
        assert p["label"] in one.stdout and f"{p['score']:.4f}" in one.stdout
    many = invoke(*base(tiny_model), "-f", "table", *images)
    # One table with one row per image, not a table per image.
    assert many.stdout.count("top-1") == 1
    for path in images:
        assert path.name in many.stdout


def test_top_k_is_capped_at_the_number_of_labels(tiny_model: Path, images: list[Path]) -> None:
    result = invoke(*base(tiny_model), "-f", "jsonl", "-k", "50", images[0])
    assert len(json.loads(result.stdout)["predictions"]) == len(LABELS)


def test_multi_label_model_uses_sigmoid(multi_label_model: Path, images: list[Path]) -> None:
    result = invoke(*base(multi_label_model), "-f", "jsonl", "-k", "6", images[0])
    scores = [p["score"] for p in json.loads(result.stdout)["predictions"]]
    assert sum(scores) > 1.0  # independent sigmoids, not a softmax that sums to one


def test_output_file_is_written_and_never_overwritten(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "labels.csv"
    first = invoke(*base(tiny_model), "-o", out, images[0])
    assert first.exit_code == 0 and first.stdout == ""
    assert out.read_text().startswith("input,rank,label")  # format from the extension
    before = out.read_bytes()
    second = invoke(*base(tiny_model), "-o", out, images[1])
    assert second.exit_code == 2
    assert "exists" in second.stderr
    assert out.read_bytes() == before


def test_stdin_newline_and_nul(tiny_model: Path, images: list[Path]) -> None:
    lines = "".join(f"{p}\n" for p in images[:3]).encode()
    result = invoke(*base(tiny_model), "-f", "jsonl", "-", stdin=lines)
    assert [json.loads(x)["input"] for x in result.stdout.splitlines()] == [
        str(p) for p in images[:3]
    ]
    nul = b"".join(bytes(p) + b"\0" for p in images[:3])
    result = invoke(*base(tiny_model), "-f", "jsonl", "-", "-0", stdin=nul)
    assert [json.loads(x)["input"] for x in result.stdout.splitlines()] == [
        str(p) for p in images[:3]
    ]


def test_batching_does_not_change_results(tiny_model: Path, images: list[Path]) -> None:
    one = invoke(*base(tiny_model), "-f", "jsonl", "-b", "1", "-j", "1", *images)
    big = invoke(*base(tiny_model), "-f", "jsonl", "-b", "4", "-j", "2", *images)
    a, b = read_records(one.stdout, "jsonl"), read_records(big.stdout, "jsonl")
    assert [r.input for r in a] == [r.input for r in b]
    for x, y in zip(a, b, strict=True):
        assert [p.class_id for p in x.predictions] == [p.class_id for p in y.predictions]
        for p, q in zip(x.predictions, y.predictions, strict=True):
            assert p.score == pytest.approx(q.score, abs=1e-4)


def test_summary_goes_to_stderr_and_quiet_silences_it(tiny_model: Path, images: list[Path]) -> None:
    loud = invoke("-m", tiny_model, "--offline", "-f", "jsonl", *images[:2])
    assert "2 inputs: 2 classified, 0 failed in " in loud.stderr and "images/s" in loud.stderr
    assert all(line.startswith("{") for line in loud.stdout.splitlines())
    quiet = invoke(*base(tiny_model), "-f", "jsonl", *images[:2])
    assert quiet.stderr == ""


SUMMARY = re.compile(
    r"(?P<inputs>\d+) inputs?: (?P<classified>\d+) classified( \(\d+ to review\))?, "
    r"(?P<failed>\d+) failed in (?P<seconds>[0-9.]+)s \([0-9.]+ images/s; cpu, \w+, \w+\)"
)


def summary_of(stderr: str) -> dict[str, str]:
    """The closing summary's counts and seconds; it must be stderr's one line."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    found = SUMMARY.fullmatch(lines[0])
    assert found is not None, lines[0]
    return found.groupdict()


def test_summary_counts_inputs_classified_and_failed(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    some = invoke("-m", tiny_model, "--offline", "-f", "jsonl", images[0], broken, images[1])
    assert some.exit_code == 1
    counts = summary_of(some.stderr)
    assert (counts["inputs"], counts["classified"], counts["failed"]) == ("3", "2", "1")
    every = invoke("-m", tiny_model, "--offline", "-f", "jsonl", broken)
    assert every.exit_code == 1
    assert every.stderr.startswith("1 input: 0 classified, 1 failed in "), every.stderr


def test_summary_time_includes_the_model_load(
    tiny_model: Path, images: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import resnet_cli.runtimes.classifier as classifier_module

    load = classifier_module.load_classifier

    def slow_load(*args: object, **kwargs: object) -> object:
        time.sleep(0.5)
        return load(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "load_classifier", slow_load)
    result = invoke("-m", tiny_model, "--offline", "-f", "jsonl", images[0])
    assert result.exit_code == 0, result.stderr
    assert float(summary_of(result.stderr)["seconds"]) >= 0.5


def test_the_summary_comes_last_and_counts_the_export_a_first_run_saves(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    cache = tmp_path / "cache"  # none of the session's: this is the model's first run here
    env = {**os.environ, "RESNET_CLI_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "resnet_cli", "-m", str(tiny_model), "--offline", "-f", "jsonl",
         *map(str, images[:2])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert child.stderr is not None
    summary = child.stderr.readline()
    exports_when_said = list(cache.glob("onnx/*.onnx"))  # as the summary line arrives
    rest = child.stderr.read()
    assert child.wait(timeout=300) == 0, rest
    took = time.perf_counter() - started
    assert summary.startswith("2 inputs: 2 classified"), summary
    assert exports_when_said, "the summary came before the export was saved"
    assert rest == ""  # nothing after the summary
    assert float(summary_of(summary)["seconds"]) <= took


def test_summary_line_shapes() -> None:
    from resnet_cli.cli._console import summary_line

    assert summary_line(54, 2, 2.2, "cpu, bf16, torch", review=3) == (
        "54 inputs: 52 classified (3 to review), 2 failed in 2.2s (24.5 images/s; cpu, bf16, torch)"
    )
    assert summary_line(1, 1, 20.0, "ray, 2 nodes", interrupted=True, report=Path("r.html")) == (
        "interrupted after 1 input: 0 classified, 1 failed in 20.0s (0.05 images/s; ray, 2 nodes)"
        "; report written to r.html"
    )


@pytest.mark.parametrize("total", [10, None])
def test_progress_bar_shows_count_rate_and_times(total: int | None) -> None:
    from rich.console import Console

    from resnet_cli.cli._progress import create_progress

    clock = [100.0]
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=100)
    progress = create_progress(console, get_time=lambda: clock[0], auto_refresh=False)
    task = progress.add_task("Classifying", total=total)
    for _ in range(5):
        clock[0] += 0.5
        progress.advance(task, 1)
    console.print(progress.get_renderable())
    line = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert ("5/10" if total else " 5 ") in line, line
    assert re.search(r"2\.0 images/s", line), line  # one image every half second
    assert "0:02 elapsed" in line, line
    assert ("0:03 left" in line) == (total is not None), line  # 5 more at 2 a second
    assert len(line.rstrip("\n")) <= 80, line  # one line on an 80-column terminal


def test_table_has_no_count_line_on_stdout(tiny_model: Path, images: list[Path]) -> None:
    # -f table is what a terminal gets by default; the counts are the stderr summary's alone.
    for inputs in (images[:1], images):  # a detailed table, and one row per image
        result = invoke("-m", tiny_model, "--offline", "-f", "table", *inputs)
        assert result.exit_code == 0, result.stderr
        assert "failed" not in result.stdout and "to review" not in result.stdout
        assert summary_of(result.stderr)["inputs"] == str(len(inputs))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no inputs"),
        (["missing.jpg"], "no image found: missing.jpg: no such file or directory"),
        (["--device", "tpu", "x.jpg"], "unknown device 'tpu'"),
        (["--exact", "-p", "bf16", "x.jpg"], "--exact computes in fp32"),
        (["-0", "x.jpg"], "-0/--null only applies to '-'"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str, tiny_model: Path) -> None:
    result = invoke("-m", tiny_model, "--offline", *args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"Error: {message}"] or message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("typed", "command"),
    [
        ("reprot", "report"),
        ("repor", "report"),
        ("Report", "report"),
        ("evn", "env"),
        ("merg", "merge"),
        ("mrege", "merge"),
        ("report", "report"),
    ],
)
def test_a_mistyped_command_is_said_before_anything_loads(
    typed: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No -m: the default model, which a run would first ask the hub for.
    monkeypatch.chdir(tmp_path)
    result = run_probing_imports(["-q", typed, "out.jsonl"], env=dict(os.environ))
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"Error: no such file {typed!r} (did you mean the command {command!r}?)"
    )
    assert not imported(result)["torch"] and not imported(result)["transformers"]


def test_a_file_named_like_a_command_is_classified(
    tiny_model: Path, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("reprot").write_bytes(images[0].read_bytes())
    result = invoke(*base(tiny_model), "reprot", "repotr.jpg")  # one there, one far from any
    assert result.exit_code == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == ["reprot", "repotr.jpg"]
    assert "predictions" in records[0] and "no such file" in records[1]["error"]
    assert "did you mean" not in result.stderr


def test_one_edit_apart() -> None:
    from resnet_cli.text import within_one_edit

    for typed in ("report", "reprot", "rpeort", "repor", "reportt", "xreport", "rport"):
        assert within_one_edit(typed, "report"), typed
    for typed in ("roprte", "rep", "repo", "reporting", "tropre", "image.jpg"):
        assert not within_one_edit(typed, "report"), typed


def test_no_cuda_is_exit_3(tiny_model: Path, images: list[Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = invoke(*base(tiny_model), "-d", "cuda", images[0])
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: --device cuda was asked for, but no CUDA device")


def test_model_that_cannot_be_had_is_exit_3(tmp_path: Path, images: list[Path]) -> None:
    cases = {
        "microsoft/resnet-50": "is not in the local cache and offline mode is on: run once with "
        "network access, or pass --model PATH to a folder written by save_pretrained() (the "
        "README's 'Try it offline' makes one)",
        str(tmp_path): "has no config.json",
        str(tmp_path / "nowhere"): "no such model folder",
    }
    for model, message in cases.items():
        result = invoke("-m", model, "--offline", images[0])
        assert result.exit_code == 3, result.output
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_folder_without_weights_is_exit_3(
    tiny_model: Path, tmp_path: Path, images: list[Path]
) -> None:
    import shutil

    broken = tmp_path / "no-weights"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").unlink()
    result = invoke("-m", broken, "--offline", images[0])
    assert result.exit_code == 3
    assert "weights missing" in result.stderr


def test_version() -> None:
    from resnet_cli import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"resnet-classify {__version__}"


def test_short_version() -> None:
    assert invoke("-V").stdout == invoke("--version").stdout != ""


def help_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> str:
    from resnet_cli.cli import main

    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_fits_80_columns_in_panels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    text = help_at_80_columns(monkeypatch, capsys)
    assert max(len(line) for line in text.splitlines()) <= 80
    words = text.replace("│", " ").split()
    flat = " ".join(words)
    assert (
        "Records are named <dataset>:<split>:<row> (an imagefolder's by their files" in flat
    )  # not eaten as markup
    for panel in ("Arguments", "Options", "Inputs", "Datasets", "Model", "Output", "Speed"):
        assert f"╭─ {panel} ─" in text
    assert "╭─ Sorting ─" in text and "╭─ Ray ─" in text
    assert "Usage: resnet-classify [OPTIONS] [INPUTS]..." in text
    for command in ("report", "env", "merge"):
        assert f"resnet-classify {command} (" in flat.split("Arguments")[0]
    assert "Examples" in text.split("╰")[-1]  # the examples come last
    general = text.split("╭─ Options ─")[1].split("╰")[0]
    assert "--install-completion" in general and "--show-completion" in general
    # No word is cut (pa|rquet) or cropped (image-classificat…): every word of every option's
    # help is whole on some line.
    for param in typer.main.get_command(app).params:
        for word in (param.help or "").replace("\\[", "[").replace("`", "").split():
            assert word in words, (param.name, word)


def test_show_completion_prints_the_shells_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer.completion

    from resnet_cli.cli import main

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: "bash")
    with pytest.raises(SystemExit) as exit_info:
        main(["--show-completion"])
    assert exit_info.value.code == 0
    script = capsys.readouterr().out
    assert "complete -o default -F _resnet_classify_completion resnet-classify" in script
    assert "_RESNET_CLASSIFY_COMPLETE=complete_bash" in script


def test_report_and_merge_usage_lines(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = help_at_80_columns(monkeypatch, capsys, "report")
    merge = help_at_80_columns(monkeypatch, capsys, "merge")
    for text, usage in (
        (report, "Usage: resnet-classify report [OPTIONS] RESULTS..."),
        (merge, "Usage: resnet-classify merge [OPTIONS] FOLDER"),
    ):
        assert usage in [line.strip() for line in text.splitlines()]
        assert "{" not in text and max(len(line) for line in text.splitlines()) <= 80


def test_parquet_round_trips_into_datasets(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    from datasets import Dataset

    from resnet_cli.output.writers import read_parquet_records

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    inputs = [*images[:3], broken]
    expected = read_records(
        invoke(*base(tiny_model), "-f", "jsonl", "-k", "3", *inputs).stdout, "jsonl"
    )
    out = tmp_path / "labels.parquet"
    result = invoke(
        *base(tiny_model), "-k", "3", "-b", "2", *inputs, "-o", out
    )  # format from .parquet
    assert result.exit_code == 1
    assert read_parquet_records(str(out)) == expected
    rows = Dataset.from_parquet(str(out)).to_list()
    assert [r["input"] for r in rows] == [str(p) for p in inputs]
    assert rows[0]["labels"] == [p.label for p in expected[0].predictions]
    assert rows[0]["class_ids"] == [p.class_id for p in expected[0].predictions]
    assert rows[-1]["labels"] == [] and "not a readable image" in rows[-1]["error"]


def test_parquet_needs_an_output_file(tiny_model: Path, images: list[Path]) -> None:
    result = invoke(*base(tiny_model), "-f", "parquet", images[0])
    assert result.exit_code == 2
    assert "--format parquet writes a binary file: add --output" in result.stderr
