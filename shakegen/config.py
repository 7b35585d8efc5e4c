"""Hyperparameters: one frozen dataclass, its presets, and its validation.

Each field also carries what its ``shakegen train`` option needs (help, type, choices or range),
so the command line is generated from here: one source of truth.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from shakegen.errors import ConfigError
from shakegen.machine import preferred_precision

CELLS = ("gru", "classic", "gru1", "gru2", "gru3")
RECURRENT_INITIALIZERS = ("orthogonal", "glorot_uniform")
# auto: mixed_bfloat16 where the processor multiplies bfloat16 natively (AMX or AVX512-BF16),
# float32 elsewhere (emulated bfloat16 is slower than float32); made concrete when a run starts.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
# What runs a GRU layer's time loop (cells.py): shakegen's fused loop, Keras's GRU (cuDNN on a
# GPU), or auto (Keras where cuDNN can take the layer, else fused). Never changes the weights.
RNN_KERNELS = ("auto", "fused", "keras")
# After the linear warm-up: cosine decay to final_learning_rate over the planned epochs, or constant.
LR_SCHEDULES = ("cosine", "constant")

SEED_RANGE = 2**32  # random seeds are 0 ... 2**32 - 1 everywhere: weights, data order, dropout, sampling
MAX_RANDOM_SEED = SEED_RANGE - 1
# How long a run trains: the planned epochs and the caps that stop it sooner (see TrainConfig.replace).
BUDGET_CAPS = ("max_steps", "max_minutes", "max_characters")
BUDGET_FIELDS = ("epochs", *BUDGET_CAPS)


@dataclass(frozen=True)
class Option:
    """What ``shakegen train``'s option for one TrainConfig field needs (cli/train.py builds it).

    The flag is the field's name in kebab case (``--num-layers``); a bool is a ``--x/--no-x`` pair.
    """

    help: str
    type: type | None = None  # int, float or bool; None: the type of the field's default
    choices: tuple[str, ...] | None = None  # a str field: the values it may take
    range: tuple[int, int] | None = None  # an int field: its inclusive bounds, shown in the help
    presets: bool = True  # end the help with each preset's value: [preset: tiny ..., quick ..., ...]


def hyperparameter(default, help: str, **option):
    """A TrainConfig field with its default and, in its metadata, its ``shakegen train`` option."""
    return dataclasses.field(default=default, metadata={"option": Option(help, **option)})


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Saved in the run folder's config.json (in this order).

    Each field is a hyperparameter with its ``shakegen train`` option (``hyperparameter``), so
    adding one is one line here.
    """

    cell: str = hyperparameter("gru", "Recurrent cell variant.", choices=CELLS)
    num_layers: int = hyperparameter(1, "GRU layers.")
    embedding_dim: int = hyperparameter(64, "Embedding size.")
    rnn_units: int = hyperparameter(512, "Units per GRU layer.")
    dropout: float = hyperparameter(0.0, "Dropout after each GRU layer, in [0, 1).")
    # DropConnect on each recurrent kernel: one mask per batch (AWD-LSTM's lever)
    weight_drop: float = hyperparameter(
        0.0, "Fraction of each recurrent kernel dropped per batch (DropConnect), in [0, 1)."
    )
    ema_decay: float = hyperparameter(
        0.0,
        "Validate, and keep as best.npz, an exponential moving average of the weights with this decay "
        "(0.999: about the last 1,000 steps); 0: off. last.npz keeps the raw weights for --resume.",
    )
    recurrent_initializer: str = hyperparameter(  # measured: benchmarks/recurrent_init.py
        "glorot_uniform", "Initialiser of the recurrent kernels.", choices=RECURRENT_INITIALIZERS
    )
    seq_length: int = hyperparameter(128, "Characters per training window.")
    batch_size: int = hyperparameter(64, "Windows per batch.")
    epochs: int = hyperparameter(
        10, "Epochs. Any budget given (this or --max-*) replaces the preset's: tiny's 20-step cap goes."
    )
    max_steps: int | None = hyperparameter(
        None,
        "Stop after this many optimizer steps in all; the learning-rate schedule ends there.",
        type=int,
        presets=False,
    )
    max_minutes: float | None = hyperparameter(
        None,
        "Stop after this many minutes of training in all (the schedule then follows the epochs).",
        type=float,
        presets=False,
    )
    max_characters: int | None = hyperparameter(
        None,
        "Stop after training on this many characters in all; the learning-rate schedule ends there.",
        type=int,
        presets=False,
    )
    learning_rate: float = hyperparameter(2e-3, "Adam's initial learning rate.")
    final_learning_rate: float = hyperparameter(2e-4, "Where the cosine schedule ends: at the end of the budget.")
    lr_schedule: str = hyperparameter(
        "cosine", "After the warm-up: cosine decay to --final-learning-rate, or constant.", choices=LR_SCHEDULES
    )
    warmup_steps: int = hyperparameter(0, "Raise the learning rate linearly from 0 over this many steps first.")
    weight_decay: float = hyperparameter(
        0.0, "Decoupled weight decay (AdamW; times the learning rate) on every matrix, not biases; 0: off."
    )
    clip_norm: float = hyperparameter(5.0, "Clip gradients to this global norm; 0 disables.")
    patience: int | None = hyperparameter(
        None, "Stop when val loss has not improved for this many validations.", type=int, presets=False
    )
    random_seed: int = hyperparameter(
        42, "Seed for weights, data order and dropout, 0 to 2**32 - 1.", range=(0, MAX_RANDOM_SEED)
    )
    precision: str = hyperparameter(
        "float32",
        "Compute precision; auto: mixed_bfloat16 on CPUs with AMX or AVX512-BF16 (where it is faster), else "
        "float32. Saved concrete in config.json.",
        choices=PRECISIONS,
    )
    stateful: bool = hyperparameter(
        False,
        "Carry the GRU state from one training window to the next (contiguous streams per batch row, "
        "truncated backpropagation through time, as char-rnn trains).",
    )
    rnn_kernel: str = hyperparameter(  # how the time loop runs, not what it computes: a resume may change it
        "auto",
        "What runs the GRU time loop: fused (shakegen's loop), keras (Keras's GRU, cuDNN on a GPU, for the gru and "
        "classic cells), or auto (keras for gru in float32 when a GPU is visible, else fused). Same weights either "
        "way; a resumed run may change it. [default: auto]",
        choices=RNN_KERNELS,
        presets=False,
    )
    checkpoint_minutes: float = hyperparameter(
        10.0, "Write last.npz this often inside an epoch; 0: only at validations."
    )
    eval_every: int | None = hyperparameter(
        None,
        "Validate (history row, best.npz, early stopping) every this many steps. [default: once per epoch]",
        type=int,
        presets=False,
    )
    val_characters: int | None = hyperparameter(
        None,
        "Validate on the first N characters of the validation split (for huge corpora). [default: all]",
        type=int,
        presets=False,
    )

    def validate(self, train_characters: int | None = None) -> "TrainConfig":
        """Return self, or raise ConfigError naming the bad value and the fix."""
        positive = ("num_layers", "embedding_dim", "rnn_units", "seq_length", "batch_size", "epochs")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}.")
        for name in ("max_steps", "max_characters", "patience", "eval_every", "val_characters"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be a positive integer or unset, got {value!r}.")
        seed = self.random_seed
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_RANDOM_SEED:
            raise ConfigError(
                f"random_seed must be an integer from 0 to {MAX_RANDOM_SEED} (2**32 - 1), got {seed!r}; pick one in range."
            )
        if self.val_characters is not None and self.val_characters < 2:
            raise ConfigError(
                f"val_characters must be at least 2 (validation predicts each character from those before it), "
                f"got {self.val_characters}."
            )
        if self.clip_norm is not None and not 0 <= self.clip_norm < math.inf:
            raise ConfigError(
                f"clip_norm must be a finite positive number, or 0 for no clipping; got {self.clip_norm!r}."
            )
        if not 0 <= self.checkpoint_minutes < math.inf:
            raise ConfigError(
                f"checkpoint_minutes must be a finite number of minutes, or 0 to save at validations only; "
                f"got {self.checkpoint_minutes!r}."
            )
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be 0 or a positive integer, got {self.warmup_steps!r}.")
        if not 0 <= self.weight_decay < math.inf:
            raise ConfigError(
                f"weight_decay must be a finite number ≥ 0 (AdamW's decay, e.g. 0.01; 0: off), got {self.weight_decay!r}."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"Unknown lr_schedule {self.lr_schedule!r}; expected one of {', '.join(LR_SCHEDULES)}.")
        for name in ("max_minutes", "learning_rate", "final_learning_rate"):
            value = getattr(self, name)
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"{name} must be a finite positive number or unset, got {value!r}.")
        for name in ("dropout", "weight_drop", "ema_decay"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}.")
        if self.weight_drop > 0 and self.rnn_kernel == "keras":
            raise ConfigError(
                "weight_drop needs shakegen's fused loop (Keras's GRU reads its recurrent kernel itself); "
                "use --rnn-kernel fused or auto, or --weight-drop 0."
            )
        if self.cell not in CELLS:
            raise ConfigError(f"Unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}.")
        if self.recurrent_initializer not in RECURRENT_INITIALIZERS:
            raise ConfigError(
                f"Unknown recurrent_initializer {self.recurrent_initializer!r}; "
                f"expected one of {', '.join(RECURRENT_INITIALIZERS)}."
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"Unknown precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}.")
        if self.rnn_kernel not in RNN_KERNELS:
            raise ConfigError(f"Unknown rnn_kernel {self.rnn_kernel!r}; expected one of {', '.join(RNN_KERNELS)}.")
        needed = self.batch_size * (self.seq_length + 1)
        if train_characters is not None and self.stateful and needed > train_characters:
            raise ConfigError(
                f"stateful training cuts the text into {self.batch_size} streams of at least {self.seq_length + 1} "
                f"characters ({needed:,} in all), but the training split holds only {train_characters:,}. "
                "Lower --batch-size or --seq-length, or train without --stateful."
            )
        if train_characters is not None and self.seq_length + 1 > train_characters:
            raise ConfigError(
                f"seq_length {self.seq_length} needs windows of {self.seq_length + 1} characters, but the "
                f"training split holds only {train_characters}. Lower --seq-length or use a longer corpus."
            )
        return self

    def resolved(self, gpu: bool = False) -> "TrainConfig":
        """This config with precision ``auto`` made concrete for this machine (what a run saves)."""
        if self.precision != "auto":
            return self

        return dataclasses.replace(self, precision=preferred_precision(gpu))

    def architecture(self) -> dict:
        """The fields that decide the weights' shapes and meaning (resume must keep these)."""
        names = ("cell", "num_layers", "embedding_dim", "rnn_units")
        return {name: getattr(self, name) for name in names}

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "TrainConfig":
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    def replace(self, **changes) -> "TrainConfig":
        """This config with ``changes``; a change of None is no change (an option not given).

        A budget given (``BUDGET_FIELDS``: epochs, max_steps, max_minutes, max_characters)
        replaces this config's budget: the caps it does not name are cleared, so a preset's
        ``max_steps`` never cuts short the ``epochs`` or characters asked for. Give several to
        keep several (the run stops at the first reached).
        """
        given = {key: value for key, value in changes.items() if value is not None}
        if any(key in BUDGET_FIELDS for key in given):
            given = {**{key: None for key in BUDGET_CAPS}, **given}
        return dataclasses.replace(self, **given)


