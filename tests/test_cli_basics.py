import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import shakegen
from shakegen import __version__
from shakegen.cli import main


def _run_fresh(args, cwd) -> dict:
    """Run the CLI in a fresh interpreter; what it returned or raised, and which TensorFlow or
    Keras modules it imported. A raised exception is reported, never ignored: each test says
    which outcome it expects."""
    code = (
        "import sys, json\n"
        "from shakegen.cli import main\n"
        "try:\n"
        f"    outcome = {{'returned': main({args!r}, standalone_mode=False)}}\n"
        "except Exception as error:\n"
        "    outcome = {'raised': type(error).__name__, 'message': str(error)}\n"
        "outcome['modules'] = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps(outcome))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(shakegen.__file__).resolve().parents[1])}  # this very shakegen
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_download_and_prepare_do_not_import_tensorflow(tmp_path):
    assert _run_fresh(["--help"], tmp_path) == {"returned": 0, "modules": []}
    assert _run_fresh(["prepare", "--data-dir", str(tmp_path / "d")], tmp_path) == {"returned": None, "modules": []}
    assert (tmp_path / "d" / "prepared" / "train.npy").is_file()
    download = _run_fresh(["download", "--url", "http://127.0.0.1:9/x", "--retries", "0"], tmp_path)
    assert download["raised"] == "ClickException" and "http://127.0.0.1:9/x" in download["message"]
    assert download["modules"] == []


def test_version_and_help_on_every_command():
    runner = CliRunner()
    assert __version__ in runner.invoke(main, ["--version"]).output
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, name
        assert "Example" in result.output, name
        for param in command.params:
            if isinstance(param, __import__("click").Option):
                assert param.help, f"{name} {param.name} has no help"


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "shakegen", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "prepare" in result.stdout


def test_prepare_command_reports_embedded_statistics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["prepare"])
    assert result.exit_code == 0, result.output
    assert "embedded" in result.output
    assert "1,115,394" in result.output and "65 distinct" in result.output
    assert (tmp_path / "data" / "prepared" / "train.npy").is_file()


def test_prepare_errors_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.txt").write_text("")
    runner = CliRunner()
    for args, code in [
        (["prepare", "--input", "empty.txt"], 1),
        (["prepare", "--input", "missing.txt"], 1),
        (["prepare", "--input", "."], 1),
        (["prepare", "--val-fraction", "1.5"], 2),
    ]:
        result = runner.invoke(main, args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        assert not (tmp_path / "data" / "prepared").exists()


def test_train_has_one_option_per_train_config_field():
    import dataclasses

    from shakegen.cli import train
    from shakegen.config import TrainConfig

    names = [field.name for field in dataclasses.fields(TrainConfig)]
    assert set(train.HELP_ORDER) <= set(names), "HELP_ORDER names a field TrainConfig lacks"
    assert set(names) <= {param.name for param in main.commands["train"].params}
