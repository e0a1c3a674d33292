"""Assemble the real, labelled photos available offline into an ImageNet imagefolder.

    python benchmarks/make_labelled_photos.py DIR [--foolbox PATH]

DIR gets one subfolder per class, named by its ImageNet synset id (``n02123045/chelsea.jpg``),
which is the layout ``accuracy.py`` reads, plus ``SOURCES.md`` saying where each file came
from. Files are copied byte for byte (no re-encoding). The photos:

- ``examples/images/chelsea.jpg`` (this repository; scikit-image's ``data.chelsea``, CC0,
  Chelsea the cat by Stefan van der Walt), labelled ``n02123045`` "tabby, tabby cat". A
  striped tabby, but ImageNet's cat classes (tabby, tiger cat, Egyptian cat) overlap: its
  top-1 is a judgement call, its top-5 is not.
- ``examples/images/coffee.jpg`` (this repository; scikit-image's ``data.coffee``, CC0, by
  Rachel Michetti, courtesy of Pikolo Espresso Bar), labelled ``n07920052`` "espresso".
- Where available, the 20 ImageNet photos that the PyPI package ``foolbox`` (3.x, MIT
  licence for the code; the photos are ImageNet's, under its terms) ships in
  ``foolbox/data/imagenet_NN_CLASSID.jpg``, the ImageNet-1k class id in the file name. Found
  in an installed ``foolbox`` (located without importing it, which would need eagerpy), or in
  ``--foolbox PATH``: its wheel (``pip download --no-deps foolbox``) or that data folder.

scikit-image's other bundled photographs were left out because none is one ImageNet class
beyond doubt: astronaut (no such class), rocket (missile or projectile), camera (a man
behind a tripod-mounted camera), stereo_motorcycle (ImageNet has moped and motor scooter but
no motorcycle), clock (a synthetic motion-blurred clock), and the rest are textures, scans
or astronomy (brick, grass, gravel, coins, moon, hubble_deep_field, retina,
immunohistochemistry, cell, page, text, horse silhouette).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "images"
FOOLBOX_NAME = re.compile(r"^imagenet_(\d\d)_(\d+)\.jpg$")


@dataclass(frozen=True)
class Photo:
    name: str  # file name in the imagefolder
    class_id: int  # ImageNet-1k class id
    source: str  # where it came from, for SOURCES.md
    data: bytes


def imagenet_synsets() -> list[str]:
    """ImageNet-1k synset ids by class id (class ids are the sorted synsets)."""
    from timm.data import ImageNetInfo

    return list(ImageNetInfo("imagenet-1k").label_names())


def imagenet_descriptions() -> list[str]:
    """ImageNet-1k class names by class id ("tabby, tabby cat"), as microsoft/resnet-50 has them."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    names = info.label_descriptions(as_dict=True)
    return [names[synset] for synset in info.label_names()]


def repository_photos(synsets: Sequence[str]) -> list[Photo]:
    # (file, synset): synsets rather than class ids, so a wrong id cannot slip in unnoticed.
    chosen = (
        ("chelsea.jpg", "n02123045", "scikit-image data.chelsea (CC0), Stefan van der Walt"),
        ("coffee.jpg", "n07920052", "scikit-image data.coffee (CC0), Rachel Michetti"),
    )
    return [
        Photo(name, synsets.index(synset), f"examples/images/{name}: {origin}", path.read_bytes())
        for name, synset, origin in chosen
        if (path := EXAMPLES / name).exists()
    ]


def installed_foolbox_data() -> Path | None:
    """``foolbox/data`` of an installed foolbox, found without importing the package."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data if data.is_dir() else None


def foolbox_photos(location: Path | None) -> list[Photo]:
    """foolbox's 20 ImageNet photos from a wheel, a data folder or the installed package."""
    location = location or installed_foolbox_data()
    if location is None:
        return []
    files: dict[str, bytes] = {}
    if location.is_file():
        with zipfile.ZipFile(location) as wheel:
            for entry in wheel.namelist():
                if entry.startswith("foolbox/data/") and FOOLBOX_NAME.match(Path(entry).name):
                    files[Path(entry).name] = wheel.read(entry)
        where = f"foolbox wheel {location.name}"
    else:
        for path in sorted(location.iterdir()):
            if FOOLBOX_NAME.match(path.name):
                files[path.name] = path.read_bytes()
        where = f"foolbox data folder {location}"
    if not files:
        sys.exit(f"{location}: no foolbox imagenet_NN_CLASSID.jpg photos in it")
    photos = []
    for name, data in sorted(files.items()):
        match = FOOLBOX_NAME.match(name)
        assert match is not None  # filtered above
        class_id = int(match.group(2))
        photos.append(Photo(f"foolbox_{name}", class_id, f"{where}: foolbox/data/{name}", data))
    return photos


def assemble(folder: Path, foolbox: Path | None = None) -> list[Path]:
    """Write every available labelled photo into ``folder`` (replaced whole); their paths."""
    synsets = imagenet_synsets()
    descriptions = imagenet_descriptions()
    photos = repository_photos(synsets) + foolbox_photos(foolbox)
    if not photos:
        sys.exit("no labelled photos found (examples/images/ is missing?)")
    # Built beside the target and renamed, so an interrupted run never leaves half a set.
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    written, rows = [], []
    for photo in photos:
        target = staging / synsets[photo.class_id] / photo.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.data)
        written.append(folder / target.relative_to(staging))
        rows.append(
            f"| {target.relative_to(staging)} | {photo.class_id} "
            f"| {descriptions[photo.class_id]} | {photo.source} |"
        )
    (staging / "SOURCES.md").write_text(
        "# Labelled photos\n\nWritten by benchmarks/make_labelled_photos.py.\n\n"
        "| file | class id | label | source |\n|---|---:|---|---|\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="imagefolder to write (replaced if it exists)")
    parser.add_argument(
        "--foolbox",
        type=Path,
        help="foolbox's wheel or its foolbox/data folder [the installed foolbox, if any]",
    )
    args = parser.parse_args(argv)
    written = assemble(args.folder, args.foolbox)
    classes = len({path.parent.name for path in written})
    print(f"{len(written)} labelled photos in {classes} classes written to {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
