"""shakegen against PyTorch's nn.GRU: the same model weight for weight, then training speed.

Needs PyTorch (`pip install torch`, the CPU wheel is enough); never imported by the tests.

1. Parity. A shakegen `gru` model (a run folder with --checkpoint, else the `standard` model
   with random weights and random biases) is copied into nn.Embedding → nn.GRU × L →
   nn.Linear, and both compute the cross-entropy of the same text (the last characters of
   the embedded Tiny Shakespeare, i.e. its validation region) and a greedy sample.

   The mapping, per layer (u = units; shakegen/Keras column blocks z, r, h; PyTorch row
   blocks r, z, n with n = shakegen's candidate h~, and matrices transposed):

       weight_ih_l{k} = kernel[:, [u:2u, 0:u, 2u:3u]].T            (3u, input)
       weight_hh_l{k} = recurrent_kernel[:, [u:2u, 0:u, 2u:3u]].T  (3u, u)
       bias_ih_l{k}   = bias[0][[u:2u, 0:u, 2u:3u]]   (input bias, added to W x)
       bias_hh_l{k}   = bias[1][[u:2u, 0:u, 2u:3u]]   (recurrent bias, inside r ⊙ (...))
       embedding.weight = embeddings;  linear.weight = logits kernel.T, linear.bias = logits bias

   Both then compute r = σ(W_r x + b_ir + U_r h + b_hr), z likewise, n = tanh(W_n x + b_in +
   r ⊙ (U_n h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h: shakegen's `gru` equations exactly.

2. Speed. The `standard` model (embedding 256, 1 × GRU 1024, batch 64 × 100) trains with
   Adam on the same batches in shakegen (float32, fused loop) and in PyTorch (float32, and
   bfloat16 autocast), all starting from the same weights, alternating; median ratios.
   PyTorch runs with 1 thread and with every core: on a loaded 2-core machine its OpenMP
   threads wait on each other at every one of the many small per-step operations, and one
   thread can be several times faster than two.

    python benchmarks/torch_reference.py [--checkpoint RUN_DIR] [--rounds 5] [--steps 2]
        [--skip-parity] [--skip-speed] [--units 1024] [--num-layers 1] [--shakegen-bfloat16] [--torch-threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
import torch
from common import alternate, report, tf, timed_rate
from torch import nn
from torch.nn import functional

from shakegen.config import PRESETS
from shakegen.data import corpus
from shakegen.data.vocab import Vocabulary
from shakegen.model.network import build_model
from shakegen.runs import checkpoint
from shakegen.use import sampling, tf_sampler

SHAKEGEN = "shakegen gru (fused), float32"
SHAKEGEN_BF16 = "shakegen gru (fused), mixed_bfloat16"
TORCH = "PyTorch nn.GRU, float32"
TORCH_BF16 = "PyTorch nn.GRU, bfloat16 autocast"


class TorchCharModel(nn.Module):
    """Embedding → GRU × layers → Linear, as shakegen's model."""

    def __init__(self, vocab_size: int, embedding_dim: int, units: int, num_layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.gru = nn.GRU(embedding_dim, units, num_layers=num_layers, batch_first=True)
        self.logits = nn.Linear(units, vocab_size)

    def forward(self, ids, state=None):
        x, state = self.gru(self.embedding(ids), state)
        return self.logits(x), state


def torch_gate_order(matrix: np.ndarray) -> np.ndarray:
    """Column blocks z, r, h (shakegen, Keras) → r, z, n (PyTorch), on the last axis."""
    z, r, h = np.split(matrix, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def copy_into_torch(model, torch_model: TorchCharModel) -> None:
    """shakegen weights → PyTorch parameters (see the mapping in the module docstring)."""
    if model.config.cell != "gru":
        raise SystemExit(f"nn.GRU computes the `gru` cell only; this model is {model.config.cell!r}.")
    values = {
        "embedding.weight": model.embedding.embeddings.numpy(),
        "logits.weight": model.dense.kernel.numpy().T,
        "logits.bias": model.dense.bias.numpy(),
    }
    for index, layer in enumerate(model.rnn_layers):
        bias = layer.bias.numpy()  # (2, 3u): input bias, recurrent bias
        values[f"gru.weight_ih_l{index}"] = torch_gate_order(layer.kernel.numpy()).T
        values[f"gru.weight_hh_l{index}"] = torch_gate_order(layer.recurrent_kernel.numpy()).T
        values[f"gru.bias_ih_l{index}"] = torch_gate_order(bias[0])
        values[f"gru.bias_hh_l{index}"] = torch_gate_order(bias[1])
    state = torch_model.state_dict()
    assert set(values) == set(state), sorted(set(values) ^ set(state))
    torch_model.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in values.items()})


