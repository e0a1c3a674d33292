"""Image URLs -> bytes: timeouts, a size bound and retries with backoff, typed errors."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request

from .errors import ImageError
from .sources import offline_mode

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


def fetch_url(url: str, timeout: float | None = None, max_bytes: int | None = None) -> bytes:
    """Download one image. ``timeout`` bounds connecting and each read, and twice that the
    whole download; transient failures (timeouts, connection errors, 5xx, 429) are retried
    with backoff; anything else is an ImageError for this URL alone."""
    if offline_mode():
        raise ImageError("offline mode is on (--offline or HF_HUB_OFFLINE): URL not downloaded")
    default_timeout, default_limit = fetch_settings()
    timeout = timeout or default_timeout
    limit = max_bytes or default_limit
    delay = BACKOFF_S
    for attempt in range(RETRIES + 1):
        try:
            return _download(url, timeout, limit)
        except _Transient as exc:
            if attempt == RETRIES:
                raise ImageError(f"download failed after {RETRIES + 1} attempts: {exc}") from None
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class _Transient(Exception):
    """A failure worth retrying."""


def _download(url: str, timeout: float, limit: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise ImageError(_too_large(int(declared), limit))
            deadline = time.monotonic() + 2 * timeout
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(65536):
                size += len(chunk)
                if size > limit:
                    raise ImageError(_too_large(size, limit))
                if time.monotonic() > deadline:
                    raise _Transient(f"download took longer than {2 * timeout:g} s")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        message = f"HTTP {exc.code} {exc.reason}"
        if exc.code in _TRANSIENT_STATUS:
            raise _Transient(message) from None
        raise ImageError(f"download failed: {message}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _Transient(f"timed out after {timeout:g} s") from None
        raise _Transient(f"cannot connect: {reason}") from None
    except (TimeoutError, ConnectionError) as exc:
        raise _Transient(
            f"timed out after {timeout:g} s" if isinstance(exc, TimeoutError) else str(exc)
        ) from None
    data = b"".join(chunks)
    if not data:
        raise ImageError("not a readable image: the download is empty")
    return data


def _too_large(size: int, limit: int) -> str:
    return (
        f"download too large: more than {limit / 1048576:g} MB ({size} bytes); "
        "set RESNET_CLI_MAX_DOWNLOAD_MB to allow it"
    )
