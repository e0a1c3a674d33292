"""Decoding starts while the model loads (issue 28, item 4): the decode threads' work is done
on the cores the loading leaves free, not taken from the model's later. The records must be
what they were without it: every input once, in order, decoded with the loaded model's own
steps, and an error reading the inputs is still the run's error."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import resnet_cli
from conftest import scene
from resnet_cli import Source, classify, load_classifier
from resnet_cli.models.checkpoint import ArrayConvNextProcessor, array_processor, read_json
from resnet_cli.pipeline import local
from resnet_cli.pipeline.local import classify_batches, decode_ahead


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("ahead")
    paths = []
    for i in range(40):
        path = folder / f"{i:02d}.jpg"
        scene(90 + 7 * (i % 5), 70 + 3 * (i % 4), seed=i).save(path, quality=90)
        paths.append(path)
    return paths


def expected_records(model: Path, photos: list[Path]) -> list[dict[str, Any]]:
    """Each input and its top label, as the library classifies them without decoding ahead."""
    classifier = load_classifier(str(model), device="cpu", precision="fp32", runtime="torch")
    return [{"input": r.input, "top": r.predictions[0].label} for r in classify(classifier, photos)]


def records_of(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{"input": r["input"], "top": r["predictions"][0]["label"]} for r in rows]


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    real = local.decode_source

    def counting(source: Source, **kwargs: Any) -> Any:
        decoded.append(source.name)
        return real(source, **kwargs)

    monkeypatch.setattr(local, "decode_source", counting)
    return decoded


def run_on(model: Path, photos: list[Path], output: Path) -> None:
    """A library run of ``model`` on the photos into ``output``, in torch on a fresh cache
    (the caller's monkeypatch sets it), which must end well."""
    result = resnet_cli.run(
        [str(p) for p in photos],
        model=str(model),
        device="cpu",
        precision="fp32",
        batch_size=4,
        output=str(output),
    )
    assert result.exit_code == 0


def hold_the_build(monkeypatch: pytest.MonkeyPatch, decoded: list[str], count: int) -> list[int]:
    """Make the torch load wait (10 s at most) until ``count`` inputs are decoded; the list
    returned gets how many were when it went on."""
    from resnet_cli.runtimes import build

    seen: list[int] = []
    real = build.prepare

    def held(*args: Any, **kwargs: Any) -> Any:
        for _ in range(200):
            if len(decoded) >= count:
                break
            threading.Event().wait(0.05)
        seen.append(len(decoded))
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "prepare", held)
    return seen


def test_prepared_pixels_are_c_ordered_and_the_processors_arithmetic(tiny_model: Path) -> None:
    """The decode threads hand over pixels the runtime copies as they are: C order (a CHW
    view of Pillow's HWC bytes would leave the transpose to the main thread), with the same
    values as rescaling and normalizing the resized image."""
    files = {p.name: str(p) for p in tiny_model.iterdir()}
    processor = array_processor(files, read_json(files["config.json"]))
    assert processor is not None
    image = scene(97, 61, seed=3)
    pixels = processor.prepare(image)
    assert pixels.flags.c_contiguous and pixels.dtype == np.float32
    resized = processor.resized(image).astype(np.float32)
    scale = 1.0 / processor.rescale_factor
    mean = np.asarray(processor.image_mean, np.float32).reshape(3, 1, 1) * scale
    std = np.asarray(processor.image_std, np.float32).reshape(3, 1, 1) * scale
    assert np.array_equal(pixels, (resized - mean) / std)


def test_inputs_are_decoded_while_the_model_loads(
    tiny_model: Path, photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The torch build waits until the decode threads have decoded a few inputs: that only
    happens if they were started before it. The records are the library's, in order."""
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))  # torch loads it
    decoded = count_decodes(monkeypatch)
    seen_while_loading = hold_the_build(monkeypatch, decoded, 8)
    output = tmp_path / "labels.jsonl"
    run_on(tiny_model, photos, output)
    assert seen_while_loading and seen_while_loading[0] >= 8
    assert sorted(decoded) == sorted(str(p) for p in photos)  # each input decoded once
    assert records_of(output) == expected_records(tiny_model, photos)


