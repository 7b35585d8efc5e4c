import json

import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.config import ConfigError
from shakegen.model.cells import parameter_count
from shakegen.runs import checkpoint
from shakegen.training.compare import compare, parse_cells


def test_compare_trains_each_cell_once_and_writes_results(tmp_path, small_data, small_config):
    base = small_config.replace(epochs=1, max_steps=5)
    rows = compare(["gru", "gru3"], base, tmp_path / "cmp", small_data)
    assert [row["cell"] for row in rows] == ["gru", "gru3"]
    vocab_size = len(checkpoint.read_run(tmp_path / "cmp" / "gru").vocab)
    for row in rows:
        expected = vocab_size * 8 + parameter_count(row["cell"], 8, 16) + 16 * vocab_size + vocab_size
        assert row["parameters"] == expected
        assert row["best_val_loss"] > 0 and row["characters_seen"] > 0
    assert rows[1]["parameters"] < rows[0]["parameters"]
    for name in ("compare.csv", "compare.json", "compare.png"):
        assert (tmp_path / "cmp" / name).is_file()
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["cells"] == rows
    stamps = {cell: (tmp_path / "cmp" / cell / "last.npz").stat().st_mtime_ns for cell in ("gru", "gru3")}
    again = compare(["gru", "gru3"], base, tmp_path / "cmp", small_data)
    assert again == rows
    assert stamps == {cell: (tmp_path / "cmp" / cell / "last.npz").stat().st_mtime_ns for cell in ("gru", "gru3")}


