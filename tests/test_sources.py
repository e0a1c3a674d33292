"""Input expansion: files, folders, globs and stdin, in the contract's order."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from resnet_cli.errors import NoInputsError
from resnet_cli.inputs.sources import collect_inputs, require_an_image


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def names(sources) -> list[str]:
    return [s.name for s in sources]


def test_folder_is_recursive_sorted_and_skips_hidden_and_non_images(tmp_path: Path) -> None:
    for rel in [
        "b.jpg",
        "a.PNG",
        "sub/z.webp",
        "sub/.hidden.jpg",
        ".git/x.jpg",
        "notes.txt",
        "c.tiff",
    ]:
        touch(tmp_path / rel)
    found = names(collect_inputs([str(tmp_path)]))
    assert found == [str(tmp_path / n) for n in ["a.PNG", "b.jpg", "c.tiff", "sub/z.webp"]]


def test_order_follows_arguments(tmp_path: Path) -> None:
    first, second = touch(tmp_path / "z.jpg"), touch(tmp_path / "a.jpg")
    assert names(collect_inputs([str(first), str(second)])) == [str(first), str(second)]


def test_glob_with_double_star(tmp_path: Path) -> None:
    touch(tmp_path / "x" / "deep" / "one.jpg")
    touch(tmp_path / "two.jpg")
    touch(tmp_path / "three.png")
    found = names(collect_inputs([str(tmp_path / "**" / "*.jpg")]))
    assert found == sorted([str(tmp_path / "two.jpg"), str(tmp_path / "x" / "deep" / "one.jpg")])


def test_explicit_file_is_tried_whatever_its_extension(tmp_path: Path) -> None:
    odd = touch(tmp_path / "picture.data")
    assert [(s.name, s.error) for s in collect_inputs([str(odd)])] == [(str(odd), None)]


def test_missing_path_empty_folder_and_unmatched_glob_are_error_sources(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    sources = list(
        collect_inputs(
            [str(tmp_path / "nope.jpg"), str(tmp_path / "empty"), str(tmp_path / "*.gif")]
        )
    )
    assert [s.error for s in sources] == [
        "no such file or directory",
        "no image files in this folder",
        "the pattern matched no image files",
    ]


def test_stdin_lines_and_nul_separated(tmp_path: Path) -> None:
    a, b = touch(tmp_path / "a b.jpg"), touch(tmp_path / "new\nline.jpg")
    lines = io.BytesIO(f"{a}\n\n{tmp_path / 'a b.jpg'}\r\n".encode())
    assert names(collect_inputs(["-"], stdin=lines)) == [str(a), str(a)]
    nul = io.BytesIO(f"{a}\0{b}\0".encode())
    assert names(collect_inputs(["-"], stdin=nul, null_separated=True)) == [str(a), str(b)]


def test_stdin_keeps_names_that_are_not_utf8(tmp_path: Path) -> None:
    raw = bytes(tmp_path) + b"/caf\xe9.jpg"
    Path(raw.decode("utf-8", "surrogateescape")).write_bytes(b"x")
    (source,) = collect_inputs(["-"], stdin=io.BytesIO(raw + b"\n"))
    assert source.error is None
    assert source.name.encode("utf-8", "surrogateescape") == raw


def test_symlink_loop_in_folder_terminates(tmp_path: Path) -> None:
    touch(tmp_path / "photos" / "a.jpg")
    (tmp_path / "photos" / "loop").symlink_to(tmp_path / "photos")
    assert names(collect_inputs([str(tmp_path / "photos")])) == [str(tmp_path / "photos" / "a.jpg")]


def test_require_an_image_raises_only_when_nothing_is_usable(tmp_path: Path) -> None:
    with pytest.raises(NoInputsError, match=r"no image found: .*nope\.jpg: no such file"):
        list(require_an_image(collect_inputs([str(tmp_path / "nope.jpg")])))
    with pytest.raises(NoInputsError, match="no inputs"):
        list(require_an_image([]))
    good = touch(tmp_path / "ok.jpg")
    kept = list(require_an_image(collect_inputs([str(tmp_path / "nope.jpg"), str(good)])))
    assert [s.error is None for s in kept] == [False, True]
