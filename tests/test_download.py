import os
import time

import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.data import corpus
from shakegen.data import download as downloading
from shakegen.data.download import DownloadError, download, file_sha256
from tests.httpserver import BODY, GZIPPED, Server

SHA = corpus.TINY_SHAKESPEARE_SHA256


@pytest.fixture
def server():
    with Server() as running:
        yield running


def test_download_verifies_and_skips_a_good_copy(server, tmp_path):
    out = tmp_path / "raw" / "t.txt"
    result = download(f"{server.base}/input.txt", out, sha256=SHA)
    assert result.fetched and out.read_bytes() == BODY and result.sha256 == SHA
    again = download(f"{server.base}/input.txt", out, sha256=SHA)
    assert not again.fetched and server.hits("/input.txt") == 1
    download(f"{server.base}/input.txt", out, sha256=SHA, force=True)
    assert server.hits("/input.txt") == 2


def test_retries_503_then_succeeds(server, tmp_path):
    out = tmp_path / "t.txt"
    download(f"{server.base}/flaky-503", out, sha256=SHA, retries=2)
    assert server.hits("/flaky-503") == 2 and file_sha256(out) == SHA


@pytest.fixture
def sleeps(monkeypatch):
    """The waits urllib3 asks for, recorded instead of slept (it calls time.sleep)."""
    asked = []
    monkeypatch.setattr(time, "sleep", asked.append)
    return asked


def test_honours_retry_after_on_429(server, tmp_path, sleeps):
    download(f"{server.base}/limited-429", tmp_path / "t.txt", sha256=SHA, retries=2)
    assert sleeps == [1] and server.hits("/limited-429") == 2


def test_caps_a_hostile_retry_after(server, tmp_path, sleeps):
    # The server asks for a day; the wait is capped, then the retry succeeds.
    download(f"{server.base}/hostile-429", tmp_path / "t.txt", sha256=SHA, retries=2)
    assert sleeps == [60.0] and downloading.RETRY_AFTER_CAP_SECONDS == 60.0
    assert server.hits("/hostile-429") == 2


def test_gzip_server_gives_the_uncompressed_file(server, tmp_path):
    # Content-Length counts the compressed bytes; the file holds the uncompressed ones.
    assert len(GZIPPED) < len(BODY) // 2
    seen = []
    result = download(
        f"{server.base}/gzip/input.txt", tmp_path / "t.txt", sha256=SHA, progress=lambda *a: seen.append(a)
    )
    assert result.sha256 == SHA and result.size == len(BODY) and file_sha256(tmp_path / "t.txt") == SHA
    assert seen[-1] == (len(GZIPPED), len(GZIPPED))  # progress counts bytes on the wire


