"""Using a trained model: the NumPy inference engine, sampling (TensorFlow's loop too), stop
rules, beam search, suggestions, scoring (streaming, windows, adaptive) and inspection.

Sampling: ``generation`` (a loaded run and the blocks every face samples through), ``sampling``
(options, seeds, which engine), ``engine`` (the NumPy model), ``logits`` (choosing a character),
``noise``, ``tf_sampler``, ``stopping``, ``beam``, ``suggest``. Scoring: ``evaluate`` (the protocols
and the cross-entropy), ``tf_scoring`` (TensorFlow's batches), ``scored_text`` (which text),
``report`` (the row a run reports), ``adapt``. Inspection: ``inspect``, ``neurons``.

Imports ``runs``, ``model``, ``data`` and the foundation; never ``training``.
"""
