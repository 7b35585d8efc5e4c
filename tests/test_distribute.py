"""tf.distribute: a mirrored run over two logical CPU devices, and two worker processes on
127.0.0.1, each reach the same losses and weights as one process on the same global batch.

The one-process reference is the same ``shakegen train`` command run once per module, in this
process (it needs no fresh one: no strategy, no logical devices); the distributed runs each start
fresh processes, which splitting the CPU and joining a cluster need.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from shakegen.cli import main
from shakegen.data import prepare
from shakegen.runs.checkpoint import read_history

TRAIN_ARGS = [
    "train", "--preset", "tiny", "--embedding-dim", "8", "--rnn-units", "16", "--seq-length", "16",
    "--batch-size", "8", "--epochs", "2", "--max-steps", "30", "--learning-rate", "0.01",
]  # fmt: skip


def _shakegen(args, cwd, env_extra=None, **kwargs):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "NO_COLOR": "1", **(env_extra or {})})
    return subprocess.Popen(
        [sys.executable, "-m", "shakegen", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _finish(process, timeout=240):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def _weights(run_dir):
    with np.load(run_dir / "last.npz") as archive:
        return {key: archive[key] for key in archive.files if key.startswith("weights/")}


def _assert_same_run(single, distributed):
    one, many = read_history(single), read_history(distributed)
    assert len(one) == len(many)
    for a, b in zip(one, many, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    w1, w2 = _weights(single), _weights(distributed)
    assert w1.keys() == w2.keys()
    for key in w1:
        np.testing.assert_allclose(w2[key], w1[key], rtol=1e-3, atol=1e-4, err_msg=key)


@pytest.fixture
def workdir(tmp_path, small_data):
    return tmp_path  # small_data is prepared in tmp_path/data


@pytest.fixture(scope="module")
def single(tmp_path_factory, small_text):
    """The one-process run both distributed runs are compared with: the same command, on the same
    prepared corpus, trained once (the tests only read its folder)."""
    folder = tmp_path_factory.mktemp("single")
    (folder / "small.txt").write_text(small_text, encoding="utf-8")  # as conftest's small_data prepares it
    prepare.prepare_corpus(folder / "small.txt", folder / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("TF_CONFIG", raising=False)
        result = CliRunner().invoke(
            main, [*TRAIN_ARGS, "--data-dir", str(folder / "data"), "--run-dir", str(folder / "single")]
        )
    assert result.exit_code == 0, result.output
    return folder / "single"


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_mirrored_over_two_cpu_devices_matches_one_process(workdir, single):
    mirrored = _shakegen([*TRAIN_ARGS, "--run-dir", "mirrored", "--strategy", "mirrored"], workdir)
    assert "across 2 replicas" in " ".join(_finish(mirrored).split())
    _assert_same_run(single, workdir / "mirrored")


def test_two_workers_on_localhost_match_one_process(workdir, single):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    # Each worker is given its own --run-dir: only the chief's may be written (in a real
    # cluster they share one folder, where a non-chief write would corrupt the run).
    workers = [
        _shakegen(
            [
                *TRAIN_ARGS,
                "--run-dir",
                "cluster" if index == 0 else f"cluster-worker{index}",
                "--strategy",
                "multi-worker",
            ],
            workdir,
            {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})},
        )
        for index in range(2)
    ]
    outputs = [" ".join(_finish(worker).split()) for worker in workers]
    assert all("across 2 replicas" in output for output in outputs)
    assert sorted(path.name for path in (workdir / "cluster").iterdir()) == sorted(
        path.name for path in single.iterdir()
    )
    assert not (workdir / "cluster-worker1").exists()
    _assert_same_run(single, workdir / "cluster")


def test_multi_worker_without_tf_config_is_refused(workdir, monkeypatch):
    # In this process: the refusal comes before any strategy is made or the run folder is touched.
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(main, [*TRAIN_ARGS, "--run-dir", "x", "--strategy", "multi-worker"])
    assert result.exit_code == 1 and "TF_CONFIG" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # refused, not an error escaping the command
    assert not (workdir / "x").exists()
