"""The Ray engine's results folder without a cluster: reading shards in input order, getting a
folder ready for --resume (torn shards, failed records), the merge command, and the command's
usage errors for --engine ray. None of this needs Ray installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from resnet_cli.cli.classify import app
from resnet_cli.cli.merge import merge_app
from resnet_cli.errors import ClusterError, ModelLoadError, UsageError
from resnet_cli.output import shards
from resnet_cli.output.shards import prepare_output_folder, read_ray_output, shard_paths
from resnet_cli.output.writers import read_records, record_json, record_schema, records_table
from resnet_cli.pipeline import ray_job
from resnet_cli.pipeline.ray_job import NEEDS_RAY
from resnet_cli.results import Prediction, Record

runner = CliRunner()


def ok(name: str, class_id: int = 1) -> Record:
    return Record(input=name, predictions=(Prediction(1, "cat", 0.75, class_id),))


def failed(name: str) -> Record:
    return Record(input=name, error="not a readable image: truncated image data")


def write_parquet_shard(path: Path, rows: list[tuple[int, Record]]) -> None:
    pq.write_table(records_table([r for _, r in rows], [i for i, _ in rows]), path)


def write_jsonl_shard(path: Path, rows: list[tuple[int, Record]]) -> None:
    path.write_text("".join(record_json(r, i) + "\n" for i, r in rows))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Shards as two runs of the Ray engine leave them: out of order, both formats, a failure,
    one shard whose error column is all null, and a name that is not UTF-8."""
    out = tmp_path / "results"
    out.mkdir()
    write_parquet_shard(out / "b_000001-0.parquet", [(3, ok("d.jpg")), (1, failed("b.jpg"))])
    write_parquet_shard(out / "a_000000-0.parquet", [(0, ok("a.jpg")), (5, ok("f\udcff.jpg"))])
    write_jsonl_shard(out / "c_000000.jsonl", [(4, ok("e.jpg", 2)), (2, ok("c.jpg"))])
    return out


def test_records_come_back_in_input_order_whatever_the_shards(folder: Path) -> None:
    records = read_ray_output(folder)
    assert [r.input for r in records] == [
        "a.jpg",
        "b.jpg",
        "c.jpg",
        "d.jpg",
        "e.jpg",
        "f\udcff.jpg",  # not UTF-8: its bytes kept in input_bytes, as --format parquet does
    ]
    assert records[1].error is not None and records[4].predictions[0].class_id == 2
    # One schema for every parquet shard: read as one dataset, whose schema comes from the
    # first shard, the one without failures still agrees with the others.
    shards = sorted(str(p) for p in folder.glob("*.parquet"))
    table = pyarrow.dataset.dataset(shards, format="parquet").to_table()
    assert table.num_rows == 4 and table.schema.field("error").type == "string"
    assert table.schema.remove_metadata() == record_schema(indexed=True)


def test_resume_sets_torn_shards_aside_and_drops_failures(folder: Path) -> None:
    (folder / "d_000000-0.parquet").write_bytes(b"PAR1 cut short")  # a write killed midway
    with (folder / "c_000000.jsonl").open("a") as shard:
        shard.write('{"index": 6, "input": "g.jp')  # a torn last line
    with pytest.raises(UsageError, match="torn"):
        read_ray_output(folder)

    done = prepare_output_folder(folder, resume=True)

    assert done == {"a.jpg", "c.jpg", "d.jpg", "e.jpg", "f\\udcff.jpg"}  # b failed: retried
    assert (folder / ".d_000000-0.parquet.torn").exists()  # hidden from pyarrow and pandas
    assert [shards.output_key(r.input) for r in read_ray_output(folder)] == sorted(done)
    assert "g.jp" not in (folder / "c_000000.jsonl").read_text()
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == [
        ".d_000000-0.parquet.torn"  # and no temporary file left behind
    ]


