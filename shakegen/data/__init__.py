"""The text: the raw corpus and its cleaning, downloads, the vocabulary, prepared splits.

No TensorFlow here. Imports only the foundation (``errors``, ``fileio``, ``config``).
"""
