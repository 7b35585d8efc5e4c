"""The TensorFlow model that sampling and evaluation run: always float32, and caches that die with it.

A run trained in ``mixed_bfloat16`` keeps float32 weights; only its arithmetic is rounded
to bfloat16, and how depends on the processor's kernels. Sampling and evaluation therefore
run a float32 twin of such a model (same weights, float32 arithmetic), so texts and figures
depend neither on the processor nor on the precision a run was trained in.

Compiled functions and twins are cached per model in a ``WeakKeyDictionary`` whose values
never hold the model itself strongly, so a model that is no longer used (a finished cell of
``compare``, one checkpoint of a multi-checkpoint ``eval``) is freed with its cache.
"""

from __future__ import annotations

import random
import weakref

from shakegen.model.backend import tf

_PER_MODEL: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cache_of(model) -> dict:
    """A dict that lives as long as ``model``. What is stored in it must not hold ``model``
    strongly (use ``weakref.ref(model)`` in closures), or the model is never freed."""
    cache = _PER_MODEL.get(model)
    if cache is None:
        cache = _PER_MODEL[model] = {}
    return cache


def is_float32(model) -> bool:
    """Whether every layer computes in float32 (the model's own policy says nothing: each
    layer carries the run's precision)."""
    return all(layer.compute_dtype == "float32" for layer in (model.embedding, *model.rnn_layers, model.dense))


def float32_model(model):
    """``model`` itself when it computes in float32, else its float32 twin holding its current weights.

    The twin is built once per model and its weights are copied again at every call (a few
    megabytes), so a model still training gets evaluated with the weights it has now.
    """
    if is_float32(model):
        return model
    cache = cache_of(model)
    twin = cache.get("float32")
    if twin is None:
        twin = cache["float32"] = _build_float32(model)
    for target, source in zip(twin.weights, model.weights, strict=True):
        target.assign(source.numpy())
    return twin


def _build_float32(model):
    from shakegen.model.network import build_model

    # Keras's unseeded initialisers draw their seeds from Python's `random`: building the twin
    # must not move the random state a training run in this process relies on.
    saved = random.getstate()
    try:
        return build_model(model.vocab_size, model.config.replace(precision="float32", weight_drop=0.0))
    finally:
        random.setstate(saved)


def zero_states(model, batch: int) -> list:
    """Initial states of every recurrent layer: (batch, units) zeros each."""
    return [tf.zeros((batch, layer.units), tf.float32) for layer in model.rnn_layers]
