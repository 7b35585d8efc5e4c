import gc
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_COLOR", "1")

import pytest  # noqa: E402

from shakegen.data import corpus  # noqa: E402


def pytest_sessionfinish(session):
    """Every test is done: the objects they left (hundreds of TensorFlow graphs) need no collecting.

    pytest collects garbage once more after this, and a worker of pytest-xdist that is still
    busy 5 s after it reports its end gets a SIGINT from execnet, which then lands in whatever
    runs, typically hypothesis's garbage-collection callback, and prints a stray
    "Exception ignored" traceback under a green run. Frozen objects are not examined again.
    """
    gc.freeze()


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


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    """The tests' own NumPy (the float64 references, the checks) runs on one OpenBLAS thread, as the
    engine's loops do: their products are small, and with two workers on two cores a second BLAS
    thread per worker only spins against the other (3.8 s of CPU against 0.85 s for one reference pass)."""
    from shakegen.use import blas_threads

    with blas_threads.limited(1):
        yield


@pytest.fixture(scope="session", autouse=True)
def _shared_run_cache(tmp_path_factory):
    """tests/runs.py's trained runs live beside every xdist worker's own temporary folder, so the
    workers of one session train each distinct run once between them."""
    from tests import runs

    base = tmp_path_factory.getbasetemp()
    runs.CACHE = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "trained-runs"


@pytest.fixture(scope="session")
def _trained_once(tmp_path_factory, small_text, _shared_run_cache):
    """The run ``trained_run`` copies: trained once per test session, exactly as ``trained_run``
    would train it (training is deterministic: same corpus, same seed, same weights)."""
    from tests.runs import train_tiny_run

    folder = tmp_path_factory.mktemp("trained")
    train_tiny_run(folder, small_text)
    return folder


@pytest.fixture
def trained_run(tmp_path, small_data, _trained_once):
    """A small model trained for two epochs on ``small_data``'s corpus; returns its run folder (a copy
    of one trained once per test session, so a test may change or damage it freely)."""
    run_dir = tmp_path / "run"
    shutil.copytree(_trained_once / "run", run_dir)
    return run_dir
