"""Fetching a corpus over HTTP: retries, timeouts, verification and an atomic write."""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import LocationParseError
from urllib3.util.retry import Retry

from shakegen import fileio
from shakegen.data import corpus
from shakegen.errors import ConfigError, ShakegenError
from shakegen.fileio import file_sha256

DEFAULT_MAX_BYTES = 2 * 1024**3
RETRY_STATUSES = (429, 500, 502, 503, 504)
# The longest wait a server's Retry-After can impose before each retry. A fixed figure rather
# than one tied to --timeout: --timeout bounds network silence, and a server asking for up to a
# minute (rate limits, CDN 503s) is usually right; longer asks are capped, so a hostile or
# broken server stalls a download for at most retries x 60 s (3 minutes by default), not hours.
RETRY_AFTER_CAP_SECONDS = 60.0
_OFFLINE_HINT = "To work offline, skip the download: `shakegen prepare` uses the corpus embedded in shakegen."


class DownloadError(ShakegenError, RuntimeError):
    """The download failed; the file on disk, if any, is untouched."""

    def __init__(self, message: str):
        super().__init__(f"{message} {_OFFLINE_HINT}")


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    fetched: bool  # False when a verified copy was already present


def default_sha256(url: str) -> str | None:
    """The known hash of ``url``'s content, if it is the default corpus."""
    return corpus.TINY_SHAKESPEARE_SHA256 if url == corpus.TINY_SHAKESPEARE_URL else None


class CappedRetry(Retry):
    """urllib3's Retry, with each Retry-After wait capped at ``RETRY_AFTER_CAP_SECONDS``."""

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), RETRY_AFTER_CAP_SECONDS)


def make_session(retries: int) -> requests.Session:
    retry = CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=0.5,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=("GET",),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = "shakegen"
    return session


def download(
    url: str,
    out: str | Path,
    *,
    sha256: str | None = None,
    force: bool = False,
    timeout: float = 30.0,
    retries: int = 3,
    max_bytes: int = DEFAULT_MAX_BYTES,
    progress: Callable[[int, int | None], None] | None = None,
) -> DownloadResult:
    """Download ``url`` to ``out`` atomically.

    Args:
        sha256: expected hex digest; a present file that matches is not fetched again
            (unless ``force``), and a download that does not match is refused.
        force: fetch even when a matching file is present, and replace a file at ``out`` that
            does not match (or, without ``sha256``, any file there); without it such a file is
            refused, never replaced.
        timeout: seconds for the connection and for each read.
        retries: retries on connection errors, 429 and 5xx, with backoff and Retry-After
            (each wait capped at ``RETRY_AFTER_CAP_SECONDS``).
        max_bytes: refuse bodies larger than this.
        progress: called with (bytes received, total bytes or None).
    Returns:
        What was written, or what was found already present.
    Raises:
        ConfigError: ``sha256`` is not a SHA-256, ``out`` cannot be written, or a file at ``out``
            would be replaced without ``force``; nothing is fetched.
        DownloadError: any other failure; ``out`` is then exactly as it was before.
    """
    out = Path(out)
    sha256 = sha256.lower() if sha256 else None
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ConfigError(
            f"The expected SHA-256 {sha256[:80]!r} is not 64 hexadecimal digits. Pass the corpus's SHA-256 "
            "(as sha256sum prints it) with --sha256, or --sha256 '' to skip the check."
        )
    fileio.remove_stale_temporaries(out.parent, out.name)  # left by a killed download
    if out.is_file() and not force:
        if sha256 and file_sha256(out) == sha256:
            return DownloadResult(out, out.stat().st_size, sha256, fetched=False)
        why = "does not match the expected SHA-256" if sha256 else "is not known to be this download"
        raise ConfigError(
            f"{out} already exists and {why}; it is never replaced unasked. "
            "Pass --force to replace it with the download, or choose another --out."
        )
    host = _checked_host(url)
    _check_writable(out)
    try:
        with make_session(retries) as session:
            response = session.get(url, stream=True, timeout=(timeout, timeout))
            with response:
                _check_response(response, url, max_bytes, retries)
                size, digest = _stream_to_file(response, out, url, sha256, max_bytes, progress)
    except requests.exceptions.Timeout:
        raise DownloadError(f"Download of {url} timed out (no answer within {timeout:g} s; try --timeout).") from None
    except requests.exceptions.RetryError as error:
        raise DownloadError(f"Download of {url} failed after {retries} retries: {_reason(error)}.") from None
    except requests.exceptions.ConnectionError as error:
        raise DownloadError(f"Could not download {url}: connection to {host} failed ({_reason(error)}).") from None
    except requests.exceptions.ChunkedEncodingError:
        raise DownloadError(
            f"Download of {url} is incomplete: the connection closed before the whole body arrived. Try again."
        ) from None
    except requests.exceptions.RequestException as error:
        raise DownloadError(f"Could not download {url}: {_reason(error)}.") from None
    except LocationParseError as error:  # a host urllib3 cannot encode ("a..b"), raised past requests
        raise DownloadError(f"Cannot download {url!r}: it is not a valid URL ({error}).") from None
    return DownloadResult(out, size, digest, fetched=True)


