"""Which text a run is scored on, encoded as the run reads text: a split, a file or a string.

A split of the prepared corpus (or, for a run trained on the embedded Tiny Shakespeare, its split cut in
memory), a text file read in the corpus's encoding and cleaned as the corpus was, or a string; characters
the run does not know are left out and counted (``strict`` refuses them), and a split of a corpus other
than the run's own is scored all the same, with a note saying so (``EvaluationText``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from shakegen.data import corpus, prepare
from shakegen.data.corpus import iter_clean_chunks, looks_binary
from shakegen.data.vocab import UnknownCharactersError, translate
from shakegen.errors import EvaluationError

SPLITS = ("val", "train")


def check_one_given(text, path, split) -> None:
    """EvaluationError unless exactly one of a text, a file path and a split is given."""
    given = [name for name, value in (("text", text), ("path", path), ("split", split)) if value is not None]
    if len(given) != 1:
        raise EvaluationError(f"Give exactly one of text, path or split to evaluate; got {', '.join(given) or 'none'}.")


def text_to_score(info, text, path, split, data_dir, strict: bool, encoding) -> tuple["EvaluationText", str]:
    """The text to score (``string_ids`` for a string, else ``evaluation_ids``) and how a report names it:
    ``text``, the file's path, or ``val split`` / ``train split``."""
    if text is not None:
        return EvaluationText(*string_ids(info, text, strict)), "text"
    found = evaluation_ids(info, split=split, text_path=path, data_dir=data_dir, strict=strict, encoding=encoding)
    return found, str(path) if path is not None else f"{split} split"


def _file_ids(info, text_path, encoding: str | None, strict: bool) -> tuple[np.ndarray, int]:
    """Encode a text file as the run's corpus was read and cleaned; unknown characters left out."""
    path = Path(text_path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "is not a regular file" if path.exists() else "does not exist"
        raise EvaluationError(f"The text to evaluate, {path}, {what}; pass an existing text file with --text.")
    options = info.data.get("options", {})
    encoding = encoding or options.get("encoding") or "utf-8"
    if looks_binary(path, encoding):
        raise EvaluationError(
            f"{path} looks like a binary file (it holds NUL bytes), not {encoding} text; pass a text file with --text "
            "(or its encoding with --encoding)."
        )
    pieces, unknown, left_out = [], {}, 0
    for text in iter_clean_chunks(
        path,
        encoding=encoding,
        lowercase=options.get("lowercase", False),
        strip_punctuation=options.get("strip_punctuation", False),
    ):
        known, missing = info.drop_unknown(text)  # chunks arrive cleaned as the run's corpus was
        if missing:
            unknown.update(dict.fromkeys(missing))
            left_out += len(text) - len(known)
            text = known
        pieces.append(info.vocab.encode(text))
    ids = np.concatenate(pieces) if pieces else np.zeros(0, info.vocab.dtype)
    if unknown and strict:
        raise UnknownCharactersError(
            list(unknown),
            len(info.vocab),
            subject=f"{path} ({left_out:,} characters)",
            where=f"The checkpoint at {info.run_dir}",
            advice="drop --strict to leave them out of the figure",
        )
    if len(ids) + left_out == 0:
        raise EvaluationError(f"{path} holds no text to evaluate; give a file with some text in it.")
    if len(ids) < 2:
        raise EvaluationError(f"{path} has fewer than 2 characters the model knows; nothing to evaluate.")
    return ids, left_out


@dataclass(frozen=True)
class EvaluationText:
    """What ``evaluation_ids`` found to evaluate.

    ``ids``: the encoded text. ``left_out``: characters left out as unknown to the run.
    ``same_corpus``: for a split, whether it is of the corpus the run was trained on (by the
    cleaned text's SHA-256; ``None`` for a text file, or a run that records no hash), and
    ``corpus_note``: one sentence saying so when it is not.
    """

    ids: np.ndarray
    left_out: int = 0
    same_corpus: bool | None = None
    corpus_note: str | None = None


def evaluation_ids(
    info, *, split: str | None, text_path=None, data_dir="data", strict: bool = False, encoding: str | None = None
) -> EvaluationText:
    """The encoded text to evaluate a run on (see ``EvaluationText``).

    Args:
        info: the run's ``RunInfo``.
        split: ``val`` or ``train`` of the prepared corpus in ``data_dir``, unless ``text_path``;
            for a run trained on the embedded Tiny Shakespeare, its split is cut in memory unless
            ``data_dir`` holds that same corpus prepared. A prepared corpus other than the run's
            own is scored all the same, and said so (``corpus_note``).
        text_path: a text file, read in ``encoding`` (default: the encoding the run's corpus
            was prepared with) and cleaned as the corpus was.
        strict: refuse characters the model does not know instead of leaving them out.
    Raises:
        EvaluationError: an unknown split, empty text, no known character, or a split that was
            never prepared or holds characters the run does not know.
        UnknownCharactersError: unknown characters with ``strict``.
        CorpusError: the file is not valid in its encoding, or the encoding is unknown.
    """

    if text_path is not None:
        return EvaluationText(*_file_ids(info, text_path, encoding, strict))
    if split not in SPLITS:
        raise EvaluationError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)} (or a text to evaluate).")
    prepared = data_dir is not None and prepare.is_prepared(data_dir)
    data = prepare.load_prepared(data_dir) if prepared else None
    run_sha256 = info.data.get("sha256")
    if data is None or data.meta.get("sha256") != run_sha256:
        # A run trained on the embedded corpus (the pretrained model) is scored on its own split,
        # cut in memory, whatever else is (or is not) prepared in data_dir.
        embedded = embedded_corpus_text(info)
        if embedded is not None:
            cut = info.data["train_characters"]
            ids = info.vocab.encode(embedded[:cut] if split == "train" else embedded[cut:])
            return EvaluationText(ids, 0, True, None if data is None else _passed_over_note(data.meta, data_dir, split))
    if data is None:
        where = "anywhere" if data_dir is None else f"in {prepare.prepared_dir(data_dir)}"
        raise EvaluationError(
            f"The {split} split is not prepared {where}. Run `shakegen prepare` "
            "on the corpus the model was trained on, or evaluate a file with --text."
        )

    if not info.vocab.covers(data.vocab):
        raise EvaluationError(
            f"The prepared data in {prepare.prepared_dir(data_dir)} has characters the run at {info.run_dir} does not "
            "know; prepare the corpus it was trained on, or use --text."
        )
    same = None if not run_sha256 else data.meta.get("sha256") == run_sha256
    note = None if same is not False else _other_corpus_note(info, data.meta, prepare.prepared_dir(data_dir), split)
    # The run's ids: a fine-tuned run's vocabulary extends the prepared one's, in another order.
    ids = translate(data.train if split == "train" else data.val, data.vocab.translation_to(info.vocab))
    return EvaluationText(ids, 0, same, note)


