"""The ONNX Runtime path (resnet_cli.runtimes.onnx_runtime): a first run exports the model,
later runs start without torch, and the answers are the torch path's answers."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build_tiny_model, imported, run_probing_imports, scene
from resnet_cli import classify, load_classifier
from resnet_cli.models.checkpoint import local_files
from resnet_cli.runtimes import cache
from resnet_cli.runtimes import onnx_runtime as rt


@pytest.fixture
def fresh_model(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny model with an empty runtime cache of its own: as before a first run."""
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))
    return tiny_model


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = []
    for i, size in enumerate([(640, 480), (256, 256), (300, 1200), (1200, 900), (90, 60)]):
        paths.append(tmp_path / f"photo{i}.jpg")
        scene(*size, seed=20 + i).save(paths[-1], quality=92)
    return paths


def cached_exports() -> list[Path]:
    return sorted(cache.cache_dir().glob("onnx/*.onnx"))


def scores(records: list) -> list[dict[int, float]]:
    return [{p.class_id: p.score for p in r.predictions} for r in records]


def assert_same_answers(ours: list, theirs: list, tolerance: float) -> None:
    assert [r.input for r in ours] == [r.input for r in theirs]
    assert [r.ok for r in ours] == [r.ok for r in theirs]
    for mine, reference in zip(scores(ours), scores(theirs), strict=True):
        assert set(mine) == set(reference)
        assert max((abs(s - reference[c]) for c, s in mine.items()), default=0) <= tolerance


def test_first_run_exports_and_the_next_starts_without_torch(
    fresh_model: Path, photos: list[Path], tmp_path: Path
) -> None:
    env = dict(os.environ)
    args = ["-m", str(fresh_model), "-q", "-f", "jsonl", "-k", "3", *map(str, photos)]
    first = run_probing_imports(args, env)
    assert first.returncode == 0, first.stderr
    assert imported(first)["torch"] and len(cached_exports()) == 1

    second = run_probing_imports([a for a in args if a != "-q"], env)
    assert second.returncode == 0, second.stderr
    assert not any(imported(second).values())  # neither torch, transformers, nor the rest
    assert "images/s; cpu, fp32, onnxruntime)" in second.stderr  # the summary says so
    one = [json.loads(line) for line in first.stdout.splitlines()]
    two = [json.loads(line) for line in second.stdout.splitlines()]
    assert [r["input"] for r in two] == [str(p) for p in photos]
    for a, b in zip(one, two, strict=True):
        assert [p["class_id"] for p in a["predictions"]] == [
            p["class_id"] for p in b["predictions"]
        ]
        for p, q in zip(a["predictions"], b["predictions"], strict=True):
            assert p["score"] == pytest.approx(q["score"], abs=1e-4)


def test_onnx_runtime_gives_the_torch_answers(
    tiny_model: Path, multi_label_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = photos[0].parent / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:300])
    inputs = [*photos, broken]
    for model in (tiny_model, multi_label_model):  # softmax and sigmoid, in NumPy
        fast = load_classifier(str(model), device="cpu")
        assert fast.runtime == "onnxruntime" and fast.multi_label == (model == multi_label_model)
        reference = load_classifier(str(model), device="cpu", runtime="torch")
        assert reference.runtime == "torch" and reference.model is not None
        ours = list(classify(fast, inputs, top_k=4))
        assert not ours[-1].ok and ours[-1].error
        # The same decoded pixels, the same arithmetic in another runtime: rounding apart.
        assert_same_answers(ours, list(classify(reference, inputs, top_k=4)), 1e-4)


def test_onnx_runtime_splits_a_batch_that_runs_out_of_memory(
    tiny_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = load_classifier(str(tiny_model), device="cpu", batch_size=8)
    expected = list(classify(fast, photos))
    session = fast.forward.session  # type: ignore[union-attr]
    run = session.run

    def small_memory(outputs, feeds):  # type: ignore[no-untyped-def]
        if len(feeds[rt.INPUT]) > 2:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : out of memory")
        return run(outputs, feeds)

    monkeypatch.setattr(session, "run", small_memory, raising=False)
    assert_same_answers(list(classify(fast, photos)), expected, 0)


def test_corrupt_export_falls_back_to_torch_and_is_replaced(
    fresh_model: Path, photos: list[Path]
) -> None:
    files = local_files(str(fresh_model), None)
    assert files is not None
    path = cache.cache_path(files)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an onnx model")
    classifier = load_classifier(str(fresh_model), device="cpu")
    assert classifier.model is not None  # loaded with torch, and exported afresh
    assert classifier.runtime == "onnxruntime"
    assert all(r.ok for r in classify(classifier, photos))
    quick = load_classifier(str(fresh_model), device="cpu")
    assert quick.runtime == "onnxruntime" and quick.model is None


def test_an_edited_checkpoint_never_meets_a_stale_export(tiny_model: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model, tmp_path / "copy"))
    files = local_files(str(copy), None)
    assert files is not None
    before = cache.cache_path(files)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"]["0"] = "renamed"
    (copy / "config.json").write_text(json.dumps(config))
    assert cache.cache_path(files) != before


