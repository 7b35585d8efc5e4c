"""eval --text names what is wrong with a path that is there but is no regular file (/dev/null, a pipe)."""

import os

from click.testing import CliRunner

from shakegen.cli import main


def test_a_path_that_exists_but_is_no_regular_file_is_not_called_missing(trained_run, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path in (os.devnull, str(fifo)):
        result = CliRunner().invoke(main, ["eval", "--checkpoint", str(trained_run), "--text", path])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "is not a regular file" in result.output and "does not exist" not in result.output