def torch_greedy(torch_model: TorchCharModel, seed_ids, length: int) -> list[int]:
    with torch.no_grad():
        logits, state = torch_model(torch.tensor([seed_ids]))
        chosen = []
        for _ in range(length):
            next_id = int(torch.argmax(logits[0, -1]))
            chosen.append(next_id)
            logits, state = torch_model(torch.tensor([[next_id]]), state)
    return chosen


def parity(model, vocab: Vocabulary, characters: int, sample_length: int) -> None:
    config = model.config
    torch_model = TorchCharModel(len(vocab), config.embedding_dim, config.rnn_units, config.num_layers)
    copy_into_torch(model, torch_model)
    text = corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8")[-characters - 1 :]
    text = "".join(char for char in text if char in vocab.char_to_id)
    ids = np.asarray(vocab.encode(text), np.int32)[None, :]
    inputs, targets = ids[:, :-1], ids[:, 1:]
    ours, _ = model(tf.constant(inputs))
    ours = ours.numpy()
    ours_loss = float(
        tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=ours)).numpy()
    )
    with torch.no_grad():
        theirs, _ = torch_model(torch.from_numpy(inputs.astype(np.int64)))
        theirs_loss = float(functional.cross_entropy(theirs[0], torch.from_numpy(targets[0].astype(np.int64))))
    theirs = theirs.numpy()
    print(f"Parity on the last {targets.shape[1]:,} characters of Tiny Shakespeare (one stream from a zero state):")
    difference = abs(ours_loss - theirs_loss)
    print(f"  cross-entropy  shakegen {ours_loss:.6f}   PyTorch {theirs_loss:.6f}   |difference| {difference:.2e}")
    largest = np.abs(ours).max()
    print(f"  logits         max |difference| {np.abs(ours - theirs).max():.2e} (largest |logit| {largest:.2f})")
    seed = "ROMEO:"
    greedy = sampling.SamplingOptions(temperature=0)
    blocks = tf_sampler.Sampler(model, greedy).sample(vocab.encode(seed), sample_length)
    ours_text = vocab.decode(np.concatenate(list(blocks), axis=1)[0])
    theirs_text = vocab.decode(torch_greedy(torch_model, [int(i) for i in vocab.encode(seed)], sample_length))
    differing = [index for index, (a, b) in enumerate(zip(ours_text, theirs_text, strict=True)) if a != b]
    verdict = f"first {differing[0]} characters identical" if differing else "identical"
    print(f"  greedy sample of {sample_length} characters after {seed!r}: {verdict}")
    print("  " + repr(ours_text[:120]))


def randomise_biases(model, seed: int = 0) -> None:
    """Non-zero biases, so the parity check also covers where each bias goes."""
    rng = np.random.default_rng(seed)
    for layer in model.rnn_layers:
        layer.bias.assign(rng.normal(0, 0.3, size=layer.bias.shape).astype("float32"))
    model.dense.bias.assign(rng.normal(0, 0.3, size=model.dense.bias.shape).astype("float32"))


