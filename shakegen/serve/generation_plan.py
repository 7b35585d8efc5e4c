"""A /v1/generate request checked and planned before any of it is sampled: ``plan_generation``.

The request is validated the way ``TextModel.generate`` and ``shakegen generate`` validate
theirs (no TensorFlow needed), the random seed drawn if none was given, and the engine chosen
by ``sampling.sampling_engine``, the one rule for which engine samples (a ban or min-p needs
the NumPy engine). The route then streams or collects the plan's blocks from ``ModelWorker.sample``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What a ban or min-p on a server sampling on TensorFlow is told (the API's own words, not the CLI's flags).
NUMPY_ONLY_REFUSAL = (
    "ban and min_p are applied by the NumPy engine only, and this server samples on TensorFlow "
    "(shakegen serve --engine); leave them out."
)


@dataclass(frozen=True)
class GenerationPlan:
    """A validated sampling request: the seed as the model sees it, and how to sample after it."""

    seed: str  # as TextModel.seed_text returns it
    prefix: str  # what the text starts with: the seed, or "" when none was given
    length: int
    options: object  # SamplingOptions
    num_samples: int
    random_seed: int
    dropped: list = field(default_factory=list)
    engine: str = "numpy"  # what samples it: "numpy" (the engine) or "tensorflow"
    ban: str | None = None  # characters never emitted (the engine's only, as min_p)
    min_p: float | None = None
    stop: object = None  # a stopping.StopRule, or None
    endings: list = field(default_factory=list)  # filled as each sample ends (stopping.Ended; None: by its length)


def plan_generation(
    model,
    seed: str | None,
    length: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    num_samples: int,
    random_seed: int | None,
    skip_unknown: bool,
    *,
    min_p: float | None = None,
    ban: str | None = None,
    stop: list | None = None,
    keep_stop: bool = False,
    lines: int | None = None,
) -> GenerationPlan:
    """Validate a request for ``model`` (a ``TextModel``) the way ``TextModel.generate`` and ``shakegen generate`` do.

    Raises:
        SamplingError, UnknownCharactersError: bad options or seed.
    """
    from shakegen.use import sampling
    from shakegen.use.logits import check_options

    options = model.sampling_options(temperature, top_k, top_p)
    # TextModel.generate's rule: no seed primes a newline and the text is only what follows it.
    text, dropped = ("\n", []) if seed is None else model.seed_text(seed, skip_unknown)
    if random_seed is None:  # drawn as the CLI draws it, and reported so the text can be had again
        random_seed = sampling.draw_random_seed()
    prefix = "" if seed is None else text
    rule = model.stop_rule(stop, keep_stop, lines)
    banned = model.ban_ids(ban)
    check_options(options.temperature, options.top_k, options.top_p, len(model.vocabulary), min_p=min_p)
    engine = sampling.sampling_engine(
        model.engine_choice, num_samples, numpy_only=bool(banned or min_p), refusal=NUMPY_ONLY_REFUSAL
    )
    return GenerationPlan(
        text, prefix, length, options, num_samples, random_seed, dropped, engine, ban or None, min_p, rule
    )
