"""URL inputs against a local HTTP server: good, missing, non-image, slow, oversized, flaky."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import scene

COMMAND = shutil.which("resnet-classify")
pytestmark = pytest.mark.skipif(COMMAND is None, reason="resnet-classify is not installed")


def jpeg_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    scene(320, 240, seed=seed).save(buffer, "JPEG")
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    flaky_hits = 0

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def send(self, status: int, body: bytes, kind: str = "image/jpeg") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may give up (timeout or size limit), as the tests intend.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/cat.jpg":
            self.send(200, jpeg_bytes(1))
        elif self.path == "/missing.jpg":
            self.send(404, b"not here", "text/plain")
        elif self.path == "/page.jpg":
            self.send(200, b"<html><body>hello</body></html>", "text/html")
        elif self.path == "/slow.jpg":
            time.sleep(4)
            self.send(200, jpeg_bytes(2))
        elif self.path == "/huge.jpg":
            self.send(200, b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024))
        elif self.path == "/endless.jpg":  # no Content-Length: the limit must hold while reading
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/flaky.jpg":
            type(self).flaky_hits += 1
            if type(self).flaky_hits == 1:
                self.send(503, b"busy", "text/plain")
            else:
                self.send(200, jpeg_bytes(3))
        else:
            self.send(500, b"?", "text/plain")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def run(
    model: Path, *args: str, offline: bool = False, hub_offline: bool = False
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "RESNET_CLI_HTTP_TIMEOUT": "1", "RESNET_CLI_MAX_DOWNLOAD_MB": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    if hub_offline:
        env["HF_HUB_OFFLINE"] = "1"
    command = [str(COMMAND), "-m", str(model), "-f", "jsonl", *args]
    if offline:
        command.append("--offline")
    return subprocess.run(command, capture_output=True, timeout=120, env=env)


def test_each_url_gets_its_own_record(tiny_model: Path, server: str, tmp_path: Path) -> None:
    local = tmp_path / "local.jpg"
    local.write_bytes(jpeg_bytes(1))
    names = ["cat", "missing", "page", "slow", "huge", "endless", "flaky"]
    urls = [f"{server}/{name}.jpg" for name in names]
    result = run(tiny_model, *urls, str(local))
    assert result.returncode == 1, result.stderr
    records = {r["input"]: r for r in map(json.loads, result.stdout.decode().splitlines())}
    assert list(records) == [*urls, str(local)]
    by_name = dict(zip(names, records.values(), strict=False))
    # The same picture over HTTP and from disk gets the same answer.
    assert by_name["cat"]["predictions"] == records[str(local)]["predictions"]
    assert "predictions" in by_name["flaky"]  # a 503 is retried
    assert by_name["missing"]["error"] == "download failed: HTTP 404 Not Found"
    assert by_name["page"]["error"].startswith("not a readable image")
    assert "timed out after 1 s" in by_name["slow"]["error"]
    assert by_name["huge"]["error"].startswith("download too large")
    assert by_name["endless"]["error"].startswith("download too large")
    assert b"Traceback" not in result.stderr


def test_offline_never_downloads(tiny_model: Path, server: str, tmp_path: Path) -> None:
    Handler.flaky_hits = 0
    url = f"{server}/flaky.jpg"
    local = tmp_path / "local.jpg"
    local.write_bytes(jpeg_bytes(1))
    result = run(tiny_model, url, str(local), offline=True)
    assert result.returncode == 1  # an input failed; the others were classified
    first, second = map(json.loads, result.stdout.decode().splitlines())
    assert first == {"input": url, "error": "offline mode is on (--offline): URL not downloaded"}
    assert second["input"] == str(local) and second["predictions"]
    assert Handler.flaky_hits == 0


def test_hub_offline_is_for_the_hub_alone(tiny_model: Path, server: str, tmp_path: Path) -> None:
    # Users set HF_HUB_OFFLINE=1 for good once their models are cached: URLs still download.
    local = tmp_path / "local.jpg"
    local.write_bytes(jpeg_bytes(1))
    result = run(tiny_model, f"{server}/cat.jpg", str(local), hub_offline=True)
    assert result.returncode == 0, result.stderr
    url_record, local_record = map(json.loads, result.stdout.decode().splitlines())
    assert url_record["input"] == f"{server}/cat.jpg"
    assert url_record["predictions"] == local_record["predictions"]  # the same picture


def test_ray_decode_tasks_follow_offline_alone(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Ray engine's decode task (run here without Ray): what it gets is the run's --offline.
    from resnet_cli.inputs.sources import Source
    from resnet_cli.pipeline.ray_job import _decode_rows, _input_tables

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = f"{server}/cat.jpg"
    (table,) = _input_tables([Source(name=url, url=url)], skip=(), rows_per_block=8)
    errors = {
        offline: _decode_rows(table, resize=None, max_pixels=None, offline=offline)
        .column("error")
        .to_pylist()
        for offline in (False, True)
    }
    assert errors == {False: [None], True: ["offline mode is on (--offline): URL not downloaded"]}
