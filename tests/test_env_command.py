"""``resnet-classify env``: versions, the machine, and the plan a run of --model would take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import imported, run_cli, run_probing_imports


def env(*args: object) -> tuple[int, str, str]:
    result = run_cli("env", *args)
    return result.returncode, result.stdout, result.stderr


def test_json_gives_the_plan_the_run_takes_with_its_reasons(tiny_model: Path) -> None:
    from resnet_cli import load_classifier

    code, out, err = env("-m", tiny_model, "-f", "json")
    assert code == 0, err
    facts = json.loads(out)
    assert facts["packages"]["torch"] != "not installed"
    assert facts["hardware"]["cores"] >= 1 and facts["model"]["on_disk"]
    plan = {name: row["value"] for name, row in facts["plan"].items()}
    assert all(row["why"] for row in facts["plan"].values())
    # What env says is what a run gets (conftest's export: the torch-free start).
    classifier = load_classifier(str(tiny_model))
    assert (plan["device"], plan["precision"], plan["runtime"]) == (
        str(classifier.device),
        classifier.precision,
        classifier.runtime,
    )
    assert plan["network"] == "onnx cache" and plan["batch_size"] == classifier.plan.batch_size
    assert facts["runtime_cache"]["exports"] >= 1


@pytest.mark.parametrize(
    ("options", "runtime"),
    [(["-p", "bf16"], "onednn|torch"), (["--exact"], "torch"), (["-d", "cpu"], "onnxruntime")],
)
def test_text_names_each_choice(tiny_model: Path, options: list[str], runtime: str) -> None:
    code, out, err = env("-m", tiny_model, *options)
    assert code == 0, err
    assert out.splitlines()[0].startswith("resnet-classify ")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert rows["runtime"] in runtime.split("|")
    assert "plan:" in out and "runtime cache:" in out


def test_a_model_not_on_disk_is_planned_without_a_download(tmp_path: Path) -> None:
    code, out, err = env("-m", "someone/not-downloaded", "-d", "cpu", "-f", "json")
    assert code == 0, err
    facts = json.loads(out)
    assert not facts["model"]["on_disk"] and "downloads it" in facts["model"]["notes"][0]
    assert facts["plan"]["network"]["value"] == "transformers"


def test_a_mistyped_model_folder_is_said_as_a_run_would_say_it(tiny_model: Path) -> None:
    mistyped = str(tiny_model)[:-1]  # the folder's name less its last letter
    code, out, err = env("-m", mistyped, "-d", "cpu", "-f", "json")
    assert code == 0, err
    assert json.loads(out)["model"]["notes"] == [
        f"no such model folder: {mistyped!r}: did you mean {str(tiny_model)!r}?"
    ]


def test_bad_options_are_usage_errors() -> None:
    code, _, err = env("-d", "gpu")
    assert code == 2 and err.startswith("Error: unknown device 'gpu'")


def test_env_help_imports_no_torch() -> None:
    import os

    result = run_probing_imports(["env", "--help"], dict(os.environ))
    assert result.returncode == 0 and "--format" in result.stdout
    assert not imported(result)["torch"]


def test_a_run_uses_the_plan_env_prints(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    """-b and -j reach the plan: env shows them, and a run with the same flags records the
    very plan env printed, every field and its reason (the local engine)."""
    flags = ["-m", tiny_model, "-d", "cpu", "-b", "64", "-j", "3"]
    code, out, err = env(*flags, "-f", "json")
    assert code == 0, err
    printed = json.loads(out)["plan"]
    assert printed["batch_size"] == {"value": 64, "why": "as asked"}
    assert printed["workers"] == {"value": 3, "why": "as asked"}
    results = tmp_path / "out.jsonl"
    run = run_cli(*flags, *images, "-o", results, "-q")
    assert run.returncode == 0, run.stderr
    from resnet_cli.output.files import META_KEY

    recorded = json.loads(Path(f"{results}.meta.json").read_text())[META_KEY]["plan"]
    assert list(recorded) == list(printed)
    for name, row in printed.items():
        assert recorded[name] == row, name


def test_text_prints_every_choice_of_the_plan(tiny_model: Path) -> None:
    code, out, err = env("-m", tiny_model, "-b", "64", "-j", "3")
    assert code == 0, err
    rows = [line.split("  ")[1].strip() for line in out.splitlines() if line.startswith("  ")]
    assert rows[:4] == ["device", "precision", "runtime", "network"]
    for name in ("batch size", "workers", "channels last", "cudnn benchmark", "fold batchnorm"):
        assert name in rows
    assert "intra op threads" in rows
    assert any(line.split()[:4] == ["batch", "size", "64", "as"] for line in out.splitlines())
