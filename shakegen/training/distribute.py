"""Training across devices and machines with TensorFlow's own tf.distribute.

``one``: no strategy (a single device). ``mirrored``: MirroredStrategy over the local GPUs, or,
on a machine with fewer than two GPUs, over logical CPU devices (useful for testing and on
many-core CPUs). ``multi-worker``: MultiWorkerMirroredStrategy configured by the standard
TF_CONFIG environment variable. ``auto``: mirrored when more than one GPU is visible, else one.

Also the plumbing around the strategy: which process is the chief (the one that writes the
run folder), and the feed that gives each replica its slice of every global batch.
"""

from __future__ import annotations

import json
import os

from shakegen.config import ConfigError, TrainConfig
from shakegen.training.dataset import epoch_windows

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
CPU_REPLICAS = 2


def make_strategy(name: str):
    """The tf.distribute strategy for ``name`` (the default strategy for ``one``).

    Must run before TensorFlow has executed any op when it needs logical CPU devices.

    Raises:
        ConfigError: unknown name, missing TF_CONFIG, or CPU devices that can no longer be split.
    """
    from shakegen.model.backend import tf

    if name not in STRATEGIES:
        raise ConfigError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one"
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "--strategy multi-worker needs the TF_CONFIG environment variable describing the cluster and this "
                "worker's task; see README.md, 'Training on several GPUs or machines'."
            )
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as error:
            raise ConfigError(f"TF_CONFIG is not valid JSON ({error}).") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    cpus = tf.config.list_physical_devices("CPU")
    try:  # (listing logical devices would start the runtime, so try the split first)
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * CPU_REPLICAS)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) < CPU_REPLICAS:
            raise ConfigError(
                "--strategy mirrored on a CPU-only machine splits the CPU into logical devices, which must happen "
                "before TensorFlow starts; run it in a fresh process."
            ) from None
    devices = [device.name for device in tf.config.list_logical_devices("CPU")[:CPU_REPLICAS]]
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())


def is_multi_worker(strategy) -> bool:
    from shakegen.model.backend import tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints: always, except non-chief workers of a cluster."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def distributed_epoch(strategy, data, config: TrainConfig, epoch: int, skip: int, id_table=None):
    """The epoch's global batches, each replica fed its own slice of every global batch.

    Replica ``r`` of ``n`` takes rows ``r·b/n`` to ``(r+1)·b/n`` of each global batch of ``b``
    windows; a worker of a cluster fills only its own replicas. ``id_table``: the prepared
    ids' run ids (a fine-tuned run's), looked up batch by batch.
    """

    part = config.batch_size // strategy.num_replicas_in_sync
    for inputs, targets in epoch_windows(
        data, config.seq_length, config.batch_size, config.random_seed, epoch, skip, config.stateful, id_table
    ):

        def replica_slice(context, inputs=inputs, targets=targets):
            rows = slice(context.replica_id_in_sync_group * part, (context.replica_id_in_sync_group + 1) * part)
            return inputs[rows], targets[rows]

        yield strategy.experimental_distribute_values_from_function(replica_slice)
