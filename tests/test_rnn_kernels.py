"""The two implementations of the time loop (``--rnn-kernel fused|keras``) are interchangeable:
same outputs, loss and gradients, same weights and checkpoint format, so a run trained with
one loads and generates with the other. On CPU the ``keras`` kernel is Keras's generic GRU
loop; on a GPU it would be cuDNN for ``gru`` (not testable here)."""

import numpy as np
import pytest
import tensorflow as tf

from shakegen.config import TrainConfig
from shakegen.errors import ConfigError
from shakegen.model import fused_loop
from shakegen.model.cells import GRULayer, choose_rnn_kernel
from shakegen.model.network import build_model
from shakegen.runs import checkpoint
from shakegen.use import sampling, tf_sampler
from shakegen.use.evaluate import streaming_cross_entropy

BATCH, TIME, FEATURES, UNITS = 3, 17, 5, 9


@pytest.mark.parametrize(
    "requested, variant, dtype, gpu, expected",
    [
        ("auto", "gru", "float32", True, "keras"),  # cuDNN takes it
        ("auto", "gru", "float32", False, "fused"),
        ("auto", "classic", "float32", True, "fused"),  # cuDNN has no reset-before GRU
        ("auto", "gru", "bfloat16", True, "fused"),  # nor a bfloat16 RNN kernel
        ("auto", "gru2", "float32", True, "fused"),
        ("keras", "gru", "float32", False, "keras"),
        ("keras", "classic", "bfloat16", False, "keras"),
        ("keras", "gru1", "float32", True, "fused"),  # Keras has no gru1/2/3: always fused
        ("keras", "gru3", "float32", True, "fused"),
        ("fused", "gru", "float32", True, "fused"),
    ],
)
def test_choice_of_kernel(requested, variant, dtype, gpu, expected):
    assert choose_rnn_kernel(requested, variant, dtype, gpu=gpu) == expected


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="Unknown rnn_kernel 'cudnn'"):
        choose_rnn_kernel("cudnn", "gru", "float32", gpu=False)
    with pytest.raises(ConfigError, match="rnn_kernel"):
        TrainConfig(rnn_kernel="cudnn").validate()


def test_auto_is_fused_without_a_gpu():
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible")
    assert GRULayer(4).kernel_in_use == "fused"