def test_an_existing_folder_needs_resume_or_overwrite(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--resume .* --overwrite"):
        prepare_output_folder(folder)
    (folder / "notes.txt").write_text("mine")
    assert prepare_output_folder(folder, overwrite=True) == set()
    assert shard_paths(folder) == [] and (folder / "notes.txt").exists()
    a_file = tmp_path / "labels.parquet"
    a_file.write_bytes(b"")
    with pytest.raises(UsageError, match="is a file"):
        prepare_output_folder(a_file)
    assert prepare_output_folder(tmp_path / "new") == set()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_merge_writes_one_file_in_input_order(fmt: str, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / f"merged.{fmt}"
    result = runner.invoke(merge_app, [str(folder), "-o", str(out)])
    assert result.exit_code == 0, result.output
    # CSV keeps a name that is not UTF-8 as its bytes (jsonl and json as \\udcXX escapes).
    text = out.read_text(encoding="utf-8", errors="surrogateescape")
    assert read_records(text, fmt) == read_ray_output(folder)
    again = runner.invoke(merge_app, [str(folder), "-o", str(out)])
    assert again.exit_code == 2
    assert again.stderr == f"Error: output file {str(out)!r} exists: choose another name\n"


def test_merge_of_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(merge_app, [str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: no results folder at {str(tmp_path / 'nope')!r}"


@pytest.mark.parametrize(
    "command",
    [["-m", "resnet_cli", "merge"], ["-m", "resnet_cli.ray_engine", "merge"]],
    ids=["resnet-classify merge", "the old python -m resnet_cli.ray_engine merge"],
)
def test_merge_is_a_command_of_resnet_classify(
    command: list[str], folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "merged.csv"
    result = subprocess.run(
        [sys.executable, *command, str(folder), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8", errors="surrogateescape")
    assert read_records(text, "csv") == read_ray_output(folder)
    missing = subprocess.run(
        [sys.executable, *command, str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("Error: no results folder at ")


def test_merge_of_a_folder_without_shards_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not records")
    result = runner.invoke(merge_app, [str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: no shards in {str(tmp_path)!r}: name the folder an --engine ray run wrote "
        "(its -o DIR)\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("name", ["labels.jsonl", "labels.parquet", "notes.jsonl"])
def test_a_file_that_is_no_shard_is_named_so_and_kept(
    name: str, folder: Path, tmp_path: Path
) -> None:
    # A local run's results (or any file named like a shard) in the folder: merge, --resume
    # and --overwrite each refuse it, saying what it is, and leave it where it was.
    stranger = folder / name
    records = [ok("x.jpg"), failed("y.jpg")]
    if name == "labels.parquet":
        pq.write_table(records_table(records), stranger)  # no index column
    elif name == "labels.jsonl":
        stranger.write_text("".join(record_json(r) + "\n" for r in records))
    else:
        stranger.write_text("some other tool's lines\n")
    content = stranger.read_bytes()
    message = (
        f"{str(stranger)!r} is not a shard of an --engine ray run (its records have no index): "
        "move it out of the folder"
    )
    merged = runner.invoke(merge_app, [str(folder)])
    assert merged.exit_code == 2
    assert merged.stderr == f"Error: {message}\n"
    for flag in ("resume", "overwrite"):
        with pytest.raises(UsageError) as refused:
            prepare_output_folder(folder, **{flag: True})
        assert str(refused.value) == message
    assert stranger.read_bytes() == content
    assert len(shard_paths(folder)) == 4  # the three shards, untouched, and it


def test_merge_stdout_is_jsonl(folder: Path) -> None:
    result = runner.invoke(merge_app, [str(folder)])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["input"] for line in lines][:2] == ["a.jpg", "b.jpg"]


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def with_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Usage errors come before Ray is imported: they do not need it installed."""
    monkeypatch.setattr(ray_job, "ray_available", lambda: True)


def test_usage_errors_name_what_works(with_ray: None, tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"")
    no_output = cli("--engine", "ray", image)
    assert no_output.exit_code == 2 and "needs --output DIR" in no_output.stderr
    csv = cli("--engine", "ray", image, "-o", tmp_path / "out", "-f", "csv")
    assert csv.exit_code == 2
    assert "writes parquet or jsonl shards, not csv" in csv.stderr and "merge" in csv.stderr
    local = cli("--ray-address", "head:6379", image)
    assert local.exit_code == 2 and "only applies to --engine ray" in local.stderr
    resume = cli("--engine", "ray", image, "--resume")
    assert resume.exit_code == 2 and "--resume needs --output DIR" in resume.stderr
    workers = cli("--engine", "ray", image, "-o", tmp_path / "out", "-j", "2")
    assert workers.exit_code == 2 and "decoding runs in Ray tasks" in workers.stderr


def test_existing_results_need_resume_and_nothing_to_do_is_exit_0(
    with_ray: None, tmp_path: Path
) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"")
    folder = tmp_path / "results"
    folder.mkdir()
    write_jsonl_shard(folder / "x.jsonl", [(0, ok(str(image)))])
    busy = cli("--engine", "ray", image, "-o", folder)
    assert busy.exit_code == 2 and "not empty" in busy.stderr
    done = cli("--engine", "ray", "--resume", image, "-o", folder)
    assert done.exit_code == 0 and "nothing to do" in done.stderr


def test_without_ray_the_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ray_job, "ray_available", lambda: False)
    result = cli("--engine", "ray", tmp_path, "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "Error: --engine ray needs Ray: pip install '.[ray]' in your resnet-classify clone "
        "(it adds ray[data])"
    )
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is missing
    with pytest.raises(UsageError, match=r"pip install '\.\[ray\]'") as error:
        ray_job.import_ray()
    assert str(error.value) == NEEDS_RAY


def test_a_model_actor_that_cannot_load_is_the_model_error() -> None:
    text = (
        "The actor died because of an error raised in its creation task\n"
        "  File ...\n"
        "resnet_cli.errors.ModelLoadError: model folder '/m' does not exist: check the path\n"
    )
    error = ray_job._job_failure(RuntimeError(text), "out")
    assert isinstance(error, ModelLoadError)
    assert str(error) == "on a Ray node: model folder '/m' does not exist: check the path"
    other = ray_job._job_failure(RuntimeError("OutOfDiskError: disk full"), "out")
    assert isinstance(other, ClusterError) and "--resume" in str(other)


def test_true_labels_travel_through_the_job_rows_and_merge(tmp_path: Path) -> None:
    # An imagefolder's class rides along with each input row and its decoded row, as the
    # actors' records need it; a merged CSV gets the optional columns its records have.
    import io

    from PIL import Image

    from resnet_cli.inputs.sources import Source

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    sources = [
        Source("pets/cat/a.png", data=buffer.getvalue(), true_label="cat"),
        Source("b.png", error="no such file or directory"),
    ]
    (table,) = ray_job._input_tables(sources, set(), 10)
    decoded = ray_job._decode_rows(table, resize=None, max_pixels=None, offline=True)
    assert decoded.column("true_label").to_pylist() == ["cat", None]
    assert decoded.column("height").to_pylist() == [8, None]

    labelled = Record("pets/cat/a.png", (Prediction(1, "tabby", 0.5, 281, "cat"),), None, "cat")
    out = tmp_path / "results"
    out.mkdir()
    write_parquet_shard(out / "a.parquet", [(0, labelled), (1, failed("b.png"))])
    merged = tmp_path / "merged.csv"
    assert runner.invoke(merge_app, [str(out), "-o", str(merged)]).exit_code == 0
    text = merged.read_text()
    assert text.splitlines()[0] == "input,rank,label,score,class_id,error,category,true_label"
    assert read_records(text, "csv") == [labelled, failed("b.png")]


def test_merge_reads_the_folder_through_output_alone() -> None:
    """The results folder's reading, resume and merge are ``output``'s (issue 25): ``merge``
    imports nothing from the Ray job, and the job no longer holds the reader."""
    from test_layout import PACKAGE, imports_of

    imported = {target for _, target in imports_of("cli.merge", PACKAGE / "cli" / "merge.py")}
    assert "output.shards" in imported
    assert not [t for t in imported if t.startswith("pipeline")], imported
    assert not hasattr(ray_job, "read_ray_output") and not hasattr(ray_job, "resume_folder")


def test_the_job_ships_the_whole_package() -> None:
    """Workers import ``resnet_cli`` (its models, runtimes, output), not one subpackage: the
    runtime env names the package's own folder."""
    import resnet_cli

    (shipped,) = ray_job.runtime_env()["py_modules"]
    assert Path(shipped) == Path(resnet_cli.__file__).parent
    assert (Path(shipped) / "models" / "__init__.py").is_file()


def test_the_placement_follows_the_cluster_and_what_was_asked() -> None:
    gpus = ray_job.place({"GPU": 4.0, "CPU": 32.0}, "auto", ray_job.RayPlacement())
    assert (gpus.on_gpu, gpus.actors, gpus.actor_options) == (True, 4, {"num_gpus": 1})
    assert "one per GPU" in gpus.reasons["actors"]
    cpus = ray_job.place({"CPU": 8.0}, "auto", ray_job.RayPlacement())
    assert (cpus.on_gpu, cpus.actors, cpus.actor_options) == (False, 4, {"num_cpus": 1})
    on_cpu = ray_job.place({"GPU": 4.0, "CPU": 32.0}, "cpu", ray_job.RayPlacement(actors=3))
    assert (on_cpu.on_gpu, on_cpu.actors, on_cpu.reasons["actors"]) == (
        False,
        3,
        "as asked (RayPlacement)",
    )
    with pytest.raises(ray_job.DeviceError, match="the Ray cluster has no GPUs"):
        ray_job.place({"CPU": 8.0}, "cuda:1", ray_job.RayPlacement())


def test_the_folder_metadata_is_kept_apart_from_the_records(folder: Path, tmp_path: Path) -> None:
    (folder / "c_000000.jsonl").unlink()  # parquet shards alone: one table
    shards.write_folder_meta(folder, {"plan": {"batch_size": 8}})
    assert shards.read_folder_meta(folder) == {"plan": {"batch_size": 8}}
    # Hidden: the folder still reads as one table of records, and merge ignores it.
    assert len(pyarrow.dataset.dataset(folder, format="parquet").to_table()) == 4
    assert len(read_ray_output(folder)) == 4
    # A folder that holds only the metadata (a run stopped before its first shard) is empty.
    started = tmp_path / "started"
    started.mkdir()
    shards.write_folder_meta(started, {})
    assert prepare_output_folder(started) == set()
    # A user's file of that name is never replaced.
    (started / shards.FOLDER_META).write_text("mine")
    with pytest.raises(UsageError, match="not the metadata file resnet-classify writes"):
        shards.write_folder_meta(started, {})
    assert (started / shards.FOLDER_META).read_text() == "mine"
