"""The model's card: what ``GET /v1/model`` answers about the run served, and the run's name as clients see it.

Never a path of the server's disk: the run and a fine-tuned run's parent are named by their bare folder names.
"""

from __future__ import annotations

import math

import shakegen
from shakegen.runs import checkpoint
from shakegen.serve.limits import Limits


def run_name(model) -> str:
    """The run folder's name (never its full path: a client has no business with the server's disk)."""
    return model.run_dir.name or model.run_dir.resolve().name


def model_card(model, limits: Limits) -> dict:
    """What ``GET /v1/model`` answers: the run, its architecture, how well and how long it trained
    (up to the weights served, as ``shakegen eval`` reports it), and which engine serves it."""
    from shakegen.use import report, sampling

    config, state = model.config, model.saved_state
    last_state = state if model.which == "last" else checkpoint.last_state(model.run_dir)
    # best.npz records its own validation loss; last.npz only the best one so far.
    validation_loss = state.get("val_loss") if model.which == "best" else None
    _, _, elapsed = report.reached(model.run_dir, model.which, state, last_state)
    return {
        "run": run_name(model),
        "which": model.which,
        "cell": config.cell,
        "num_layers": config.num_layers,
        "rnn_units": config.rnn_units,
        "embedding_dim": config.embedding_dim,
        "parameters": model.info.parameters,
        "vocabulary": model.vocabulary,
        "vocabulary_size": len(model.vocabulary),
        "validation_loss": validation_loss,
        "validation_perplexity": math.exp(validation_loss) if validation_loss is not None else None,
        "best_validation_loss": last_state.get("best_val_loss", validation_loss),
        "epoch": state.get("epoch"),
        "step": state.get("step", state.get("global_step")),
        "training_minutes": elapsed / 60 if elapsed is not None else None,
        "training_precision": config.precision,
        "engine": model.engine_choice,  # auto, numpy or tensorflow (shakegen serve --engine)
        "generate_engine": model.sampling_engine(1),  # what samples a single request
        "tensorflow_from_samples": sampling.TENSORFLOW_FROM_SAMPLES if model.engine_choice == "auto" else None,
        "evaluate_engine": model.engine_choice
        if model.engine_choice != "auto"
        else f"numpy up to {sampling.ENGINE_EVALUATE_CHARACTERS:,} predicted characters, else tensorflow",
        "parent": _parent(model),
        "shakegen_version": shakegen.__version__,
        "limits": limits.to_json(),
    }


PARENT_FIELDS = ("run", "sha256", "val_loss", "step", "vocab_size")  # never a path: that is the server's disk


def _parent(model):
    """The run a fine-tuned run started from (its folder's bare name, weights' SHA-256, validation
    loss, step, vocabulary size), where the run records one; else None. The run is recorded as
    the user typed it (perhaps an absolute path): only its last part is shown."""
    for holder in (model, model.info, model.info.data):
        parent = holder.get("parent") if isinstance(holder, dict) else getattr(holder, "parent", None)
        if isinstance(parent, dict):
            shown = {key: parent[key] for key in PARENT_FIELDS if key in parent}
            if shown.get("run") is not None:
                shown["run"] = bare_name(str(shown["run"]))
            return shown
        if parent is not None:
            return bare_name(str(parent))
    return None


def bare_name(run: str) -> str:
    """The last part of a run's name as typed (``/home/me/runs/base/`` -> ``base``; ``pretrained`` stays)."""
    parts = [part for part in run.replace("\\", "/").split("/") if part not in ("", ".", "..")]
    return parts[-1] if parts else run