def test_seeds_and_a_character_budget(tmp_path, small_data, small_config):
    base = small_config.replace(max_characters=3000, epochs=100)  # 3000 / (8 × 16) → 24 steps
    rows = compare(["gru", "gru3"], base, tmp_path / "cmp", small_data, seeds=[1, 2])
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert len(report["runs"]) == 4
    for row in rows:
        runs = [run for run in report["runs"] if run["cell"] == row["cell"]]
        assert sorted(run["random_seed"] for run in runs) == [1, 2] == row["seeds"]
        losses = [run["best_val_loss"] for run in runs]
        assert losses[0] != losses[1]  # the seeds really differ
        assert row["best_val_loss"] == pytest.approx(sum(losses) / 2)
        assert (row["best_val_loss_min"], row["best_val_loss_max"]) == (min(losses), max(losses))
        for run in runs:
            assert run["characters_seen"] == 24 * 8 * 16  # the budget, rounded up to whole steps
            history = checkpoint.read_history(run["run_dir"])
            assert len(history) >= 10  # validated inside the budget, not only at its end
    assert (tmp_path / "cmp" / "gru-seed2" / "last.npz").is_file()
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_compare_with_seeds(tmp_path, small_data):
    args = ["compare", "--preset", "tiny", "--cells", "gru3", "--seeds", "1,2", "--characters", "2000"]
    result = CliRunner().invoke(main, [*args, "--data-dir", str(small_data), "--out-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "mean over 2 seeds" in result.output and "gru3" in result.output
    bad = CliRunner().invoke(main, ["compare", "--seeds", "1,x"])
    assert bad.exit_code == 1 and "--seeds must be comma-separated integers" in bad.output


def test_cell_list_is_checked():
    assert parse_cells("gru, classic,gru") == ["gru", "classic"]
    with pytest.raises(ConfigError, match="lstm"):
        parse_cells("gru,lstm")
    result = CliRunner().invoke(main, ["compare", "--cells", "gru,lstm"])
    assert result.exit_code == 1 and "lstm" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("cell", ["classic", "gru1", "gru2", "gru3"])
def test_every_cell_trains_generates_and_evaluates(tmp_path, small_data, small_config, cell):
    from shakegen.training.trainer import train

    run_dir = tmp_path / cell
    train(small_config.replace(cell=cell, epochs=1, max_steps=5), run_dir, small_data)
    assert checkpoint.read_run(run_dir).config.cell == cell
    runner = CliRunner()
    generated = runner.invoke(
        main, ["generate", "--checkpoint", str(run_dir), "--seed", "First", "--length", "30", "--random-seed", "0"]
    )
    assert generated.exit_code == 0 and len(generated.stdout) == len("First") + 30
    report = runner.invoke(main, ["eval", "--checkpoint", str(run_dir), "--data-dir", str(small_data), "--json"])
    assert report.exit_code == 0 and json.loads(report.stdout)["cell"] == cell


def test_a_budget_of_many_epochs_validates_at_epoch_ends_only(tmp_path, small_data, small_config):
    """Training validates at each epoch's end; a budget of ten epochs or more needs no other points."""
    from shakegen.data.prepare import load_prepared
    from shakegen.training.dataset import steps_per_epoch

    config = small_config.replace(batch_size=64)  # a few steps an epoch: twelve epochs are quick
    epoch = steps_per_epoch(len(load_prepared(small_data).train), config.seq_length, config.batch_size)
    characters = 12 * epoch * config.batch_size * config.seq_length
    base = config.replace(max_characters=characters, epochs=12)
    compare(["gru3"], base, tmp_path / "cmp", small_data)
    epochs = [row["epoch"] for row in checkpoint.read_history(tmp_path / "cmp" / "gru3")]
    assert epochs == list(range(1, 13))  # one row per epoch, none a step before an epoch's end


# --- stale runs (issue 25 items 3 and 6) ------------------------------------------------------


def _cli_compare(small_data, out_dir, *args):
    base = ["compare", "--cells", "gru3", "--data-dir", str(small_data), "--out-dir", str(out_dir)]
    return CliRunner().invoke(main, [*base, *args])


def _files(folder):
    """Every file under ``folder`` with its bytes: what "nothing on disk changed" compares."""
    return {path: path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def _error_lines(result):
    return [line for line in result.output.splitlines() if line.strip()]


def test_a_run_made_with_other_settings_is_refused_and_overwrite_trains_it_again(tmp_path, small_data):
    out = tmp_path / "cmp"
    first = _cli_compare(small_data, out, "--preset", "tiny", "--characters", "2000")
    assert first.exit_code == 0, first.output
    (out / "notes.txt").write_text("mine")  # the user's own file beside the runs
    before = _files(out)
    for args, named in (
        (["--preset", "quick", "--characters", "4000"], "rnn_units 16 there, 512 asked"),  # the case
        (["--preset", "tiny", "--characters", "4000"], "max_characters 2000 there, 4000 asked"),
        (["--preset", "tiny", "--characters", "2000", "--random-seed", "7"], "random_seed 42 there, 7 asked"),
    ):
        refused = _cli_compare(small_data, out, *args)
        assert refused.exit_code == 1, refused.output
        assert "Traceback" not in refused.output and len(_error_lines(refused)) == 1, refused.output
        assert named in refused.output and "--out-dir" in refused.output and "--overwrite" in refused.output
        assert _files(out) == before  # nothing trained, nothing written
    again = _cli_compare(small_data, out, "--preset", "tiny", "--characters", "4000", "--overwrite")
    assert again.exit_code == 0, again.output
    info = checkpoint.read_run(out / "gru3")
    state = checkpoint.read_state(out / "gru3" / "last.npz")
    assert info.config.max_characters == 4000 and state["characters_seen"] == 8 * 16 * 32  # ceil(4000 / 512) steps
    report = json.loads((out / "compare.json").read_text())
    assert report["runs"][0]["characters_seen"] == 8 * 16 * 32
    assert (out / "notes.txt").read_text() == "mine"
    # The same settings again: the run is reused as it is.
    stamp = (out / "gru3" / "last.npz").stat().st_mtime_ns
    reused = _cli_compare(small_data, out, "--preset", "tiny", "--characters", "4000")
    assert reused.exit_code == 0, reused.output
    assert (out / "gru3" / "last.npz").stat().st_mtime_ns == stamp


def test_an_interrupted_run_resumes_only_with_its_own_settings(tmp_path, small_data, small_config):
    from shakegen.errors import TrainingInterrupted
    from shakegen.training.events import Validated

    def interrupt(event):
        if isinstance(event, Validated):
            raise KeyboardInterrupt

    base = small_config.replace(max_characters=3000, epochs=100)  # 24 steps of 8 × 16
    with pytest.raises(TrainingInterrupted):
        compare(["gru3"], base, tmp_path / "cmp", small_data, progress=interrupt)
    state = checkpoint.read_state(tmp_path / "cmp" / "gru3" / "last.npz")
    assert not state.get("stop_reason") and state["characters_seen"] < 3000
    before = _files(tmp_path / "cmp")
    with pytest.raises(ConfigError, match="max_characters 3000 there, 6000 asked.*--overwrite"):
        compare(["gru3"], base.replace(max_characters=6000), tmp_path / "cmp", small_data)
    assert _files(tmp_path / "cmp") == before
    rows = compare(["gru3"], base, tmp_path / "cmp", small_data)  # the same settings: resumed to the budget
    assert rows[0]["characters_seen"] == 24 * 8 * 16
    history = checkpoint.read_history(tmp_path / "cmp" / "gru3")
    assert [row["step"] for row in history] == sorted({row["step"] for row in history})  # resumed, not restarted


def test_a_character_budget_is_trained_whatever_the_presets_caps(tmp_path, small_data):
    """tiny caps max_steps at 20 and epochs at 2 (10 steps each on this corpus): 40 steps asked, 40 trained."""
    from shakegen.config import PRESETS
    from shakegen.data.prepare import load_prepared
    from shakegen.training.dataset import steps_per_epoch

    tiny = PRESETS["tiny"]
    per_step = tiny.batch_size * tiny.seq_length
    epoch = steps_per_epoch(len(load_prepared(small_data).train), tiny.seq_length, tiny.batch_size)
    assert tiny.max_steps * per_step < 40 * per_step and tiny.epochs * epoch < 40  # both caps would cut it short
    result = _cli_compare(small_data, tmp_path / "cmp", "--preset", "tiny", "--characters", str(40 * per_step))
    assert result.exit_code == 0, result.output
    state = checkpoint.read_state(tmp_path / "cmp" / "gru3" / "last.npz")
    assert state["characters_seen"] == 40 * per_step  # the epochs raised to fit the budget end with it, or after
    assert checkpoint.read_history(tmp_path / "cmp" / "gru3")[-1]["characters_seen"] == 40 * per_step


@pytest.mark.parametrize("args", [["--random-seed", "-1"], ["--random-seed", "4294967296"], ["--seeds", "1,-2"]])
def test_random_seeds_out_of_range_are_refused_in_one_line(tmp_path, small_data, args):
    result = _cli_compare(small_data, tmp_path / "cmp", "--preset", "tiny", "--characters", "100", *args)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert "4294967295" in result.output.replace(",", "") or "2**32" in result.output, result.output


def test_a_cell_folder_holding_other_files_is_refused_before_any_cell_trains(tmp_path, small_data):
    out = tmp_path / "cmp"
    (out / "gru3").mkdir(parents=True)
    (out / "gru3" / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(
            main,
            ["compare", "--cells", "gru,gru3", "--preset", "tiny", "--characters", "1000", "--data-dir", str(small_data),
             "--out-dir", str(out), *extra],
        )  # fmt: skip
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(_error_lines(result)) == 1 and "notes.txt" in result.output and "--out-dir" in result.output
        assert sorted(path.name for path in out.rglob("*")) == ["gru3", "notes.txt"]  # gru was not trained first