PRESETS: dict[str, TrainConfig] = {
    # Seconds on a CPU: for tests and smoke runs.
    "tiny": TrainConfig(embedding_dim=8, rnn_units=16, seq_length=32, batch_size=16, epochs=2, max_steps=20),
    # Minutes on a 2-core CPU (at most ten); reaches val loss 1.44 and writes play-like text.
    # Batch 32 (twice the updates per character), dropout 0.1, an embedding of 128 and AdamW 0.1
    # measured best at this budget, the last two over three seeds: README.
    "quick": TrainConfig(
        embedding_dim=128,
        rnn_units=512,
        seq_length=128,
        batch_size=32,
        epochs=10,
        learning_rate=3e-3,
        dropout=0.1,
        weight_decay=0.1,
        precision="auto",
    ),
    # The TensorFlow tutorial's size.
    "standard": TrainConfig(
        embedding_dim=256, rnn_units=1024, seq_length=100, batch_size=64, epochs=20, precision="auto"
    ),
    # The best this model writes on Tiny Shakespeare within about 90 training minutes on a 2-core
    # CPU with native bfloat16 (README, "What quality to expect"): three layers regularised by
    # dropout between them, weight-drop on their recurrent kernels (AWD-LSTM's levers) and
    # decoupled weight decay (AdamW), which kept the validation loss falling for 50 epochs.
    "large": TrainConfig(
        num_layers=3,
        embedding_dim=128,
        rnn_units=512,
        seq_length=128,
        batch_size=32,
        epochs=50,
        learning_rate=2e-3,
        dropout=0.25,
        weight_drop=0.3,
        weight_decay=0.1,
        precision="auto",
    ),
}
