"""compare's refusals are one line on stderr: TensorFlow's start-up lines must not come before them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import shakegen


def test_compare_refusal_is_one_line_in_a_fresh_process(tmp_path):
    cell_dir = tmp_path / "cmp" / "gru3"
    cell_dir.mkdir(parents=True)
    (cell_dir / "notes.txt").write_text("mine\n")
    env = {**os.environ, "PYTHONPATH": str(Path(shakegen.__file__).resolve().parents[1])}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell has it
    env["COLUMNS"] = "1000"  # messages unwrapped, one line each
    result = subprocess.run(
        [sys.executable, "-m", "shakegen", "compare", "--preset", "tiny", "--cells", "gru3"]
        + ["--characters", "1000", "--out-dir", "cmp", "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and "notes.txt" in errors[0]
    # Only shakegen's own messages: the preparation notice and the refusal, no absl/oneDNN/CUDA chatter.
    assert all(line.startswith(("Error: ", "Nothing is prepared")) for line in lines), lines
    assert (cell_dir / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in cell_dir.iterdir()) == ["notes.txt"]


def test_a_mistyped_seed_list_is_refused_before_tensorflow_loads():
    code = (
        "import sys\n"
        "from shakegen.cli import main\n"
        "try:\n"
        "    main(['compare', '--seeds', '1,x'], standalone_mode=False)\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--seeds must be comma-separated integers" in result.stdout
    assert result.stdout.strip().endswith("[]"), result.stdout


@pytest.mark.parametrize("minutes", ["nan", "inf"])
def test_a_budget_of_minutes_that_is_no_number_is_refused_before_anything_is_written(tmp_path, minutes):
    result = subprocess.run(
        [sys.executable, "-m", "shakegen", "compare", "--cells", "gru", "--minutes", minutes, "--out-dir", "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [f"Error: --minutes must be a finite number of minutes (e.g. 3), got {minutes}."]
    assert list(tmp_path.iterdir()) == []  # no prepared corpus, no run folder