def _layer_pair(variant, seed):
    """The same random weights in a fused and a keras layer."""
    rng = np.random.default_rng(seed)
    pair = []
    for kernel in ("fused", "keras"):
        layer = GRULayer(UNITS, variant=variant, rnn_kernel=kernel)
        layer.build((None, None, FEATURES))
        pair.append(layer)
    for fused_weight, keras_weight in zip(pair[0].weights, pair[1].weights, strict=True):
        value = rng.normal(0, 0.4, size=fused_weight.shape).astype("float32")
        fused_weight.assign(value)
        keras_weight.assign(value)
    return pair


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("variant", ["gru", "classic"])
def test_keras_kernel_gives_the_fused_outputs_and_gradients(variant, with_state, monkeypatch):
    fused, keras_layer = _layer_pair(variant, seed=1)
    assert (fused.kernel_in_use, keras_layer.kernel_in_use) == ("fused", "keras")
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32"))
    h0 = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32")) if with_state else None
    probe_out = tf.constant(rng.normal(size=(BATCH, TIME, UNITS)).astype("float32"))
    probe_state = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32"))
    calls = []
    real = fused_loop.fused_sequence
    monkeypatch.setattr(fused_loop, "fused_sequence", lambda form: calls.append(form) or real(form))

    def run(layer):
        watched = [x] + ([h0] if with_state else [])
        with tf.GradientTape() as tape:
            tape.watch(watched)
            out, state = layer(x, initial_state=h0)
            loss = tf.reduce_sum(out * probe_out) + tf.reduce_sum(state * probe_state)
        return out, state, tape.gradient(loss, layer.trainable_weights + watched)

    fused_out, fused_state, fused_grads = run(fused)
    assert len(calls) == 1
    keras_out, keras_state, keras_grads = run(keras_layer)
    assert len(calls) == 1, "the keras kernel must not run the fused sequence"
    assert keras_state.dtype == tf.float32
    np.testing.assert_allclose(keras_out, fused_out, atol=1e-5)
    np.testing.assert_allclose(keras_state, fused_state, atol=1e-5)
    assert len(keras_grads) == len(fused_grads) == 3 + len([x] + ([h0] if with_state else []))
    for a, b in zip(keras_grads, fused_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def _weights_by_path(model):
    return {weight.path: tuple(weight.shape) for weight in model.weights}


@pytest.mark.parametrize("variant", ["gru", "classic"])
def test_models_with_either_kernel_share_weights_loss_and_gradients(variant, tmp_path):
    config = TrainConfig(cell=variant, num_layers=2, embedding_dim=6, rnn_units=UNITS)
    fused = build_model(11, config.replace(rnn_kernel="fused"))
    keras_model = build_model(11, config.replace(rnn_kernel="keras"))
    assert [layer.kernel_in_use for layer in keras_model.rnn_layers] == ["keras", "keras"]
    assert _weights_by_path(keras_model) == _weights_by_path(fused)
    # Through a checkpoint file, as a run folder would hold it.
    checkpoint.save(tmp_path / "weights.npz", fused, {})
    checkpoint.load(tmp_path / "weights.npz", keras_model)
    rng = np.random.default_rng(3)
    ids = tf.constant(rng.integers(0, 11, size=(BATCH, TIME)), tf.int32)
    targets = tf.constant(rng.integers(0, 11, size=(BATCH, TIME)), tf.int32)

    def loss_and_gradients(model):
        with tf.GradientTape() as tape:
            logits, states = model(ids)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits))
        gradients = tape.gradient(loss, model.trainable_weights)
        return loss, states, [tf.convert_to_tensor(g) for g in gradients]  # the embedding's may be sparse

    fused_loss, fused_states, fused_grads = loss_and_gradients(fused)
    keras_loss, keras_states, keras_grads = loss_and_gradients(keras_model)
    np.testing.assert_allclose(keras_loss, fused_loss, rtol=1e-6)
    for a, b in zip(keras_states, fused_states, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for weight, a, b in zip(fused.trainable_weights, keras_grads, fused_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=weight.path)


@pytest.mark.parametrize("trained_with, loaded_with", [("keras", "fused"), ("fused", "keras")])
def test_a_run_trained_with_one_kernel_loads_and_generates_with_the_other(
    trained_with, loaded_with, tmp_path, small_text
):
    from tests.runs import train_tiny_run

    run_dir = train_tiny_run(tmp_path, small_text, rnn_kernel=trained_with, max_steps=3)  # cached per session
    saved, info, _ = checkpoint.load_model(run_dir, "last")
    assert info.config.rnn_kernel == trained_with
    assert saved.rnn_layers[0].kernel_in_use == trained_with
    other = build_model(len(info.vocab), info.config.replace(rnn_kernel=loaded_with))
    checkpoint.load(checkpoint.checkpoint_path(run_dir, "last"), other)
    assert other.rnn_layers[0].kernel_in_use == loaded_with

    greedy = sampling.SamplingOptions(temperature=0)
    texts = [
        np.concatenate(list(tf_sampler.Sampler(model, greedy).sample(info.vocab.encode("First"), 60)), axis=1)
        for model in (saved, other)
    ]
    assert np.array_equal(texts[0], texts[1])
    ids = np.asarray(info.vocab.encode("First Citizen:\nBefore we proceed any further, hear me speak."))
    losses = [streaming_cross_entropy(model, ids).loss for model in (saved, other)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_a_resumed_run_may_change_the_kernel(tmp_path, small_text):
    from shakegen.training.trainer import train
    from tests.runs import train_tiny_run

    run_dir = train_tiny_run(tmp_path, small_text, rnn_kernel="keras", max_steps=3)  # the test above's run
    result = train(None, run_dir, tmp_path / "data", resume=True, changes={"rnn_kernel": "fused", "max_steps": 5})
    assert result.state.global_step == 5


def test_cli_offers_the_kernel_choice():
    from click.testing import CliRunner

    from shakegen.cli import main

    runner = CliRunner()
    assert "--rnn-kernel [auto|fused|keras]" in runner.invoke(main, ["train", "--help"]).output
    refused = runner.invoke(main, ["train", "--rnn-kernel", "cudnn"])
    assert refused.exit_code == 2 and "cudnn" in refused.output
