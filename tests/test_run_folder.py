"""The run folder is shakegen's only when it says so: train never writes into, or deletes from,
a folder holding anything else, and --overwrite removes only the files shakegen wrote."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from shakegen import fileio
from shakegen.cli import main
from shakegen.errors import ConfigError
from shakegen.runs import checkpoint, folder
from shakegen.training.trainer import train


def _files(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _train(*args, data_dir):
    return CliRunner().invoke(
        main, ["train", "--preset", "tiny", "--max-steps", "1", "--data-dir", str(data_dir), *args]
    )


def _one_line_error(result):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("Error:"), result.output
    return lines[-1]


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_a_folder_holding_other_files_is_refused_and_left_alone(tmp_path, small_data, overwrite):
    """The issue's reproduction: a project folder with its own config.json and logs/."""
    project = tmp_path / "proj"
    (project / "logs").mkdir(parents=True)
    (project / "config.json").write_text('{"my":"settings"}\n')
    (project / "logs" / "app.log").write_text("x\n")
    before = _files(project)
    result = _train("--run-dir", str(project), *(["--overwrite"] if overwrite else []), data_dir=small_data)
    line = _one_line_error(result)
    assert "not a shakegen run folder" in line and "config.json" in line and "logs/app.log" in line
    assert "another --run-dir" in line
    assert _files(project) == before
    assert sorted(path.name for path in project.iterdir()) == ["config.json", "logs"]


def test_run_dir_dot_in_a_folder_with_other_files_is_refused(tmp_path, small_data, monkeypatch):
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "todo.txt").write_text("buy milk\n")
    (home / "history.csv").write_text("my,own\n1,2\n")  # a name shakegen uses, but not its run
    monkeypatch.chdir(home)
    before = _files(home)
    line = _one_line_error(_train("--run-dir", ".", data_dir=small_data))
    assert "notes/" in line and "todo.txt" in line
    assert _files(home) == before


@pytest.mark.parametrize("exists", [False, True], ids=["new", "empty"])
def test_a_new_or_empty_folder_is_used(tmp_path, small_data, exists):
    run_dir = tmp_path / "fresh"
    if exists:
        run_dir.mkdir()
    result = _train("--run-dir", str(run_dir), data_dir=small_data)
    assert result.exit_code == 0, result.output
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["format"] == "shakegen-run/1"  # every new run is marked
    assert folder.is_run(run_dir) and folder.is_run_folder(run_dir)


def test_overwrite_removes_only_what_shakegen_wrote(trained_run, small_data, small_config):
    (trained_run / "notes.txt").write_text("my notes on this run\n")
    (trained_run / "logs" / "mine.txt").write_text("kept\n")
    old_events = sorted(path.name for path in (trained_run / "logs").glob("events.out.tfevents.*"))
    assert old_events
    with pytest.raises(ConfigError, match="already holds a run"):
        train(small_config, trained_run, small_data)
    train(small_config.replace(max_steps=2), trained_run, small_data, overwrite=True)
    assert (trained_run / "notes.txt").read_text() == "my notes on this run\n"
    assert (trained_run / "logs" / "mine.txt").read_text() == "kept\n"
    new_events = sorted(path.name for path in (trained_run / "logs").glob("events.out.tfevents.*"))
    assert len(new_events) == 1 and not set(new_events) & set(old_events)  # the old run's events went
    assert checkpoint.read_state(trained_run / "last.npz")["global_step"] == 2


def test_a_run_without_the_marker_is_still_recognised_in_shakegens_layout(trained_run, small_data, small_config):
    raw = json.loads((trained_run / "config.json").read_text())
    del raw["format"]  # as a damaged config
    (trained_run / "config.json").write_text(json.dumps(raw))
    assert folder.is_run_folder(trained_run)
    train(small_config.replace(max_steps=1), trained_run, small_data, overwrite=True)
    assert json.loads((trained_run / "config.json").read_text())["format"] == "shakegen-run/1"
    # The same folder with a file of the user's beside it is no longer shakegen's layout.
    (trained_run / "config.json").write_text(json.dumps(raw))  # still without the marker
    (trained_run / "mine.txt").write_text("x")
    assert not folder.is_run_folder(trained_run)
    with pytest.raises(ConfigError, match="not a shakegen run folder.*mine.txt"):
        train(small_config, trained_run, small_data, overwrite=True)
    assert (trained_run / "mine.txt").read_text() == "x" and (trained_run / "last.npz").is_file()


