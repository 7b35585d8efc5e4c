"""A run in another form: a TensorFlow SavedModel, a static web page, the pretrained bundle.

Imports ``use``, ``runs``, ``model`` and the foundation; never a face.
"""
