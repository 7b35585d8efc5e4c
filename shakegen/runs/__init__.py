"""The run folder: its format and files (config, weights, history, curves, TensorBoard logs),
which run a name means (``names``), and the pretrained model that ships as one (``pretrained``).

Imports ``model``, ``data`` and the foundation.
"""
