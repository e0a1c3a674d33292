"""Image URLs -> bytes: timeouts, a size bound and retries with backoff, typed errors."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from ..errors import ImageError
from ..text import printable

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
RETRIES = 3  # attempts after the first, for transient failures only
BACKOFF_S = 0.5  # doubled after each retry
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT = "resnet-classify (+https://pypi.org/project/resnet-cli/)"


def fetch_settings() -> tuple[float, int]:
    """(timeout in seconds, maximum bytes), from RESNET_CLI_HTTP_TIMEOUT and
    RESNET_CLI_MAX_DOWNLOAD_MB when set."""
    timeout = float(os.environ.get("RESNET_CLI_HTTP_TIMEOUT") or DEFAULT_TIMEOUT_S)
    megabytes = os.environ.get("RESNET_CLI_MAX_DOWNLOAD_MB")
    limit = int(float(megabytes) * 1024 * 1024) if megabytes else DEFAULT_MAX_BYTES
    return timeout, limit


def fetch_url(
    url: str, timeout: float | None = None, max_bytes: int | None = None, offline: bool = False
) -> bytes:
    """Download one image. ``timeout`` bounds connecting and each read, and twice that the
    whole download, headers and retries included (enforced while reading, so a server that
    trickles a byte at a time is cut off too); transient failures (timeouts, connection
    errors, 5xx, 429) are retried with backoff while that time lasts; anything else is an
    ImageError for this URL alone. ``offline`` (--offline): an ImageError, nothing sent.
    HF_HUB_OFFLINE is the hub's: it does not stop downloads from elsewhere."""
    if offline:
        raise ImageError("offline mode is on (--offline): URL not downloaded")
    default_timeout, default_limit = fetch_settings()
    timeout = timeout or default_timeout
    limit = max_bytes or default_limit
    deadline = _Deadline(time.monotonic() + 2 * timeout, 2 * timeout)
    delay = BACKOFF_S
    for attempt in range(1, RETRIES + 2):
        try:
            return _download(url, timeout, limit, deadline)
        except _Transient as exc:
            # Retry only when a whole attempt still fits before the deadline.
            if attempt == RETRIES + 1 or deadline.remaining() < delay + timeout:
                attempts = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                raise ImageError(f"download failed after {attempts}: {exc}") from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class _Transient(Exception):
    """A failure worth retrying."""


class _Deadline:
    """The whole download's deadline. Every socket it watches is shut down when it passes,
    which ends a read blocked in the middle of the headers or the body."""

    def __init__(self, at: float, seconds: float):
        self.at, self.seconds = at, seconds
        self.passed = False
        self.timers: list[threading.Timer] = []

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def watch(self, sock: socket.socket) -> socket.socket:
        timer = threading.Timer(max(0.0, self.remaining()), self._expire, args=(sock,))
        timer.daemon = True
        timer.start()
        self.timers.append(timer)
        return sock

    def _expire(self, sock: socket.socket) -> None:
        self.passed = True
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def error(self) -> ImageError:
        return ImageError(f"download failed: it took longer than {self.seconds:g} s")


def _watched(base: type[http.client.HTTPConnection], deadline: _Deadline) -> Any:
    """``base`` whose sockets ``deadline`` watches from the moment they connect (a TLS
    handshake included)."""

    def connect(address: Any, timeout: Any = None, *args: Any) -> socket.socket:
        connect_timeout = max(0.01, min(timeout or deadline.seconds, deadline.remaining()))
        return deadline.watch(socket.create_connection(address, connect_timeout, *args))

    class Watched(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._create_connection = connect

    return Watched


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(_watched(http.client.HTTPConnection, deadline), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(_watched(http.client.HTTPSConnection, deadline), req)

    return urllib.request.build_opener(HTTP(), HTTPS())


def _download(url: str, timeout: float, limit: int, deadline: _Deadline) -> bytes:
    try:
        data = _get(url, timeout, limit, deadline)
    except (ImageError, _Transient):
        if deadline.passed:
            raise deadline.error() from None
        raise
    finally:
        deadline.cancel()
    if deadline.passed:  # the body ended because its socket was shut down
        raise deadline.error()
    if not data:
        raise ImageError("not a readable image: the download is empty")
    return data


def _get(url: str, timeout: float, limit: int, deadline: _Deadline) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    chunks: list[bytes] = []
    try:
        with _opener(deadline).open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise ImageError(_too_large(int(declared), limit))
            size = 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > limit:
                    raise ImageError(_too_large(size, limit))
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            raise ImageError(f"download failed: redirected too often (HTTP {exc.code})") from None
        message = f"HTTP {exc.code} {one_line(str(exc.reason))}"
        if exc.code in _TRANSIENT_STATUS:
            raise _Transient(message) from None
        raise ImageError(f"download failed: {message}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _Transient(f"timed out after {timeout:g} s") from None
        if isinstance(reason, OSError | str):
            raise _Transient(f"cannot connect: {one_line(str(reason))}") from None
        raise _Transient(f"cannot connect: {one_line(repr(reason))}") from None
    except http.client.BadStatusLine as exc:
        raise ImageError(
            f"download failed: the server does not speak HTTP (it sent {one_line(str(exc))!r})"
        ) from None
    except (TimeoutError, ConnectionError) as exc:
        raise _Transient(
            f"timed out after {timeout:g} s"
            if isinstance(exc, TimeoutError)
            else one_line(str(exc))
        ) from None
    except (http.client.HTTPException, OSError) as exc:
        raise _Transient(
            f"the download broke off: {one_line(str(exc) or type(exc).__name__)}"
        ) from None
    return b"".join(chunks)


def one_line(text: str, width: int = 120) -> str:
    """Text from a server or the network as one printable line, at most ``width`` long."""
    line = printable(" ".join(text.split()))
    return line if len(line) <= width else line[: width - 3] + "..."


def _too_large(size: int, limit: int) -> str:
    return (
        f"download too large: more than {limit / 1048576:g} MB ({size} bytes); "
        "set RESNET_CLI_MAX_DOWNLOAD_MB to allow it"
    )