def test_cli_download_from_a_compressing_server(server, tmp_path):
    out = tmp_path / "c.txt"
    result = CliRunner().invoke(main, ["download", "--url", f"{server.base}/gzip/input.txt", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert file_sha256(out) == SHA and server.hits("/gzip/input.txt") == 1


def _assert_untouched_failure(url, tmp_path, match, **kwargs):
    out = tmp_path / "t.txt"
    out.write_bytes(b"previous good file")
    with pytest.raises(DownloadError, match=match) as info:
        download(url, out, force=True, **kwargs)  # asked to replace it: a failed download still leaves it as it was
    assert out.read_bytes() == b"previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
    assert "embedded" in str(info.value)


@pytest.mark.parametrize(
    "path, match, kwargs",
    [
        # The byte counts in the message come from download.py's own completeness check.
        ("/truncated", f"incomplete: received 1000 of {len(BODY)} bytes", {}),
        ("/gzip/truncated", f"incomplete: received 5000 of {len(GZIPPED)} bytes", {}),
        ("/bad-length", "malformed Content-Length header 'about a megabyte'", {}),
        ("/wrong.txt", "does not match the expected SHA-256", {"sha256": SHA}),
        ("/html", "HTML page", {}),
        ("/missing", "HTTP 404", {}),
        ("/always-503", "HTTP 503.*after 1 retries", {"retries": 1}),
        ("/slow", "timed out", {"timeout": 0.5, "retries": 0}),
    ],
)
def test_faults_leave_existing_file_untouched(server, tmp_path, path, match, kwargs):
    _assert_untouched_failure(f"{server.base}{path}", tmp_path, match, **kwargs)


def test_refused_connection(tmp_path):
    with Server() as stopped:
        url = f"{stopped.base}/input.txt"
    _assert_untouched_failure(url, tmp_path, "connection to .* failed", retries=0)


def test_unresolvable_host(tmp_path):
    _assert_untouched_failure("http://no-such-host.invalid/x.txt", tmp_path, "failed", retries=0, timeout=2)


def test_cli_download_against_local_server(server, tmp_path):
    runner = CliRunner()
    out = tmp_path / "c.txt"
    result = runner.invoke(main, ["download", "--url", f"{server.base}/input.txt", "--out", str(out), "--sha256", SHA])
    assert result.exit_code == 0, result.output
    assert file_sha256(out) == SHA
    result = runner.invoke(main, ["download", "--url", f"{server.base}/missing", "--out", str(out), "--force"])
    assert result.exit_code == 1
    assert "HTTP 404" in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_a_file_already_at_out_is_never_replaced_unasked(server, tmp_path):
    out = tmp_path / "notes.txt"
    out.write_bytes(b"mine")
    for extra in ([], ["--sha256", SHA]):  # not known to be the download / not matching it
        result = CliRunner().invoke(main, ["download", "--url", f"{server.base}/input.txt", "--out", str(out), *extra])
        assert result.exit_code == 1 and "already exists" in result.output and "--force" in result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1
        assert out.read_bytes() == b"mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert server.hits("/input.txt") == 0  # refused before anything is fetched
    result = CliRunner().invoke(main, ["download", "--url", f"{server.base}/input.txt", "--out", str(out), "--force"])
    assert result.exit_code == 0 and file_sha256(out) == SHA


def test_cli_malformed_content_length_is_one_line(server, tmp_path):
    result = CliRunner().invoke(main, ["download", "--url", f"{server.base}/bad-length", "--out", str(tmp_path / "c")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "malformed Content-Length" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_stale_temporary_files_of_a_killed_download_are_removed(server, tmp_path):
    out = tmp_path / "t.txt"
    stale, fresh, other = (
        tmp_path / ".t.txt.k1ll3d_x.tmp",
        tmp_path / ".t.txt.inflight.tmp",
        tmp_path / ".u.txt.abcdefgh.tmp",
    )
    for path in (stale, fresh, other):
        path.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    download(f"{server.base}/input.txt", out, sha256=SHA)
    # Only the old leftover of this file goes: a fresh one may be another download in flight.
    assert not stale.exists() and fresh.exists() and other.exists()


def test_help_states_the_retry_after_cap():
    result = CliRunner().invoke(main, ["download", "--help"])
    assert "Retry-After up to 60 s" in " ".join(result.output.split())


def _one_line_error(result, *expected):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(text in lines[0] for text in expected), lines[0]


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1/x.txt", "http://a..b/x.txt"])
def test_cli_malformed_urls_are_one_line(tmp_path, url):
    result = CliRunner().invoke(main, ["download", "--url", url, "--out", str(tmp_path / "c.txt"), "--retries", "0"])
    _one_line_error(result, "not a valid URL")
    assert list(tmp_path.iterdir()) == []


def test_cli_a_malformed_sha256_is_refused_before_fetching(server, tmp_path):
    out = tmp_path / "c.txt"
    args = ["download", "--url", f"{server.base}/input.txt", "--out", str(out), "--sha256", "86c4e6aa9d"]
    _one_line_error(CliRunner().invoke(main, args), "not 64 hexadecimal digits", "--sha256")
    assert server.hits("/input.txt") == 0 and not out.exists()


def test_cli_an_out_that_cannot_be_written_is_refused_before_fetching(server, tmp_path):
    (tmp_path / "notes").write_text("mine")
    args = ["download", "--url", f"{server.base}/input.txt", "--out", str(tmp_path / "notes" / "c.txt")]
    _one_line_error(CliRunner().invoke(main, args), "notes is a file, not a folder", "--out")
    assert server.hits("/input.txt") == 0 and (tmp_path / "notes").read_text() == "mine"


def test_cli_an_empty_out_is_a_folder_refused_before_fetching(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["download", "--url", f"{server.base}/input.txt", "--out", ""]
    _one_line_error(CliRunner().invoke(main, args), "it is a folder", "--out")
    assert server.hits("/input.txt") == 0 and list(tmp_path.iterdir()) == []