def _checked_host(url: str) -> str:
    """The host of an http(s) ``url``; DownloadError if it is not one."""
    try:
        parsed = urlparse(url)
    except ValueError as error:  # "http://[::1": an unclosed IPv6 address
        raise DownloadError(f"Cannot download {url!r}: it is not a valid URL ({error}).") from None
    if parsed.scheme not in ("http", "https"):
        raise DownloadError(f"Cannot download {url!r}: expected an http:// or https:// URL.")
    return parsed.netloc


def _check_writable(out: Path) -> None:
    """Fail before any transfer if ``out`` cannot be written (a folder, in a file, or not writable)."""
    if out.is_dir():
        raise ConfigError(f"Cannot write the download to {out}: it is a folder. Pass a file path with --out.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as error:
        raise ConfigError(
            f"Cannot write the download to {out}: {corpus.unwritable_reason(out.parent, error)}. "
            "Pass an --out in a folder you can create and write to."
        ) from None


def _reason(error: Exception) -> str:
    text = str(error.args[0] if error.args else error)
    for marker in (
        "Name or service not known",
        "Connection refused",
        "Temporary failure in name resolution",
        "No address associated",
        "Read timed out",
        "too many 429",
        "too many 5",
    ):
        if marker.lower() in text.lower():
            return marker
    return text.split(": ")[-1][:160] if len(text) > 160 else text


def _check_response(response: requests.Response, url: str, max_bytes: int, retries: int) -> None:
    if response.status_code >= 400:
        tried = f" after {retries} retries" if response.status_code in RETRY_STATUSES else ""
        raise DownloadError(
            f"Could not download {url}: the server answered HTTP {response.status_code} {response.reason}{tried}."
        )
    content_type = response.headers.get("Content-Type", "")
    if "html" in content_type.lower():
        raise DownloadError(
            f"Refusing {url}: the server sent an HTML page ({content_type}), not a plain-text corpus; "
            "check the URL points at the raw file."
        )
    length = content_length(response, url)
    if length is not None and length > max_bytes:
        raise DownloadError(f"Refusing {url}: it is {length} bytes, above the limit of {max_bytes} bytes.")


def content_length(response: requests.Response, url: str) -> int | None:
    """The Content-Length header as a byte count (None if absent).

    It counts the bytes on the wire: compressed ones when the server sends
    ``Content-Encoding: gzip``. Repeated equal values ("42, 42") are allowed, as in RFC 9110.

    Raises:
        DownloadError: the header is not a byte count.
    """
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    values = {part.strip() for part in value.split(",")}
    if len(values) != 1 or not re.fullmatch(r"[0-9]+", next(iter(values))):
        raise DownloadError(
            f"Could not download {url}: the server sent a malformed Content-Length header {value[:40]!r}; "
            "expected a byte count such as 1115394, without which a cut-off download cannot be detected. "
            "Try again later or download from another URL."
        )
    return int(values.pop())


def _stream_to_file(response, out: Path, url: str, sha256: str | None, max_bytes: int, progress) -> tuple[int, str]:
    """Write the body to ``out`` through a temporary file, renamed only once verified.

    Two counts: bytes on the wire (``response.raw.tell()``), which Content-Length counts and
    the progress shows, and bytes of the body once decompressed, which are written, hashed
    and held to ``max_bytes``. They differ when the server compresses.
    """
    expected = content_length(response, url)
    # The check below is the one completeness check, counting wire bytes whatever the
    # encoding; urllib3's own would otherwise raise first, with a vaguer "connection broken".
    response.raw.enforce_content_length = False
    digest = hashlib.sha256()
    written = 0
    with fileio.atomic_open(out, "wb") as handle:
        for block in response.iter_content(chunk_size=64 * 1024):
            written += len(block)
            if written > max_bytes:
                raise DownloadError(f"Refusing {url}: the body exceeds the limit of {max_bytes} bytes.")
            digest.update(block)
            handle.write(block)
            if progress:
                progress(response.raw.tell(), expected)
        on_wire = response.raw.tell()
        if expected is not None and on_wire != expected:
            raise DownloadError(f"Download of {url} is incomplete: received {on_wire} of {expected} bytes. Try again.")
        if sha256 and digest.hexdigest() != sha256:
            raise DownloadError(
                f"Download of {url} does not match the expected SHA-256: got {digest.hexdigest()}, "
                f"expected {sha256}. The file may be corrupt or a different version; pass the right "
                "--sha256 or --sha256 '' to skip the check."
            )
    return written, digest.hexdigest()