def speed(config, rounds: int, steps: int, shakegen_bfloat16: bool, torch_threads: list[int]) -> None:
    from train_speed import train_step_for

    vocab_size = 65
    model = build_model(vocab_size, config.replace(rnn_kernel="fused"))
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.seq_length)
    inputs_np, targets_np = rng.integers(0, vocab_size, shape), rng.integers(0, vocab_size, shape)
    inputs, targets = tf.constant(inputs_np, tf.int32), tf.constant(targets_np, tf.int32)
    torch_inputs, torch_targets = torch.from_numpy(inputs_np), torch.from_numpy(targets_np)

    def shakegen_step_for(precision: str):
        copy = build_model(vocab_size, config.replace(rnn_kernel="fused", precision=precision))
        copy.set_weights(model.get_weights())
        step = train_step_for(lambda x: copy(x)[0], copy.trainable_variables)
        return lambda: step(inputs, targets)

    def torch_step_for(bfloat16: bool, threads: int):
        torch_model = TorchCharModel(vocab_size, config.embedding_dim, config.rnn_units, config.num_layers)
        copy_into_torch(model, torch_model)
        optimizer = torch.optim.Adam(torch_model.parameters(), lr=1e-3)

        def step():
            torch.set_num_threads(threads)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                logits, _ = torch_model(torch_inputs)
            loss = functional.cross_entropy(logits.float().reshape(-1, vocab_size), torch_targets.reshape(-1))
            loss.backward()
            optimizer.step()
            return loss.detach()

        return step

    steps_by_name = {SHAKEGEN: shakegen_step_for("float32")}
    if shakegen_bfloat16:
        steps_by_name[SHAKEGEN_BF16] = shakegen_step_for("mixed_bfloat16")
    for threads in torch_threads:
        steps_by_name[f"{TORCH}, {threads} thread(s)"] = torch_step_for(False, threads)
        steps_by_name[f"{TORCH_BF16}, {threads} thread(s)"] = torch_step_for(True, threads)
    # Same weights, same batch: the first losses agree (bfloat16 up to its rounding).
    first = {name: float(step()) for name, step in steps_by_name.items()}
    print("first-step loss: " + "; ".join(f"{name} {loss:.5f}" for name, loss in first.items()))
    probe = TorchCharModel(vocab_size, config.embedding_dim, config.rnn_units, 1)
    with torch.no_grad():
        embedded = probe.embedding(torch_inputs[:4])
        exact, _ = probe.gru(embedded)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded, _ = probe.gru(embedded)
    # nn.GRU's products go through aten::linear, which autocast runs in bfloat16; its state stays float32.
    print(
        f"nn.GRU under bfloat16 autocast: output {rounded.dtype}, max |difference| from float32 "
        f"{(rounded - exact).abs().max():.1e} (bfloat16 rounding, so its products ran in bfloat16)"
    )
    for step in steps_by_name.values():  # warm-up
        step()

    def run(step):
        def work():
            for _ in range(steps):
                loss = step()
            float(loss)

        return lambda: timed_rate(work, steps * config.batch_size * config.seq_length)

    print(
        f"Training: {config.num_layers} x GRU {config.rnn_units}, embedding {config.embedding_dim}, "
        f"batch {config.batch_size} x {config.seq_length}, Adam; {rounds} alternating rounds of {steps} steps; "
        f"PyTorch {torch.__version__}, TensorFlow {tf.__version__}"
    )
    rates = alternate({name: run(step) for name, step in steps_by_name.items()}, rounds, pause=1.0)
    reference = f"{TORCH}, {torch_threads[0]} thread(s)"
    report(rates, reference, "chars/s")
    for ours in [name for name in rates if name.startswith("shakegen")]:
        for theirs in [name for name in rates if name.startswith("PyTorch") and name != reference]:
            per_round = [a / b for a, b in zip(rates[ours], rates[theirs], strict=True)]
            print(
                f"per-round ratio {ours} / {theirs}: median {statistics.median(per_round):.2f}x "
                f"(min {min(per_round):.2f}, max {max(per_round):.2f})"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a run folder trained with --cell gru (parity only)")
    parser.add_argument("--characters", type=int, default=5000, help="characters of text for the parity check")
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="train steps per timed run")
    parser.add_argument("--units", type=int, default=PRESETS["standard"].rnn_units)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--shakegen-bfloat16", action="store_true", help="also time shakegen in mixed_bfloat16")
    parser.add_argument(
        "--torch-threads", default=None, help="comma-separated thread counts for PyTorch [default: 1 and every core]"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    cores = len(os.sched_getaffinity(0))  # TensorFlow uses them all
    torch_threads = [int(n) for n in args.torch_threads.split(",")] if args.torch_threads else sorted({1, cores})
    config = PRESETS["standard"].replace(rnn_units=args.units, num_layers=args.num_layers, rnn_kernel="fused")
    if not args.skip_parity:
        if args.checkpoint:
            model, info, _ = checkpoint.load_model(args.checkpoint, "best")
            vocab = info.vocab
            print(f"Model: {args.checkpoint} ({info.config.num_layers} x {info.config.rnn_units} units)")
        else:
            vocab = Vocabulary.from_characters(corpus.EMBEDDED_CORPUS.read_text(encoding="utf-8"))
            model = build_model(len(vocab), config)
            randomise_biases(model)
            print(f"Model: `standard` ({config.num_layers} x {config.rnn_units} units), random weights and biases")
        parity(model, vocab, args.characters, args.sample_length)
    if not args.skip_speed:
        speed(config, args.rounds, args.steps, args.shakegen_bfloat16, torch_threads)


if __name__ == "__main__":
    main()
