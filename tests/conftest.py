import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_COLOR", "1")

import pytest  # noqa: E402

from shakegen.data import corpus  # noqa: E402

SMALL_CONFIG = dict(
    embedding_dim=8, rnn_units=16, seq_length=16, batch_size=8, epochs=2, learning_rate=1e-2, final_learning_rate=1e-3
)


@pytest.fixture(scope="session")
def small_text():
    """The first 6,000 characters of Tiny Shakespeare (full vocabulary not needed)."""
    return corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[:6000]


@pytest.fixture
def small_data(tmp_path, small_text):
    """A prepared small corpus in tmp_path/data."""
    from shakegen.data import prepare

    source = tmp_path / "small.txt"
    source.write_text(small_text, encoding="utf-8")
    prepare.prepare_corpus(source, tmp_path / "data")
    return tmp_path / "data"


@pytest.fixture
def small_config():
    from shakegen.config import TrainConfig

    return TrainConfig(**SMALL_CONFIG)


@pytest.fixture
def trained_run(tmp_path, small_data, small_config):
    """A small model trained for two epochs; returns its run folder."""
    from shakegen.training.trainer import train

    run_dir = tmp_path / "run"
    train(small_config, run_dir, small_data)
    return run_dir
