"""Text in and out of the exported SavedModel's graphs: cleaned as the run's corpus was, to ids and back.

Plain TensorFlow ops only, so the SavedModel needs no shakegen: ``clean_text_graph`` is
``corpus.clean_text`` without its NFC normalisation, and ``GraphVocabulary`` maps characters
to the run's ids (failing, with a message naming them, on characters the model does not know).
"""

from __future__ import annotations

import numpy as np

from shakegen.model.backend import tf


def clean_text_graph(text, *, lowercase: bool = False, strip_punctuation: bool = False):
    """``corpus.clean_text`` in TensorFlow ops, without its final NFC normalisation.

    Line ends become ``\\n``, control characters other than ``\\n`` and ``\\t`` go, then the
    run's lower-casing and punctuation stripping, then leading byte-order marks.
    """
    text = tf.strings.regex_replace(text, "\r\n?", "\n")
    text = tf.strings.regex_replace(text, r"[\x00-\x08\x0b-\x1f\x{7f}-\x{9f}]", "")
    if lowercase:
        text = tf.strings.lower(text, encoding="utf-8")
    if strip_punctuation:
        text = tf.strings.regex_replace(text, r"\pP", "")
    return tf.strings.regex_replace(text, r"^\x{feff}+", "")


class GraphVocabulary:
    """The run's characters in id order, as graph ops: ``encode`` a cleaned text to ids, ``decode`` ids to text."""

    def __init__(self, chars, cleaning: dict):
        self._codepoints = np.array([ord(char) for char in chars], np.int32)  # in id order
        # A fine-tuned run's ids are not in code point order: search a sorted copy, then map back.
        self._search_order = np.argsort(self._codepoints, kind="stable").astype(np.int32)
        self._cleaning = {"lowercase": cleaning["lowercase"], "strip_punctuation": cleaning["strip_punctuation"]}
        self.size = len(chars)

    def encode(self, text, subject: str):
        """Ids (n,) int32 of ``text`` cleaned as the run's corpus was; fails on unknown characters."""
        cleaned = clean_text_graph(text, **self._cleaning)
        codepoints = tf.strings.unicode_decode(cleaned, "UTF-8", errors="strict")  # (n,) int32
        order = tf.constant(self._search_order)
        table = tf.constant(self._codepoints[self._search_order])  # sorted
        found = tf.minimum(tf.searchsorted(table, codepoints, out_type=tf.int32), self.size - 1)
        known = tf.equal(tf.gather(table, found), codepoints)
        ids = tf.gather(order, found)
        unknown, _ = tf.unique(tf.boolean_mask(codepoints, tf.logical_not(known)))
        check = tf.debugging.Assert(
            tf.reduce_all(known),
            [
                f"{subject} has characters the model does not know:",
                tf.strings.unicode_encode(unknown, "UTF-8"),
                f"The model knows {self.size} characters (see the metadata signature); remove them.",
            ],
            summarize=1,
        )
        with tf.control_dependencies([check]):
            return tf.identity(ids)

    def decode(self, ids):
        return tf.strings.unicode_encode(tf.gather(tf.constant(self._codepoints), ids), "UTF-8")