def test_the_pretrained_bundle_is_a_run_folder_that_leaks_no_path():
    from shakegen.runs import pretrained

    assert folder.is_run_folder(pretrained.BUNDLE_DIR)
    info = checkpoint.read_run(pretrained.BUNDLE_DIR)
    assert info.data["source"] == "tinyshakespeare.txt"  # no build machine's folder
    assert "/tmp/" not in (pretrained.BUNDLE_DIR / "config.json").read_text()


def test_a_new_run_records_its_corpus_by_file_name(trained_run, small_data):
    source = json.loads((trained_run / "config.json").read_text())["data"]["source"]
    assert source == "corpus.txt"  # trained_run copies tests/runs.py's run, prepared from its corpus.txt


def test_an_occupied_run_dir_with_other_settings_names_every_way_out(trained_run, small_data):
    args = ["--run-dir", str(trained_run), "--data-dir", str(small_data), "--embedding-dim", "8", "--rnn-units", "32"]
    line = _one_line_error(CliRunner().invoke(main, ["train", "--preset", "tiny", *args]))
    assert "rnn_units 16 (saved) vs 32 (requested)" in line
    assert "--overwrite" in line and "--resume" in line and "--run-dir" in line


def test_rich_markup_in_a_run_dir_is_printed_as_typed(tmp_path, small_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _train("--run-dir", "runs/[/x]", data_dir=small_data)
    assert result.exit_code == 0, result.output
    assert "runs/[/x]" in result.output and (tmp_path / "runs" / "[" / "x]" / "last.npz").is_file()


def test_written_files_get_the_usual_mode_without_touching_the_umask(tmp_path, monkeypatch):
    """The system applies the umask to the temporary file (os.umask is never called: setting it to
    read it races other threads); a child with umask 027 gets 0o666 & ~0o027."""
    script = textwrap.dedent(
        """
        import os, sys
        os.umask(0o027)
        from shakegen import fileio
        fileio.write_text(sys.argv[1], "x")
        print(oct(os.stat(sys.argv[1]).st_mode & 0o777), oct(os.umask(0o022)))
        """
    )
    target = tmp_path / "child.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(fileio.__file__).resolve().parents[1])}
    output = subprocess.run([sys.executable, "-c", script, str(target)], env=env, capture_output=True, text=True)
    assert output.returncode == 0, output.stderr
    assert output.stdout.split() == [oct(0o666 & ~0o027), oct(0o027)]

    def forbidden(*args):
        raise AssertionError("os.umask called")

    monkeypatch.setattr(fileio.os, "umask", forbidden)
    fileio.write_json(tmp_path / "here.json", {"a": 1})
    assert json.loads((tmp_path / "here.json").read_text()) == {"a": 1}
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


def test_a_refused_folder_suggests_a_folder_that_does_not_exist(tmp_path):
    from shakegen.errors import ConfigError
    from shakegen.training.opening import check_run_folder_free

    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    (tmp_path / "run").mkdir()
    (tmp_path / "run-2").mkdir()
    with pytest.raises(ConfigError, match=r"such as \S*/run-3\.$"):
        check_run_folder_free(tmp_path, overwrite=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "run", "run-2"]


def test_a_file_given_as_the_run_is_named_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["generate", "--checkpoint", str(tmp_path / "notes.txt")])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"Error: {tmp_path / 'notes.txt'} is a file, not a run folder; pass the folder `shakegen train` wrote."
    )


def test_trains_hint_gives_a_seed_only_where_the_run_can_read_it(tmp_path, small_data):
    from shakegen.data import prepare

    own = tmp_path / "own.txt"
    own.write_text("abc abc abd abc bad cab " * 20, encoding="utf-8")  # no R, O, M, E or ':'
    prepare.prepare_corpus(own, tmp_path / "own")
    for data, seeded in ((small_data, True), (tmp_path / "own", False)):
        run = tmp_path / f"run-{seeded}"
        args = ["train", "--preset", "tiny", "--max-steps", "2", "--data-dir", str(data), "--run-dir", str(run)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        hint = "".join(result.output.split()).split("Runfolder:")[1]  # as if unwrapped (a wrap may split the path)
        expected = f'--checkpoint {run} --seed "ROMEO:")' if seeded else f"--checkpoint {run})"
        assert hint.endswith("".join(expected.split())), hint