def _named(values: dict) -> str:
    """A corpus as a note names it: its file name (no path of this machine) and the start of its SHA-256."""
    source = values.get("source")
    name = PurePath(str(source)).name if source else "a corpus"
    return f"{name} (SHA-256 {str(values.get('sha256', '?'))[:12]})"


def _passed_over_note(meta: dict, data_dir, split: str) -> str:
    """One line: a run of the embedded corpus was scored on its own split, not on the other corpus prepared."""
    return (
        f"{prepare.prepared_dir(data_dir)} holds {_named(meta)}, not the embedded Tiny Shakespeare this run was "
        f"trained on: this figure is the run's own {split} split. To score that corpus, pass one of its files with --text."
    )


def _other_corpus_note(info, meta: dict, folder, split: str) -> str:
    """One line: the prepared corpus is not the one the run was trained on (file names only)."""
    return (
        f"{info.run_dir} was trained on {_named(info.data)}, but {folder} holds {_named(meta)}: "
        f"this figure is that corpus's {split} split, not the run's own. Pass --data-dir with the run's corpus "
        "prepared to score it on its own."
    )


def embedded_corpus_text(info) -> str | None:
    """The embedded Tiny Shakespeare cleaned as ``info``'s run prepared it, if that run was
    trained on it (its recorded SHA-256 is the cleaned text's); None for any other run."""
    text = info.clean(corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8"))
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != info.data.get("sha256"):
        return None
    return None if info.vocab.unknown_characters(text) else text


def string_ids(info, text: str, strict: bool = False) -> tuple[np.ndarray, int]:
    """Encode a string as the run sees text (``RunInfo.text_as_seen``); unknown characters left out.

    Raises:
        UnknownCharactersError: unknown characters with ``strict``.
        EvaluationError: fewer than 2 known characters.
    """

    if not isinstance(text, str):
        raise EvaluationError(f"The text to evaluate must be a string, got {type(text).__name__}.")
    cleaned, known, unknown = info.text_as_seen(text)
    if unknown and strict:
        raise UnknownCharactersError(
            unknown,
            len(info.vocab),
            subject=f"The text ({len(cleaned) - len(known):,} characters)",
            where=f"The checkpoint at {info.run_dir}",
            advice="pass strict=False to leave them out of the figure",
        )
    if len(known) < 2:
        raise EvaluationError("The text has fewer than 2 characters the model knows; nothing to evaluate.")
    return info.vocab.encode(known), len(cleaned) - len(known)