def test_images_decoded_ahead_with_other_steps_are_decoded_again(
    tiny_model: Path, photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the loaded model's steps turn out not to be the ones guessed from its files,
    nothing decoded ahead is used: every input is decoded again, and the records are right."""
    expected = expected_records(tiny_model, photos)
    monkeypatch.setenv("RESNET_CLI_CACHE_DIR", str(tmp_path / "cache"))  # torch loads it
    decoded = count_decodes(monkeypatch)
    hold_the_build(monkeypatch, decoded, 1)
    monkeypatch.setattr(ArrayConvNextProcessor, "same_pixels", lambda self, other: False)
    output = tmp_path / "labels.jsonl"
    run_on(tiny_model, photos, output)
    assert records_of(output) == expected
    # Those decoded ahead twice (a few, at least), every other one once.
    counts = [decoded.count(str(p)) for p in photos]
    assert set(counts) == {1, 2} and counts[0] == 2


def test_a_failure_reading_the_inputs_ahead_is_the_runs_failure(
    tiny_model: Path, photos: list[Path]
) -> None:
    """The thread that reads the inputs while the model loads does not swallow what the
    input list raises: the run raises it, after the inputs before it."""
    classifier = load_classifier(str(tiny_model), device="cpu", precision="fp32", batch_size=4)

    def sources() -> Iterator[Source]:
        for path in photos[:6]:
            yield Source(str(path), str(path))
        raise OSError("the input list broke off")

    stream = sources()
    ahead = decode_ahead(classifier.plan, classifier.files, stream)
    assert ahead is not None
    with pytest.raises(OSError, match="broke off"):
        list(classify_batches(classifier, stream, ahead=ahead))


def test_no_decoding_ahead_where_the_steps_are_not_known_before_loading(
    tiny_model: Path,
) -> None:
    """A GPU decodes on the device, and a checkpoint without files on disk (or a processor
    only transformers runs) has no steps to guess: nothing starts before the model loads."""
    classifier = load_classifier(str(tiny_model), device="cpu", precision="fp32")
    plan, files = classifier.plan, classifier.files
    assert files is not None
    import dataclasses

    on_gpu = dataclasses.replace(plan, device="cuda", device_decode=True)
    assert decode_ahead(on_gpu, files, iter(())) is None
    assert decode_ahead(plan, None, iter(())) is None
    no_processor = {k: v for k, v in files.items() if k != "preprocessor_config.json"}
    assert decode_ahead(plan, no_processor, iter(())) is None
    started = decode_ahead(plan, files, iter(()))
    assert started is not None
    started.close(wait=True)


def test_decoding_ahead_stops_at_the_first_url(tiny_model: Path, photos: list[Path]) -> None:
    """Downloading imports what the loading main thread may be importing: the thread that
    reads the inputs ahead stops at the first URL, which the run then takes in its turn."""
    classifier = load_classifier(
        str(tiny_model), device="cpu", precision="fp32", batch_size=4, offline=True
    )
    files = [Source(str(p), str(p)) for p in photos[:8]]
    url = Source("http://127.0.0.1:9/cat.jpg", url="http://127.0.0.1:9/cat.jpg")
    stream = iter([*files[:3], url, *files[3:]])
    ahead = decode_ahead(classifier.plan, classifier.files, stream, offline=True)
    assert ahead is not None and ahead.feeder is not None
    ahead.feeder.join(10)
    assert [s.name for taken, _ in ahead.pending for s in taken] == [f.name for f in files[:3]]
    records = [r for batch in classify_batches(classifier, stream, ahead=ahead) for r in batch]
    assert [r.input for r in records] == [*(f.name for f in files[:3]), url.name] + [
        f.name for f in files[3:]
    ]
    assert [r.ok for r in records] == [True] * 3 + [False] + [True] * 5
    assert "offline" in (records[3].error or "")

    # A URL first: nothing is decoded ahead, and nothing is lost.
    stream = iter([url, *files[:2]])
    ahead = decode_ahead(classifier.plan, classifier.files, stream, offline=True)
    assert ahead is not None
    records = [r for batch in classify_batches(classifier, stream, ahead=ahead) for r in batch]
    assert [r.input for r in records] == [url.name, files[0].name, files[1].name]


@pytest.mark.parametrize("organize", [False, True])
def test_a_list_on_stdin_is_read_ahead_only_where_reading_it_moves_no_file(
    organize: bool,
    tiny_model: Path,
    photos: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With --organize, reading a resumed run's input list places the files its earlier
    records name: that stays in the main thread, so such a list is not read ahead."""
    import io
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos[:6]:
        shutil.copy(path, folder / path.name)
    listed = "".join(f"{p}\n" for p in sorted(folder.iterdir()))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(listed.encode())))
    started: list[bool] = []
    real = local.decode_ahead

    def spy(*args: Any, **kwargs: Any) -> Any:
        made = real(*args, **kwargs)
        started.append(made is not None)
        return made

    monkeypatch.setattr(local, "decode_ahead", spy)
    options: dict[str, Any] = {"organize": str(tmp_path / "sorted")} if organize else {}
    result = resnet_cli.run(
        ["-"],
        model=str(tiny_model),
        device="cpu",
        precision="fp32",
        output=str(tmp_path / "labels.jsonl"),
        **options,
    )
    assert result.exit_code == 0 and result.inputs == 6
    assert started == ([] if organize else [True])


def test_a_run_that_fails_before_its_first_batch_stops_its_decoding(
    tiny_model: Path, photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the run started while the model loaded is stopped with the run, whatever ends it
    between the load and the first batch (here, a failure of its own), not left to the
    garbage collector."""
    import resnet_cli.categories

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("after the load, before the first batch")

    monkeypatch.setattr(resnet_cli.categories, "resolve_categories", broken)
    made: list[local.Decoding | None] = []
    real = local.decode_ahead

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(local, "decode_ahead", spy)
    closed: list[local.Decoding] = []
    real_close = local.Decoding.close

    def close(self: local.Decoding, wait: bool) -> None:
        closed.append(self)
        real_close(self, wait)

    monkeypatch.setattr(local.Decoding, "close", close)
    with pytest.raises(RuntimeError, match="before the first batch"):
        resnet_cli.run(
            [str(p) for p in photos],
            model=str(tiny_model),
            device="cpu",
            precision="fp32",
            output=str(tmp_path / "labels.jsonl"),
        )
    assert len(made) == 1 and made[0] is not None
    assert closed == [made[0]]
