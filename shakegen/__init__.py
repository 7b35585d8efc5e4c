"""shakegen: character-level text generation with a GRU language model.

The public API. Loading a model and sampling or scoring short texts run on shakegen's NumPy
engine; TensorFlow is imported only to train, to score long texts, to sample many samples at
once, or when asked for (``engine="tensorflow"``):

    import shakegen
    model = shakegen.load("checkpoints/quick")
    print(model.generate("ROMEO:", length=300, temperature=0.8, random_seed=7))
"""

from shakegen.api import EvaluationReport, TextModel, load, train
from shakegen.version import __version__

__all__ = ["EvaluationReport", "TextModel", "load", "train", "__version__"]
