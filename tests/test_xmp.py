"""--xmp: keywords in XMP sidecars, read back by exiftool as a photo manager would; a sidecar
that had keywords, a rating, a description and darktable's history keeps every one of them;
a rerun does not pile keywords up; the image's bytes never change; a sidecar that cannot be
parsed, a symlinked one, and one that holds another image's labels are left as they are."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from resnet_cli.output.xmp import NAMESPACE, SidecarWriter, keywords, sidecar_path
from resnet_cli.results import Prediction, Record

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "images"

# A sidecar as darktable and a user left it: two keywords of the user's (one, "espresso", the
# same as a label the model gives), a hierarchical one, a rating, a description in two
# languages, darktable's edit history (a structure), a capture date and a city.
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:lr="http://ns.adobe.com/lightroom/1.0/"
    xmlns:exif="http://ns.adobe.com/exif/1.0/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="4"
    exif:DateTimeOriginal="2024-05-01T09:30:00"
    photoshop:City="Lisboa"
    darktable:xmp_version="5">
   <dc:description>
    <rdf:Alt>
     <rdf:li xml:lang="x-default">Breakfast, before the beach</rdf:li>
     <rdf:li xml:lang="pt-PT">Pequeno-almoço</rdf:li>
    </rdf:Alt>
   </dc:description>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>espresso</rdf:li>
    </rdf:Bag>
   </dc:subject>
   <lr:hierarchicalSubject>
    <rdf:Bag>
     <rdf:li>places|Lisboa</rdf:li>
    </rdf:Bag>
   </lr:hierarchicalSubject>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:operation="exposure" darktable:enabled="1"/>
     <rdf:li darktable:operation="colorin" darktable:enabled="0"/>
    </rdf:Seq>
   </darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def exiftool(path: Path) -> dict[str, Any]:
    """Every tag exiftool reads from ``path``, by group and name (XMP-dc:Subject, ...)."""
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool missing: apt-get install libimage-exiftool-perl")
    result = subprocess.run(
        ["exiftool", "-j", "-G1", "-struct", "-a", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    tags: dict[str, Any] = json.loads(result.stdout)[0]
    return {k: v for k, v in tags.items() if not k.startswith(("System:", "ExifTool:"))}


def as_list(value: Any) -> list[Any]:
    """exiftool gives a one-item list as the item itself."""
    return value if isinstance(value, list) else [value]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def records(path: Path) -> dict[str, dict[str, Any]]:
    lines = path.read_text().splitlines()
    return {Path(r["input"]).name: r for r in map(json.loads, lines)}


def test_keywords_read_back_by_exiftool_and_the_images_never_change(
    real_model: Path, photos: Path, tmp_path: Path
) -> None:
    before = {p.name: (digest(p), p.stat().st_mtime_ns) for p in photos.iterdir()}
    out = tmp_path / "labels.jsonl"
    result = run_cli(photos, "--model", real_model, "--xmp", "-k", "3", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "wrote 2 XMP sidecars" in result.stderr
    assert {p.name: (digest(p), p.stat().st_mtime_ns) for p in photos.glob("*.jpg")} == before
    assert sorted(p.name for p in photos.iterdir()) == [
        "chelsea.jpg", "chelsea.jpg.xmp", "coffee.jpg", "coffee.jpg.xmp",
    ]  # fmt: skip
    coffee = exiftool(photos / "coffee.jpg.xmp")
    labels = [p["label"] for p in records(out)["coffee.jpg"]["predictions"]]
    assert labels[0] == "espresso"
    names = [label.split(",")[0] for label in labels]  # "cup, ..." -> "cup"
    assert as_list(coffee["XMP-dc:Subject"]) == names
    tree = as_list(coffee["XMP-lr:HierarchicalSubject"])
    assert tree[0] == "food|espresso" and len(tree) == 3 and all("|" in t for t in tree)
    assert coffee["XMP-resnetcli:ClassifierModel"] == os.path.realpath(real_model)
    assert coffee["XMP-resnetcli:ClassifiedImage"] == "coffee.jpg"
    assert coffee["XMP-resnetcli:ClassifiedDate"][:4].isdigit()
    cat = exiftool(photos / "chelsea.jpg.xmp")
    assert "tabby" in as_list(cat["XMP-dc:Subject"])  # "tabby, tabby cat" by its first name
    assert "cat|tabby" in as_list(cat["XMP-lr:HierarchicalSubject"])
    # exiftool reads the image with its sidecar's keywords, as a photo manager imports them
    assert "espresso" in (photos / "coffee.jpg.xmp").read_text()
    assert NAMESPACE in (photos / "coffee.jpg.xmp").read_text()


def test_an_existing_sidecar_keeps_everything_and_a_rerun_piles_nothing_up(
    real_model: Path, photos: Path
) -> None:
    sidecar = photos / "coffee.jpg.xmp"
    sidecar.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    os.chmod(sidecar, 0o640)
    inode = sidecar.stat().st_ino
    theirs = exiftool(sidecar)
    assert theirs["XMP-xmp:Rating"] == 4 and len(theirs["XMP-darktable:History"]) == 2
    image = digest(photos / "coffee.jpg")

    first = run_cli(photos / "coffee.jpg", "--model", real_model, "--xmp", "-k", "3")
    assert first.returncode == 0, first.stderr
    after = exiftool(sidecar)
    ours = ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-x:XMPToolkit")
    for tag, value in theirs.items():  # every tag the sidecar had, exactly as it was
        if tag not in ours:
            assert after[tag] == value, tag
    subject = as_list(after["XMP-dc:Subject"])
    assert subject[:2] == ["holiday", "espresso"] and len(subject) == 4  # + 2 labels
    assert subject.count("espresso") == 1
    # The user's own "espresso" is not counted as added: a rerun must never remove it.
    assert as_list(after["XMP-resnetcli:AddedSubjects"]) == subject[2:]
    tree = as_list(after["XMP-lr:HierarchicalSubject"])
    assert tree[0] == "places|Lisboa" and "food|espresso" in tree
    assert stat.S_IMODE(sidecar.stat().st_mode) == 0o640  # replaced, with its mode
    assert sidecar.stat().st_ino != inode  # a new file renamed into place, not rewritten
    assert sorted(p.name for p in photos.iterdir()) == [
        "chelsea.jpg",
        "coffee.jpg",
        "coffee.jpg.xmp",
    ]  # fmt: skip  (no temporary file left)

    again = run_cli(photos / "coffee.jpg", "--model", real_model, "--xmp", "-k", "3")
    assert again.returncode == 0, again.stderr
    rerun = exiftool(sidecar)
    assert as_list(rerun["XMP-dc:Subject"]) == subject  # nothing piled up
    assert as_list(rerun["XMP-lr:HierarchicalSubject"]) == tree

    # A floor no label reaches: the keywords this tool added go, the user's stay.
    none = run_cli(photos / "coffee.jpg", "--model", real_model, "--xmp", "--min-score", "0.99")
    assert none.returncode == 0, none.stderr
    bare = exiftool(sidecar)
    assert as_list(bare["XMP-dc:Subject"]) == ["holiday", "espresso"]
    assert as_list(bare["XMP-lr:HierarchicalSubject"]) == ["places|Lisboa"]
    assert "XMP-resnetcli:AddedSubjects" not in bare
    for tag, value in theirs.items():
        if tag != "XMP-x:XMPToolkit":
            assert bare[tag] == value, tag
    assert digest(photos / "coffee.jpg") == image


def test_a_sidecar_that_cannot_be_parsed_is_left_alone_and_the_record_says_so(
    real_model: Path, photos: Path, tmp_path: Path
) -> None:
    broken = photos / "coffee.jpg.xmp"
    text = DARKTABLE_SIDECAR.replace("</dc:subject>", "</dc:subjec>").encode()
    broken.write_bytes(text)
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"labels.{fmt}"
        result = run_cli(photos, "--model", real_model, "--xmp", "-o", out)
        assert result.returncode == 1, result.stderr  # as for a file --organize cannot place
        assert broken.read_bytes() == text
        assert "coffee.jpg: XMP sidecar not written: coffee.jpg.xmp cannot be parsed" in (
            result.stderr
        )
        assert "wrote 1 XMP sidecar, 1 left as they were" in result.stderr
        if fmt == "jsonl":
            found = records(out)
            assert "cannot be parsed as XMP" in found["coffee.jpg"]["xmp_error"]
            assert found["coffee.jpg"]["predictions"][0]["label"] == "espresso"
            assert "xmp_error" not in found["chelsea.jpg"]
        else:
            header, *rows = out.read_text().splitlines()
            assert header.endswith(",category,xmp_error")
            assert all("cannot be parsed" in r for r in rows if "coffee" in r)
            assert not any("cannot be parsed" in r for r in rows if "chelsea" in r)
    assert (photos / "chelsea.jpg.xmp").is_file()  # the other image's is written


def test_a_symlinked_sidecar_is_never_followed(
    real_model: Path, photos: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere.xmp"
    elsewhere.write_text(DARKTABLE_SIDECAR, encoding="utf-8")
    link = photos / "coffee.jpg.xmp"
    link.symlink_to(elsewhere)
    out = tmp_path / "labels.jsonl"
    result = run_cli(photos / "coffee.jpg", "--model", real_model, "--xmp", "-o", out)
    assert result.returncode == 1, result.stderr
    assert link.is_symlink() and elsewhere.read_text() == DARKTABLE_SIDECAR
    assert "symbolic link" in records(out)["coffee.jpg"]["xmp_error"]


def test_stem_naming_and_two_images_that_would_share_a_sidecar(
    real_model: Path, photos: Path, tmp_path: Path
) -> None:
    shutil.copy(EXAMPLES / "coffee.jpg", photos / "coffee.png")  # coffee.xmp for both
    out = tmp_path / "labels.jsonl"
    result = run_cli(photos, "--model", real_model, "--xmp", "--xmp-name", "stem", "-o", out)
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in photos.glob("*.xmp")) == ["chelsea.xmp", "coffee.xmp"]
    assert exiftool(photos / "coffee.xmp")["XMP-resnetcli:ClassifiedImage"] == "coffee.jpg"
    found = records(out)
    assert "holds the labels of coffee.jpg" in found["coffee.png"]["xmp_error"]
    assert "xmp_error" not in found["coffee.jpg"]


def test_xmp_options_are_checked(tiny_model: Path, photos: Path, tmp_path: Path) -> None:
    alone = run_cli(photos, "--model", tiny_model, "--xmp-name", "stem")
    assert alone.returncode == 2 and "--xmp-name only applies to --xmp" in alone.stderr
    ray = run_cli(photos, "--model", tiny_model, "--xmp", "--engine", "ray", "-o", tmp_path / "r")
    assert ray.returncode == 2, ray.stderr
    assert "--xmp works with --engine local only" in ray.stderr
    bad = run_cli(photos, "--model", tiny_model, "--xmp", "--xmp-name", "lightroom")
    assert bad.returncode == 2 and "full" in bad.stderr and "stem" in bad.stderr
    assert not list(photos.glob("*.xmp"))


def test_only_local_files_get_sidecars(tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes((EXAMPLES / "coffee.jpg").read_bytes())
    predictions = (Prediction(1, "espresso", 0.9, 967, "food"),)
    batch = [
        Record("https://example.com/a.jpg", predictions),
        Record("cats:test:0", predictions),
        Record(str(image), error="not a readable image"),
        Record(str(image), ()),  # no label passed --min-score, and no sidecar yet
    ]
    writer = SidecarWriter("model", "0.1.0")
    assert writer.write(batch) == batch
    assert writer.written == 0 and not list(tmp_path.glob("*.xmp"))
    assert writer.write([Record(str(image), predictions)])[0].xmp_error is None
    assert writer.written == 1 and Path(sidecar_path(str(image))).is_file()


def test_keywords_of_a_record() -> None:
    record = Record(
        "a.jpg",
        (
            Prediction(1, "tabby, tabby cat", 0.5, 281, "cat"),
            Prediction(2, "crane", 0.2, 134, "bird"),
            Prediction(3, "crane", 0.1, 517, "building or structure"),
            Prediction(4, "a|b", 0.1, 1),
        ),
    )
    assert keywords(record) == (
        ["tabby", "crane", "a/b"],
        ["cat|tabby", "bird|crane", "building or structure|crane", "a/b"],
    )
    assert sidecar_path("d/IMG_1.jpg") == "d/IMG_1.jpg.xmp"
    assert sidecar_path("d/IMG_1.jpg", "stem") == "d/IMG_1.xmp"


def test_organize_takes_the_sidecar_along(real_model: Path, photos: Path, tmp_path: Path) -> None:
    sorted_ = tmp_path / "sorted"
    out = tmp_path / "labels.jsonl"
    result = run_cli(
        photos / "coffee.jpg", "--model", real_model, "--xmp", "-o", out,
        "--organize", sorted_, "--organize-mode", "move",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not list(photos.glob("coffee*"))  # image and sidecar moved, nothing left behind
    moved = sorted_ / "food" / "coffee.jpg.xmp"
    assert "food|espresso" in as_list(exiftool(moved)["XMP-lr:HierarchicalSubject"])
    assert (sorted_ / "food" / "coffee.jpg").read_bytes() == (EXAMPLES / "coffee.jpg").read_bytes()


@pytest.mark.parametrize("maker", ["exiftool", "lightroom"])
def test_sidecars_as_other_tools_write_them(maker: str, tmp_path: Path) -> None:
    """exiftool's own sidecars (an xpacket, single quotes) and Lightroom's (a bare
    x:xmpmeta, no XML declaration) are merged into, not taken for unreadable or empty."""
    image = tmp_path / "IMG_1.jpg"
    image.write_bytes((EXAMPLES / "coffee.jpg").read_bytes())
    sidecar = tmp_path / "IMG_1.jpg.xmp"
    if maker == "exiftool":
        if shutil.which("exiftool") is None:
            pytest.skip("exiftool missing: apt-get install libimage-exiftool-perl")
        subprocess.run(
            ["exiftool", "-q", "-o", str(sidecar), "-XMP-dc:Subject=holiday", "-XMP:Rating=3",
             "-XMP-dc:Description=desc", str(image)],
            check=True,
        )  # fmt: skip
    else:
        start = DARKTABLE_SIDECAR.index("<x:xmpmeta")
        sidecar.write_text(DARKTABLE_SIDECAR[start:], encoding="utf-8")
    theirs = exiftool(sidecar)
    record = Record(str(image), (Prediction(1, "espresso", 0.96, 967, "food"),))
    assert SidecarWriter("model", "0.1.0").write([record]) == [record]
    after = exiftool(sidecar)
    for tag, value in theirs.items():
        if tag not in ("XMP-dc:Subject", "XMP-lr:HierarchicalSubject", "XMP-x:XMPToolkit"):
            assert after[tag] == value, tag
    assert as_list(after["XMP-dc:Subject"])[0] == "holiday"
    assert "espresso" in as_list(after["XMP-dc:Subject"])
    assert "food|espresso" in as_list(after["XMP-lr:HierarchicalSubject"])
