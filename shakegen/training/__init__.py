"""Training a run: the loop and its parts, the input pipeline, fine-tuning, tf.distribute,
progress events, and the side-by-side comparison of cells.

Imports ``use`` (validation scores as evaluation does), ``runs``, ``model``, ``data`` and the foundation.
"""
