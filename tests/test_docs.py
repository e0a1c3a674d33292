"""The README and docs/ say what works: install lines that install, messages quoted as the
code writes them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def pyproject() -> dict:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_no_install_line_names_a_package_that_is_not_on_pypi() -> None:
    """resnet-cli is not on PyPI: installing it by name, with an extra, ends in "No matching
    distribution found". From a clone, '.[raw]' works."""
    sources = [*DOCS, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "tests").glob("*.py"))]
    pattern = "resnet-cli" + r"\["  # split, so that this file does not match itself
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not found, found


def test_every_extra_an_install_line_names_exists() -> None:
    extras = set(pyproject()["project"]["optional-dependencies"])
    named = {
        extra
        for path in DOCS
        for extra in re.findall(r"pip install (?:-e )?'\.\[(\w+)\]'", path.read_text())
    }
    assert {"raw", "ray", "dev"} <= named
    assert named <= extras, named - extras


def test_the_messages_name_each_extra_and_what_it_adds() -> None:
    from resnet_cli.errors import EXTRAS, install_extra

    optional = pyproject()["project"]["optional-dependencies"]
    for extra, adds in EXTRAS.items():
        assert optional[extra][0].startswith(adds), (extra, optional[extra])
    assert install_extra("raw") == (
        "pip install '.[raw]' in your resnet-classify clone (it adds rawpy)"
    )


def test_the_docs_quote_the_install_messages_as_the_code_writes_them() -> None:
    from resnet_cli.inputs.photo_formats import NEEDS_RAW
    from resnet_cli.pipeline.ray_job import NEEDS_RAY

    contract = (ROOT / "docs" / "contract-additions.md").read_text()
    assert f"`{NEEDS_RAW}`" in contract
    assert f"`{NEEDS_RAY}`" in contract


def test_every_code_fence_stands_on_its_own_line() -> None:
    """A fence with text after it (```` ``` The dev extra````) breaks the Markdown after it."""
    for path in DOCS:
        fences = [line for line in path.read_text().splitlines() if line.startswith("```")]
        assert len(fences) % 2 == 0, path
        closing = fences[1::2]
        assert all(line == "```" for line in closing), (path, closing)


def test_the_layout_tree_names_every_module_once() -> None:
    text = (ROOT / "docs" / "development.md").read_text()
    tree = text.split("```\nsrc/resnet_cli/\n", 1)[1].split("```", 1)[0]
    named, folder = [], ""
    for line in tree.splitlines():
        entry = line.strip().split("  ")[0]
        if line.startswith("  ") and not line.startswith("    "):
            folder = entry if entry.endswith("/") else ""
        named += [folder + name for name in re.findall(r"[\w]+\.py", entry)]
    package = ROOT / "src" / "resnet_cli"
    modules = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "__init__.py" or path.parent.name in ("resnet_cli", "cli")
    }
    assert sorted(named) == sorted(set(named)), "listed twice"
    assert set(named) == modules


def test_the_set_up_lines_are_the_ones_ci_runs() -> None:
    """.ci/run finds the README's set-up line for the machine by these shapes and runs it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = "python3 -m venv .venv && . .venv/bin/activate && pip install ."
    end = " && resnet-classify examples/images/chelsea.jpg"
    setups = [line for line in lines if line.startswith(start)]
    assert setups == [
        f"{start} --extra-index-url https://download.pytorch.org/whl/cpu{end}",  # no NVIDIA GPU
        f"{start}{end}",  # an NVIDIA GPU
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert (
        '--extra-index-url $cpu_index "' in ci
        and "cpu_index=https://download.pytorch.org/whl/cpu" in ci
    )
    assert f"setup=${{setup%{end}}}" in ci and 'eval "$setup"' in ci


def anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        found.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return found


def test_every_link_between_the_pages_leads_somewhere() -> None:
    broken = []
    for path in DOCS:
        text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists() or (anchor and anchor not in anchors(linked.read_text())):
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken
