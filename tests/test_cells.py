import keras
import numpy as np
import pytest
import tensorflow as tf

from shakegen.config import TrainConfig
from shakegen.model import fused_loop
from shakegen.model.cells import VARIANTS, GRULayer, parameter_count
from shakegen.model.network import build_model
from tests.reference import gru_sequence

BATCH, TIME, FEATURES, UNITS = 3, 50, 7, 11


def _random_layer(variant, seed=0, **options):
    layer = GRULayer(UNITS, variant=variant, **options)
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


@pytest.mark.parametrize("variant", ["gru", "gru2"])
def test_weight_drop_masks_the_recurrent_kernel_for_the_whole_call(variant):
    """DropConnect: the entries whose gradient is exactly zero are the dropped ones; the outputs
    are the NumPy equations' with those entries zeroed and the rest scaled by 1/(1 - rate)."""
    layer = _random_layer(variant, seed=3, weight_drop=0.5)
    x, h0 = _inputs(4, with_state=True)
    kernel, recurrent_kernel, bias = (w.numpy() for w in layer.weights)
    plain, _ = layer(x, initial_state=h0)  # no seed (inference): nothing dropped
    expected_plain, _ = gru_sequence(variant, x.numpy(), kernel, recurrent_kernel, bias, h0.numpy())
    np.testing.assert_allclose(plain, expected_plain, atol=1e-5)
    probe = tf.constant(np.random.default_rng(5).normal(size=(BATCH, 20, UNITS)).astype("float32"))
    with tf.GradientTape() as tape:
        out, state = layer(x, initial_state=h0, weight_drop_seed=tf.constant([1, 2]))
        loss = tf.reduce_sum(out * probe)
    dropped = tape.gradient(loss, layer.recurrent_kernel).numpy() == 0
    assert 0.4 < dropped.mean() < 0.6
    masked = np.where(dropped, 0.0, recurrent_kernel / 0.5).astype("float32")
    expected, expected_state = gru_sequence(variant, x.numpy(), kernel, masked, bias, h0.numpy())
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(state, expected_state, atol=1e-5)
    other, _ = layer(x, initial_state=h0, weight_drop_seed=tf.constant([1, 3]))
    assert not np.allclose(other, out)  # another step's seed, another mask


def test_a_model_drops_weights_in_every_layer_only_in_training():
    """Through CharModel: layer 0 (fed a projected table) and the layers above it each get a
    mask, drawn from the step's seed; inference and training without a seed are refused or plain."""
    config = TrainConfig(num_layers=3, embedding_dim=6, rnn_units=UNITS, weight_drop=0.5)
    model = build_model(9, config)
    ids = tf.constant(np.random.default_rng(0).integers(0, 9, size=(BATCH, 12)), tf.int32)
    with tf.GradientTape() as tape:
        logits, _ = model(ids, training=True, dropout_seed=tf.constant([4, 1]))
        loss = tf.reduce_sum(logits * tf.constant(np.random.default_rng(1).normal(size=logits.shape), tf.float32))
    kernels = [layer.recurrent_kernel for layer in model.rnn_layers]
    for index, gradient in enumerate(tape.gradient(loss, kernels)):
        assert 0.3 < (gradient.numpy() == 0).mean() < 0.7, f"layer {index} was not masked"
    plain = build_model(9, config.replace(weight_drop=0.0))
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(model(ids)[0], plain(ids)[0], atol=1e-6)  # inference: nothing dropped
    assert not np.allclose(model(ids, training=True, dropout_seed=tf.constant([4, 2]))[0], logits)
    with pytest.raises(ValueError, match="needs a dropout_seed"):
        model(ids, training=True)


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


def test_rejects_unknown_variant():
    with pytest.raises(ValueError, match="Unknown GRU variant"):
        GRULayer(5, variant="lstm")


def autodiff_sequence(form):
    """The recurrence of ``form`` written plainly in TensorFlow, left to TensorFlow's autodiff.

    Same signature as ``fused_loop.fused_sequence(form)``, so it can stand in for it.
    """
    compute = tf.as_dtype(form.compute_dtype)

    def matmul(left, right):
        return tf.cast(tf.matmul(tf.cast(left, compute), right), tf.float32)

    def run(projected, h0, recurrent_kernel, loop_bias):
        u = h0.shape[-1]
        steps = projected.shape[0]
        inputs = tf.TensorArray(tf.float32, size=steps).unstack(projected)

        def body(t, h, outputs):
            x = inputs.read(t)
            if form.reset_after:
                inner = matmul(h, recurrent_kernel) + loop_bias
                z = tf.sigmoid(x[:, :u] + inner[:, :u])
                r = tf.sigmoid(x[:, u : 2 * u] + inner[:, u : 2 * u])
                candidate = tf.tanh(x[:, 2 * u :] + r * inner[:, 2 * u :])
            else:
                gates = loop_bias if form.loop_bias else 0.0
                if form.state_gates:
                    gates = gates + matmul(h, recurrent_kernel[:, : 2 * u])
                if form.input_gates:
                    gates = gates + x[:, : 2 * u]
                z, r = tf.sigmoid(gates[..., :u]), tf.sigmoid(gates[..., u:])
                x_h = x[:, 2 * u :] if form.input_gates else x
                candidate_kernel = recurrent_kernel[:, 2 * u :] if form.state_gates else recurrent_kernel
                candidate = tf.tanh(x_h + matmul(r * h, candidate_kernel))
            h = z * h + (1.0 - z) * candidate
            return t + 1, h, outputs.write(t, h)

        _, h_final, outputs = tf.while_loop(
            lambda t, *_: t < steps, body, (tf.constant(0), h0, tf.TensorArray(tf.float32, size=steps))
        )
        return outputs.stack(), h_final

    return run


def _probed_gradients(layer, x, h0, seed):
    """Gradients of a random linear probe of (outputs, final state) w.r.t. weights, inputs and h0."""
    rng = np.random.default_rng(seed)
    probe_out = tf.constant(rng.normal(size=(*x.shape[:2], UNITS)).astype("float32"))
    probe_state = tf.constant(rng.normal(size=(x.shape[0], UNITS)).astype("float32"))
    watched = [x] + ([] if h0 is None else [h0])
    with tf.GradientTape() as tape:
        tape.watch(watched)
        out, state = layer(x, initial_state=h0)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * probe_out) + tf.reduce_sum(state * probe_state)
    return [np.asarray(tf.cast(g, tf.float32)) for g in tape.gradient(loss, layer.trainable_weights + watched)]


def _inputs(seed, with_state, time=20):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(BATCH, time, FEATURES)).astype("float32"))
    h0 = tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32")) if with_state else None
    return x, h0


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_backward_matches_autodiff(variant, with_state, monkeypatch):
    """The one hand-written backward pass gives TensorFlow's autodiff gradients for every variant:
    kernel, recurrent kernel, bias, inputs and initial state, to 1e-5."""
    layer = _random_layer(variant, seed=5, rnn_kernel="fused")
    x, h0 = _inputs(6, with_state)
    fused = _probed_gradients(layer, x, h0, seed=7)
    monkeypatch.setattr(fused_loop, "fused_sequence", autodiff_sequence)
    autodiff = _probed_gradients(layer, x, h0, seed=7)
    names = ["kernel", "recurrent_kernel", "bias", "inputs"] + (["h0"] if with_state else [])
    for name, a, b in zip(names, fused, autodiff, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=f"{variant}: gradient of {name}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_fused_backward_matches_autodiff_in_mixed_bfloat16(variant, monkeypatch):
    """Under mixed_bfloat16 the recurrent products run in bfloat16 and every gradient leaving
    the layer is rounded to bfloat16 (Keras reads the variables and inputs as bfloat16).

    Tolerance: 2**-5 of the largest gradient entry, i.e. 4 bfloat16 steps (bfloat16 keeps 8
    significant bits, so one step at the largest entry is 2**-7 of it). The two passes round
    in different places: autodiff adds the recurrent kernel's gradient step by step in
    bfloat16, the fused pass rounds one float32-accumulated product once; over 20 steps
    that differs by about one step (measured: at most 0.7% of the largest entry). A wrong
    gate term changes gradients by tens of percent, far outside this.
    """
    layer = _random_layer(variant, seed=5, rnn_kernel="fused", dtype="mixed_bfloat16")
    x, h0 = _inputs(6, with_state=True)
    fused = _probed_gradients(layer, x, h0, seed=7)
    monkeypatch.setattr(fused_loop, "fused_sequence", autodiff_sequence)
    autodiff = _probed_gradients(layer, x, h0, seed=7)
    for name, a, b in zip(["kernel", "recurrent_kernel", "bias", "inputs", "h0"], fused, autodiff, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2**-5 * np.abs(b).max(), err_msg=f"{variant}: {name}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_layer_of_a_model_uses_the_fused_pass(variant, monkeypatch):
    """A two-layer model runs the fused sequence in both layers, and its gradients (embedding,
    both layers, output layer) equal autodiff's."""
    config = TrainConfig(cell=variant, num_layers=2, embedding_dim=6, rnn_units=UNITS, rnn_kernel="fused")
    model = build_model(13, config)
    rng = np.random.default_rng(8)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.4, size=weight.shape).astype("float32"))
    ids = tf.constant(rng.integers(0, 13, size=(BATCH, 15)), tf.int32)
    targets = tf.constant(rng.integers(0, 13, size=(BATCH, 15)), tf.int32)

    def gradients():
        with tf.GradientTape() as tape:
            logits, _ = model(ids)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits))
        return loss, tape.gradient(loss, model.trainable_weights)

    forms = []
    real = fused_loop.fused_sequence
    monkeypatch.setattr(fused_loop, "fused_sequence", lambda form: forms.append(form) or real(form))
    fused_loss, fused = gradients()
    assert len(forms) == 2, "each of the two layers runs the fused sequence once"
    monkeypatch.setattr(fused_loop, "fused_sequence", autodiff_sequence)
    autodiff_loss, autodiff = gradients()
    np.testing.assert_allclose(fused_loss, autodiff_loss, rtol=1e-6)
    assert len(fused) == len(autodiff) == 2 + 3 * 2 + 1  # embedding, 2 × (kernel, recurrent, bias), dense ×2
    for weight, a, b in zip(model.trainable_weights, fused, autodiff, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=weight.path)
