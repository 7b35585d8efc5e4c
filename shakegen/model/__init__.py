"""The network: the GRU-family cells, Embedding → GRU → Dense, its float32 twin, and the one
place TensorFlow is imported (``backend``).

Imports only ``data`` and the foundation. This file imports nothing, so ``shakegen.model.backend``
can be imported without TensorFlow.
"""
