import keras
import numpy as np
import pytest

from shakegen.cells import VARIANTS, GRULayer, parameter_count
from tests.reference import gru_sequence

BATCH, TIME, FEATURES, UNITS = 3, 50, 7, 11


def _random_layer(variant, seed=0):
    layer = GRULayer(UNITS, variant=variant)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(seed)
    for weight in layer.weights:  # random biases too, so bias handling is tested
        weight.assign(rng.normal(0, 0.4, size=weight.shape).astype("float32"))
    return layer


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("variant, reset_after", [("gru", True), ("classic", False)])
def test_matches_keras_gru(variant, reset_after, with_state):
    ours = _random_layer(variant)
    theirs = keras.layers.GRU(UNITS, return_sequences=True, return_state=True, reset_after=reset_after)
    theirs.build((None, None, FEATURES))
    theirs.set_weights([w.numpy() for w in ours.weights])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    h0 = rng.normal(size=(BATCH, UNITS)).astype("float32") if with_state else None
    out, state = ours(x, initial_state=h0)
    expected_out, expected_state = theirs(x, initial_state=h0) if with_state else theirs(x)
    np.testing.assert_allclose(out, expected_out, atol=1e-5)
    np.testing.assert_allclose(state, expected_state, atol=1e-5)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_numpy_equations(variant, with_state):
    layer = _random_layer(variant, seed=3)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(BATCH, TIME, FEATURES)).astype("float32")
    h0 = rng.normal(size=(BATCH, UNITS)).astype("float32") if with_state else None
    out, state = layer(x, initial_state=h0)
    kernel, recurrent_kernel, bias = (w.numpy() for w in layer.weights)
    expected_out, expected_state = gru_sequence(variant, x, kernel, recurrent_kernel, bias, h0)
    np.testing.assert_allclose(out, expected_out, atol=1e-5)
    np.testing.assert_allclose(state, expected_state, atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_follow_the_equations(variant):
    layer = _random_layer(variant)
    assert layer.count_params() == parameter_count(variant, FEATURES, UNITS)
    i, u = FEATURES, UNITS
    by_hand = {
        "gru": 3 * i * u + 3 * u * u + 6 * u,  # W, U, input and recurrent biases
        "classic": 3 * i * u + 3 * u * u + 3 * u,
        "gru1": i * u + 3 * u * u + 3 * u,  # candidate W only; U for z, r, h; b for z, r, h
        "gru2": i * u + 3 * u * u + u,  # no gate biases
        "gru3": i * u + u * u + 3 * u,  # gates from biases only: U for h alone
    }
    assert layer.count_params() == by_hand[variant]
    if variant == "gru":
        keras_gru = keras.layers.GRU(UNITS)
        keras_gru.build((None, None, FEATURES))
        assert keras_gru.count_params() == layer.count_params()


def test_serialises_and_rejects_unknown_variant():
    layer = GRULayer(5, variant="gru2", recurrent_initializer="glorot_uniform")
    clone = GRULayer.from_config(layer.get_config())
    assert clone.variant == "gru2" and clone.units == 5
    with pytest.raises(ValueError, match="Unknown GRU variant"):
        GRULayer(5, variant="lstm")


@pytest.mark.parametrize("with_state", [False, True])
def test_fused_backward_matches_autodiff_and_keras(with_state):
    """The hand-written backward pass of ``gru`` gives Keras's gradients."""
    import tensorflow as tf

    ours = _random_layer("gru", seed=5)
    theirs = keras.layers.GRU(UNITS, return_sequences=True, return_state=True)
    theirs.build((None, None, FEATURES))
    theirs.set_weights([w.numpy() for w in ours.weights])
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(BATCH, 20, FEATURES)).astype("float32"))
    h0 = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32")) if with_state else None
    probe_out = tf.constant(rng.normal(size=(BATCH, 20, UNITS)).astype("float32"))
    probe_state = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32"))

    def gradients(layer, call):
        watched = [x] + ([h0] if with_state else [])
        with tf.GradientTape() as tape:
            tape.watch(watched)
            out, state = call()
            loss = tf.reduce_sum(out * probe_out) + tf.reduce_sum(state * probe_state)
        return tape.gradient(loss, layer.trainable_weights + watched)

    fused = gradients(ours, lambda: ours(x, initial_state=h0))

    def autodiff_call():
        start = tf.zeros((BATCH, UNITS)) if h0 is None else h0
        out, state = ours._sequence_autodiff(tf.transpose(ours.project(x), (1, 0, 2)), start, 20)
        return tf.transpose(out, (1, 0, 2)), state

    autodiff = gradients(ours, autodiff_call)
    keras_grads = gradients(theirs, lambda: theirs(x, initial_state=h0) if with_state else theirs(x))
    for a, b, c in zip(fused, autodiff, keras_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)
