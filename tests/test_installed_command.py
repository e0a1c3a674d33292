"""The installed ``resnet-classify`` command in a real subprocess: pipes, exit codes, fast start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND = shutil.which("resnet-classify")
pytestmark = pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")


def run(*args: object, stdin: bytes | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(COMMAND), *map(str, args)],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
    )


def test_pipe_paths_from_find_style_stdin(
    tiny_model: Path, images: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    listing = b"".join(bytes(p) + b"\0" for p in [*images, broken])
    result = run("-m", tiny_model, "-", "-0", stdin=listing)
    assert result.returncode == 1
    # stdout is not a terminal: jsonl by default, records only.
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["input"] for r in records] == [*map(str, images), str(broken)]
    assert all("predictions" in r for r in records[:-1])
    assert records[-1]["error"].startswith("not a readable image")
    assert b"6 inputs: 5 classified, 1 failed in " in result.stderr
    assert b"Traceback" not in result.stderr


def test_python_dash_m_and_exit_codes(tiny_model: Path, images: list[Path]) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "resnet_cli",
            "-m",
            str(tiny_model),
            "-q",
            "-f",
            "csv",
            str(images[0]),
        ],
        capture_output=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert ok.returncode == 0
    assert ok.stdout.decode().splitlines()[0] == "input,rank,label,score,class_id,error"
    usage = run("-m", tiny_model, "--top-k", "0", images[0])
    assert usage.returncode == 2
    assert usage.stderr.decode().strip().splitlines()[-1].startswith("Error:")
    model = run("-m", "/no/such/model", images[0])
    assert model.returncode == 3
    assert model.stderr.decode().strip() == (
        "Error: no such model folder: '/no/such/model': check the path, or pass a hub id"
    )


def test_bad_option_is_one_line(tiny_model: Path) -> None:
    result = run("--no-such-option")
    assert result.returncode == 2
    # Click may add its close matches: "(Possible options: --install-completion, ...)".
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: No such option: --no-such-option")


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    result = run("-m", "/no/such/model", tmp_path, env={"RESNET_CLI_DEBUG": "1"})
    assert result.returncode in (2, 3)
    quiet = run("-m", "/no/such/model", tmp_path)
    assert b"Traceback" not in quiet.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["-V"],
        ["--show-completion"],
        ["--top-k", "nope", "x.jpg"],
        [],
        ["missing.jpg"],
        ["report", "--help"],
        ["report", "missing.jsonl", "-o", "report.html"],
        ["--engine", "ray", "x.jpg"],
        ["--engine", "ray", "x.jpg", "-o", "results", "-f", "csv"],
        ["config", "--help"],
        ["config", "list"],
        ["config", "set", "model", "./no-such-folder"],
    ],
)
def test_help_version_and_usage_errors_never_import_torch(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from resnet_cli.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as exit:\n"
        "    heavy = sorted(m for m in ('torch', 'transformers', 'datasets', 'torchvision', 'ray')"
        " if m in sys.modules)\n"
        "    print('HEAVY=' + ','.join(heavy), 'CODE=' + str(exit.code), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *args], capture_output=True, timeout=60, text=True
    )
    assert "HEAVY= CODE=" in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_completes_each_command() -> None:
    # The script the shell loads, then what Tab offers after each line, as bash computes it.
    script = (
        'source <(_RESNET_CLASSIFY_COMPLETE=source_bash "$CMD")\n'
        'tab() { COMP_WORDS=(resnet-classify "$@"); COMP_CWORD=$#; COMPREPLY=()\n'
        '  _resnet_classify_completion "$CMD"; echo "${COMPREPLY[*]}"; }\n'
        "tab -f ''\n"
        "tab photos/ --organize-mode ''\n"
        "tab report --ti\n"
        "tab env -f ''\n"
        "tab merge results/ -f j\n"
        "tab ''\n"
    )
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        timeout=120,
        text=True,
        env={**os.environ, "CMD": str(COMMAND)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "table json jsonl csv parquet",
        "link symlink copy move",
        "--title",  # report's options after report, not the main command's
        "text json",
        "json jsonl",
        "",  # nothing of ours: bash completes file names (complete -o default)
    ]
