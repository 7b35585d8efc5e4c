import json

import pytest
from click.testing import CliRunner

from shakegen import checkpoint
from shakegen.cells import parameter_count
from shakegen.cli import main
from shakegen.compare import compare, parse_cells
from shakegen.config import ConfigError


def test_compare_trains_each_cell_once_and_writes_results(tmp_path, small_data, small_config):
    base = small_config.replace(epochs=1)
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
    from shakegen.training import train

    run_dir = tmp_path / cell
    train(small_config.replace(cell=cell, epochs=1), run_dir, small_data)
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
    from shakegen.dataset import steps_per_epoch
    from shakegen.prepare import load_prepared

    epoch = steps_per_epoch(len(load_prepared(small_data).train), small_config.seq_length, small_config.batch_size)
    characters = 12 * epoch * small_config.batch_size * small_config.seq_length
    base = small_config.replace(max_characters=characters, epochs=12)
    compare(["gru3"], base, tmp_path / "cmp", small_data)
    epochs = [row["epoch"] for row in checkpoint.read_history(tmp_path / "cmp" / "gru3")]
    assert epochs == list(range(1, 13))  # one row per epoch, none a step before an epoch's end
