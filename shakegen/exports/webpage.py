"""A run as a static web page that samples in the browser: ``shakegen export --format web``.

The folder it writes needs no server, framework or network (open ``index.html`` from disk, or
put the folder on any static host):

``index.html``
    the page: seed, length, temperature, top-k, top-p, random seed, Generate/Stop, streaming text.
``shakegen.js``
    the GRU forward pass of every cell at any depth and the engine's sampler and noise (see
    ``engine`` and ``noise``), hand-written; ``window.shakegen.generate({...})`` returns a
    promise of the text.
``weights.js``
    the weights, one file: every array in float16, little-endian, concatenated (the manifest gives
    each one's name, shape and offset) and stored as the UTF-16LE code units of one JavaScript
    string, beside the manifest (cell, layers, vocabulary, how seeds are cleaned, the card). A
    float16 value *is* a UTF-16 code unit, so the file is the binary weights plus a few escapes
    (``escape``), about 2 bytes per weight: a page loads it with a ``<script>`` tag from
    ``file://`` (where browsers refuse ``fetch``) as from any server. ``read_weights`` reads it back.
``card.json``
    the model card: the run by its bare name, its configuration and figures (no path of this machine).

Float16 is what ships: a float32 run's page samples the float16-rounded weights (as the bundled
pretrained model does everywhere), so it can part from ``shakegen generate`` on the float32 run
after a while; a float16 run (the pretrained bundle) gives the engine's text except at float near-ties.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shakegen import fileio
from shakegen.errors import ShakegenError
from shakegen.runs import checkpoint, names, pretrained
from shakegen.use import engine
from shakegen.version import __version__

FORMAT = "shakegen-web/1"
PAGE_FILES = ("index.html", "shakegen.js")  # copied from the package's web/ folder
WEIGHTS_FILE = "weights.js"
CARD_FILE = "card.json"
FILES = (*PAGE_FILES, WEIGHTS_FILE, CARD_FILE)
ASSETS_DIR = Path(__file__).parents[1] / "web"
GLOBAL = "window.shakegenModel"
# Code units a JavaScript string literal (or UTF-16 decoding) cannot hold as they are: NUL, the quote,
# the backslash, line terminators, and surrogates (a lone one decodes to U+FFFD).
_ESCAPED = re.compile('[\x00\n\r"\\\\\u2028\u2029\ud800-\udfff]')


class WebExportError(ShakegenError, ValueError):
    """A run cannot be exported as a web page where it was asked to go."""


@dataclass(frozen=True)
class WebExportResult:
    out_dir: Path
    run_dir: Path
    which: str
    vocab_size: int
    parameters: int
    weights_bytes: int  # the float16 weights alone: 2 bytes per value
    folder_bytes: int  # everything written


def export_web(run_dir: str | os.PathLike, out_dir: str | os.PathLike, which: str = "best", *, overwrite=False):
    """Write ``run_dir``'s ``which`` weights as a static web page in ``out_dir``.

    The folder is written beside ``out_dir`` and renamed into place at the end: a failure never
    leaves a half-written page where ``out_dir`` is.

    Args:
        overwrite: replace a web export already in ``out_dir`` (a folder holding anything else is never replaced).
    Returns:
        WebExportResult.
    Raises:
        CheckpointError: no such run, or a missing, damaged or ill-fitting checkpoint.
        WebExportError: ``out_dir`` is a file or a folder that is not empty (without ``overwrite``, or not
            a web export), a weight too large for float16, or the folder cannot be written.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    fileio.check_export_folder(
        out_dir, overwrite, holds=is_web_export, own=FILES, thing="shakegen web page", error=WebExportError
    )
    info = checkpoint.read_run(run_dir)
    path = checkpoint.checkpoint_path(run_dir, which)
    weights = checkpoint.read_weights(path)
    engine.Engine(weights, info.config.cell, info.config.num_layers)  # refuses weights that do not fit
    arrays = ordered_arrays(weights, info.config.cell, info.config.num_layers)
    card = model_card(run_dir, info, which, checkpoint.read_state(path))
    manifest = {
        "format": FORMAT,
        "cell": info.config.cell,
        "num_layers": info.config.num_layers,
        "vocab": list(info.vocab.chars),
        "cleaning": {
            "lowercase": bool(info.data.get("options", {}).get("lowercase", False)),
            "strip_punctuation": bool(info.data.get("options", {}).get("strip_punctuation", False)),
        },
        "card": card,
    }
    halfs = _float16(arrays, run_dir)
    manifest["arrays"], offset = [], 0
    for name, value in halfs.items():
        manifest["arrays"].append({"name": name, "shape": list(value.shape), "offset": offset})
        offset += value.size
    manifest["values"] = offset
    payload = np.concatenate([value.ravel() for value in halfs.values()]).astype("<f2")
    try:
        staging = fileio.staging_folder(out_dir)
    except OSError as error:
        raise WebExportError(_cannot_write(out_dir, error)) from None
    try:
        for name in PAGE_FILES:
            shutil.copyfile(ASSETS_DIR / name, staging / name)
        (staging / WEIGHTS_FILE).write_bytes(weights_script(manifest, payload))
        fileio.write_json(staging / CARD_FILE, card)
        size = sum(file.stat().st_size for file in staging.iterdir())
        fileio.replace_folder(staging, out_dir)
    except OSError as error:
        raise WebExportError(_cannot_write(out_dir, error)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return WebExportResult(out_dir, run_dir, which, len(info.vocab), int(offset), 2 * int(offset), size)


def ordered_arrays(weights: dict, cell: str, num_layers: int) -> dict[str, np.ndarray]:
    """The model's arrays under the names the page reads, in the order they are stored."""
    wanted = [("embedding", "embedding/embeddings", 2)]
    for index in range(num_layers):
        wanted += [(f"rnn_{index}/kernel", None, 2), (f"rnn_{index}/recurrent_kernel", None, 2)]
        wanted.append((f"rnn_{index}/bias", None, 2 if cell == "gru" else 1))  # gru: (2, 3u); else (3u,) or (u,)
    wanted += [("logits/kernel", None, 2), ("logits/bias", None, 1)]
    return {name: engine._weight(weights, stored or name, ndim) for name, stored, ndim in wanted}


def _float16(arrays: dict, run_dir: Path) -> dict[str, np.ndarray]:
    halfs = {}
    for name, value in arrays.items():
        with np.errstate(over="ignore"):  # reported below, in one line
            half = np.asarray(value).astype(np.float16)
        if not np.isfinite(half).all():
            raise WebExportError(
                f"{run_dir}'s weight {name} has values beyond float16's range (±65,504); the web page stores "
                "weights in float16. Export it as a SavedModel instead (--format savedmodel)."
            )
        halfs[name] = half
    return halfs


def escape(text: str) -> str:
    """A string of float16 code units as the body of a JavaScript (and JSON) string literal."""
    return _ESCAPED.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def weights_script(manifest: dict, payload: np.ndarray) -> bytes:
    """weights.js: ``window.shakegenModel = {"manifest": ..., "weights": "..."};`` in UTF-16LE with a BOM."""
    units = payload.astype("<f2").view("<u2").tobytes().decode("utf-16-le", "surrogatepass")
    head = f'{GLOBAL} = {{"manifest": {json.dumps(manifest, ensure_ascii=False)},\n"weights": "'
    return "\ufeff".encode("utf-16-le") + (head + escape(units) + '"};\n').encode("utf-16-le")


def read_weights(out_dir: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """A web export's (manifest, {name: float16 array}), read back from its weights.js."""
    text = (Path(out_dir) / WEIGHTS_FILE).read_bytes().decode("utf-16")
    body = text[text.index("{") : text.rindex("}") + 1]
    values = json.loads(body, strict=False)  # JavaScript strings may hold control characters; JSON asks for escapes
    payload = np.frombuffer(values["weights"].encode("utf-16-le", "surrogatepass"), "<f2")
    manifest = values["manifest"]
    arrays = {}
    for entry in manifest["arrays"]:
        count = int(np.prod(entry["shape"]))
        arrays[entry["name"]] = payload[entry["offset"] : entry["offset"] + count].reshape(entry["shape"])
    return manifest, arrays


def model_card(run_dir: Path, info, which: str, state: dict) -> dict:
    """What the page shows about the model: names and figures only, no path of this machine."""
    raw = pretrained.portable_run_config(fileio.read_json(run_dir / checkpoint.CONFIG_FILE))
    card = {
        "format": FORMAT,
        "run": names.PRETRAINED if names.is_pretrained(run_dir) else run_dir.resolve().name,
        "which": which,
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "shakegen_version": __version__,
        "parameters": info.parameters,
        "storage": "float16",
        "epoch": state.get("epoch"),
        "step": state.get("step"),
        "val_loss": state.get("val_loss"),
        "corpus": raw.get("data", {}).get("source"),
        "corpus_characters": raw.get("data", {}).get("characters"),
        "config": raw.get("config", {}),
    }
    if raw.get("parent"):
        card["parent"] = raw["parent"]
    if (run_dir / pretrained.CARD_FILE).is_file():  # the bundled model's own card: command, build, figures
        try:
            card["pretrained"] = pretrained.card(run_dir)
        except ShakegenError:
            pass
    return card


def _cannot_write(out_dir: Path, error: OSError) -> str:
    return (
        f"Could not write the web page to {out_dir}: {error.strerror or error}. "
        "Free some space or fix the folder's permissions, or choose another --out."
    )


def is_web_export(folder: Path) -> bool:
    """Whether ``folder`` holds a page this module wrote (its card names the format)."""
    try:
        return all((folder / name).is_file() for name in FILES) and fileio.read_json(folder / CARD_FILE).get(
            "format", ""
        ).startswith("shakegen-web/")
    except (OSError, ValueError, AttributeError):
        return False