def test_the_cache_holds_the_graph_onnx_runtime_optimized(tiny_model: Path) -> None:
    # Optimizing the plain export is most of a session's start (0.5 s for ResNet-50); the
    # cache keeps the result, in which ONNX Runtime's own fused operators show.
    import onnx

    files = local_files(str(tiny_model), None)
    assert files is not None
    graph = onnx.load(str(cache.cache_path(files))).graph  # made by conftest's first run
    assert any(node.domain.startswith("com.microsoft") for node in graph.node)


def test_an_export_optimized_for_another_cpu_is_not_used(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = local_files(str(tiny_model), None)
    assert files is not None
    here = cache.cache_path(files)
    assert here.is_file()
    other = [*cache.optimized_for()[:-1], "avx512f avx512_bf16"]
    monkeypatch.setattr(cache, "optimized_for", lambda: other)
    assert cache.cache_path(files) != here
    short = load_classifier(str(tiny_model), device="cpu", images=1)
    assert short.model is not None and short.runtime == "torch"


@pytest.mark.parametrize(
    "options",
    [{"exact": True}, {"precision": "bf16"}, {"compile_model": True}],
    ids=["exact", "bf16", "compile"],
)
def test_options_that_need_torch_never_take_the_export(tiny_model: Path, options: dict) -> None:
    assert cached_exports()  # the tiny model's export is there (conftest)
    classifier = load_classifier(str(tiny_model), device="cpu", **options)
    assert classifier.model is not None and classifier.runtime != "onnxruntime"


def test_switched_off_it_neither_loads_nor_writes_an_export(
    fresh_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESNET_CLI_ONNX", "0")
    classifier = load_classifier(str(fresh_model), device="cpu", batch_size=2)
    assert all(r.ok for r in classify(classifier, photos))
    assert not classifier.save_quick_start()
    assert classifier.runtime == "torchscript" and cached_exports() == []


def test_a_cache_that_cannot_be_written_only_costs_the_quick_start(
    tiny_model: Path, photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(blocker / "cache"))  # under a file
    classifier = load_classifier(str(tiny_model), device="cpu", batch_size=2)
    assert classifier.model is not None  # no cache to start from
    assert all(r.ok for r in classify(classifier, photos))
    assert classifier.runtime == "onnxruntime"  # it still runs, it just is not kept
    assert not classifier.save_quick_start()


def counting_sessions(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Every ONNX Runtime session built from now on, as where it wrote its optimized graph."""
    import onnxruntime

    built: list[str | None] = []
    real = onnxruntime.InferenceSession

    def counted(model, options, **kwargs):  # type: ignore[no-untyped-def]
        built.append(options.optimized_model_filepath or None)
        return real(model, options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", counted)
    return built


@pytest.mark.parametrize("when", ["export before the run", "end of a short run"])
def test_a_first_run_optimizes_the_graph_once_and_keeps_that_one(
    fresh_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # The session the run uses writes the graph the cache keeps: a second session only to
    # write it cost 0.45 s of a ResNet-50 first run.
    sessions = counting_sessions(monkeypatch)
    images = None if when == "export before the run" else len(photos)
    classifier = load_classifier(str(fresh_model), device="cpu", images=images, batch_size=2)
    assert classifier.plan.export_after == (images is not None)
    assert all(r.ok for r in classify(classifier, photos))
    assert classifier.save_quick_start()
    assert len(sessions) == 1 and sessions[0] is not None
    assert cached_exports() == [cache.cache_path(classifier.files or {})]
    export = cached_exports()[0]  # and its record; no temporary
    assert sorted(os.listdir(export.parent)) == [f"{export.stem}.json", export.name]
    assert load_classifier(str(fresh_model), device="cpu").runtime == "onnxruntime"


def test_a_graph_onnx_runtime_cannot_write_costs_only_the_quick_start(
    fresh_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    real = onnxruntime.InferenceSession

    def no_space(model, options, **kwargs):  # type: ignore[no-untyped-def]
        if options.optimized_model_filepath:
            Path(options.optimized_model_filepath).write_bytes(b"half a graph")
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : No space left on device")
        return real(model, options, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", no_space)
    eager = load_classifier(str(fresh_model), device="cpu", images=1)
    assert eager.runtime == "torch"
    expected = list(classify(eager, photos))
    classifier = load_classifier(str(fresh_model), device="cpu", batch_size=2)
    records = list(classify(classifier, photos))
    assert classifier.runtime == "onnxruntime"  # the session, built without writing its graph
    assert_same_answers(records, expected, 1e-4)
    assert not list(cache.cache_dir().glob("onnx/*"))  # no half-written graph, no temporary


def test_an_onnxruntime_that_fails_to_import_only_costs_the_quick_start(
    fresh_model: Path, photos: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> list[str]:
        raise ImportError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(cache, "optimized_for", broken)
    classifier = load_classifier(str(fresh_model), device="cpu", images=2)
    assert all(r.ok for r in classify(classifier, photos[:2]))
    # After the results: must not turn a good run into a crash.
    assert not classifier.save_quick_start()
    assert cached_exports() == []


def test_the_torch_free_probe_agrees_with_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from resnet_cli.runtimes.hardware import cuda_possible, onednn_capped_below_bf16, probe

    monkeypatch.delenv("RESNET_CLI_CPU_BF16")  # this machine's own flags, as conftest pins it
    torch_says = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    # oneDNN capped below bf16 (ONEDNN_MAX_CPU_ISA=AVX2: how CI plays an AVX2-only CPU) is
    # no native bf16, whatever the flags; torch's cpuinfo check does not see the cap.
    capped = onednn_capped_below_bf16() is not None
    assert probe(cuda=False).native_bf16 == (torch_says and not capped)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not probe(cuda=False).native_bf16
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert probe(cuda=False).native_bf16 == torch_says
    for told in ("0", "1"):
        monkeypatch.setenv("RESNET_CLI_CPU_BF16", told)
        assert probe(cuda=False).native_bf16 == (told == "1")
    if torch.cuda.is_available():
        assert cuda_possible()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not cuda_possible() and probe().cuda == ()


@pytest.mark.parametrize(("limit", "expected"), [("1", 1), ("", None), ("many", None)])
def test_sessions_take_the_cores_omp_num_threads_allows(
    limit: str, expected: int | None, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray gives each actor OMP_NUM_THREADS = its CPUs; torch honours it, and so do we: the
    # plan says so, and the session (the torch-free start's, from conftest's export) takes it.
    monkeypatch.setenv("OMP_NUM_THREADS", limit)
    cores = len(os.sched_getaffinity(0))
    classifier = load_classifier(str(tiny_model), device="cpu")
    assert classifier.model is None  # the cached export, in its own session
    assert classifier.plan.intra_op_threads == (expected or cores)
    assert "OMP_NUM_THREADS" in classifier.plan.reasons["intra_op_threads"] or expected is None
    session = classifier.forward.session  # type: ignore[union-attr]
    assert session.get_session_options().intra_op_num_threads == (expected or cores)


def write_record(export: Path, labels: int = 10) -> None:
    """What the cache writes beside an export it made: its record (key, digest, labels)."""
    digest = hashlib.sha256(export.read_bytes()).hexdigest()
    record = {"format": cache.EXPORTS.format, "key": export.stem, "sha256": digest}
    record["labels"] = labels
    export.with_suffix(".json").write_text(json.dumps(record))  # the entry's record


def test_the_cache_keeps_only_the_most_recently_used_exports(tmp_path: Path) -> None:
    folder = tmp_path / "onnx"
    folder.mkdir()
    for i in range(12):
        export = folder / f"{i:02d}.onnx"
        export.write_bytes(b"x")
        write_record(export)
        os.utime(export, (1_000_000 + i, 1_000_000 + i))  # 11 is the most recently used
    # A user's own files in the folder (issue 24: 9 put there, 7 left): never the cache's to
    # prune, however old, whatever their names.
    theirs = [folder / f"mine-{i}.onnx" for i in range(9)] + [folder / "notes.json"]
    for path in theirs:
        path.write_bytes(b"mine")
        os.utime(path, (1000, 1000))
    (folder / "05.json").write_text("{}")  # an export whose record is not the cache's: theirs
    os.utime(folder / "03.onnx", (2_000_000, 2_000_000))  # just loaded by a run
    newest = folder / "00.onnx"  # just written: kept whatever its time says
    cache.EXPORTS.prune(keep=newest, most=4)
    ours = sorted(p.name for p in folder.glob("[0-9]*.onnx"))
    assert ours == ["00.onnx", "03.onnx", "05.onnx", "10.onnx", "11.onnx"]
    assert all(path.read_bytes() == b"mine" for path in theirs)
    assert not (folder / "01.json").exists() and (folder / "05.json").exists()  # records go too


def test_the_int8_entries_are_pruned_by_the_same_rule(tmp_path: Path) -> None:
    """INT8's entries (record, model.xml, model.bin, compiled .blob) go through the same
    cache code: only entries with the tool's own record are pruned, the least recently used
    first."""
    from resnet_cli.runtimes.int8 import ENTRIES

    folder = tmp_path / "int8"
    folder.mkdir()
    for i in range(5):
        entry = folder / f"{i:02d}.json"
        ENTRIES.write_record(entry, {"check": {}, "recipe": {}})
        for suffix in ENTRIES.suffixes:
            entry.with_suffix(suffix).write_bytes(b"model")
        os.utime(entry, (1_000_000 + i, 1_000_000 + i))
    theirs = [folder / "notes.json", folder / "old.json", folder / "old.xml"]
    theirs[0].write_text("not json")
    theirs[1].write_text(json.dumps({"check": {}, "recipe": {}}))  # no key of its own
    theirs[2].write_text("<xml/>")
    for path in theirs:
        os.utime(path, (1000, 1000))
    ENTRIES.prune(keep=folder / "00.json", most=3)
    assert sorted(p.name for p in folder.glob("0*")) == [
        f"{i:02d}{suffix}" for i in (0, 3, 4) for suffix in (".bin", ".blob", ".json", ".xml")
    ]
    assert all(path.exists() for path in theirs)


def test_loading_an_export_marks_it_recently_used(tiny_model: Path) -> None:
    files = local_files(str(tiny_model), None)
    assert files is not None
    export = cache.cache_path(files)
    os.utime(export, (1_000_000, 1_000_000))
    assert load_classifier(str(tiny_model), device="cpu").runtime == "onnxruntime"
    assert export.stat().st_mtime > 1_000_000


# --------------------------------------------------------------------------- issue 24: case 6


def test_an_export_copied_over_another_models_entry_is_rebuilt_not_used(
    fresh_model: Path, photos: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = build_tiny_model(tmp_path / "other", seed=1)  # the same labels, other weights
    for folder in (fresh_model, other):
        assert load_classifier(str(folder), device="cpu", images=1).save_quick_start()
    ours = cache.cache_path(local_files(str(fresh_model), None) or {})
    theirs = cache.cache_path(local_files(str(other), None) or {})
    reference = load_classifier(str(fresh_model), device="cpu", runtime="torch")
    expected = list(classify(reference, photos, top_k=4))
    checks = {
        "its bytes do not match their digest": [theirs],  # the export alone copied over
        "its record is another export's": [theirs, theirs.with_suffix(".json")],  # and record
    }
    for why, copied in checks.items():
        for path in copied:
            shutil.copyfile(path, ours.with_suffix(path.suffix))
        capsys.readouterr()
        loaded = load_classifier(str(fresh_model), device="cpu")
        [line] = capsys.readouterr().err.splitlines()
        assert line == (
            f"note: the runtime cache's export of {fresh_model} failed its check ({why}): "
            "it is rebuilt"
        )
        assert loaded.model is not None  # loaded with torch, not from the cache
        assert_same_answers(list(classify(loaded, photos, top_k=4)), expected, 1e-4)
        quick = load_classifier(str(fresh_model), device="cpu")  # the entry is rebuilt
        assert quick.model is None and capsys.readouterr().err == ""
        assert_same_answers(list(classify(quick, photos, top_k=4)), expected, 1e-4)


def test_an_export_for_another_label_count_is_rebuilt(
    fresh_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_classifier(str(fresh_model), device="cpu", images=1).save_quick_start()
    export = cache.cache_path(local_files(str(fresh_model), None) or {})
    write_record(export, labels=1000)  # what a copied record of a 1000-label model says
    labels = len(load_classifier(str(fresh_model), device="cpu", runtime="torch").labels)
    capsys.readouterr()
    assert load_classifier(str(fresh_model), device="cpu").model is not None
    assert f"(it was made for 1000 labels, the model has {labels})" in capsys.readouterr().err
    assert load_classifier(str(fresh_model), device="cpu").model is None


def test_the_cache_folders_are_private_whatever_the_umask(
    tiny_model: Path, photos: list[Path], tmp_path: Path
) -> None:
    cache = tmp_path / "new" / "cache"
    env = {**os.environ, "RESNET_CLI_CACHE_DIR": str(cache)}
    result = subprocess.run(
        [sys.executable, "-m", "resnet_cli", "-m", str(tiny_model), "-q", *map(str, photos)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        preexec_fn=lambda: os.umask(0),
    )
    assert result.returncode == 0, result.stderr
    assert list(cache.glob("onnx/*.onnx"))  # the export is there
    for folder in (tmp_path / "new", cache, cache / "onnx"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
