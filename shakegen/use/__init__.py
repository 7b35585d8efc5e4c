"""Using a trained model: the NumPy inference engine, sampling (TensorFlow's loop too), stop
rules, beam search, suggestions, scoring (streaming, windows, adaptive) and inspection.

Imports ``runs``, ``model``, ``data`` and the foundation; never ``training``.
"""
