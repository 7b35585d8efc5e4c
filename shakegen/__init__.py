"""shakegen: character-level text generation with a GRU language model."""

__version__ = "0.1.0"
