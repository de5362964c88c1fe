"""Offline SL's data: the dataset's logged training lists, read and batched with Ray Data.

``train.parquet`` is read with ``ray.data.read_parquet`` and turned into the columns the learner's
supervision phase reads (``user_id``, ``user_features``, ``history`` left-padded to the simulator's
length, ``slate``, ``feedback``) by a ``map_batches`` step, so the same code streams a laptop's
synthetic set or a cluster-sized log: reading and converting run as Ray tasks, the converted blocks
live in Ray's object store (spilling to disk if they must), and each epoch is a fresh global
``random_shuffle``.

Under Tune a trial's processes sit in a placement group, and Ray Data tasks would otherwise wait for
CPUs outside it (forever, on a small machine whose CPUs all belong to trials). So the offline
methods reserve one extra bundle (``HACConfig.offline_data_cpus``, see ``HAC.default_resource_request``)
and their Ray Data tasks are scheduled into the trial's own placement group. Ray 2.60's Parquet
reader lists files in a task that always asks for 1 CPU, which cannot fit a fractional bundle: with
a data bundle under 1 CPU (the default 0.5, so two trials fit on two CPUs) the trial process reads
the file with pyarrow and hands the table to Ray Data (``ray.data.from_arrow``); conversion and
shuffling still run as Ray tasks. With ``offline_data_cpus >= 1``, or outside Tune, the read itself
is ``ray.data.read_parquet``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterator, Optional

import numpy as np

from hac_rllib import transitions as T

logger = logging.getLogger(__name__)
COLUMNS = (T.USER_ID, T.USER_FEATURES, T.HISTORY, T.SLATE, T.FEEDBACK)


class RecordsToColumns:
    """``map_batches`` function: a pyarrow batch of logged lists -> the learner's numpy columns."""

    def __init__(self, user_features: np.ndarray, max_history: int):
        self.user_features = np.asarray(user_features, dtype=np.float32)
        self.max_history = int(max_history)

    def __call__(self, table) -> Dict[str, np.ndarray]:
        from envs.data.format import ListRecords

        records = ListRecords.from_arrow(table)
        return {
            T.USER_ID: records.user_id,
            T.USER_FEATURES: self.user_features[records.user_id],
            T.HISTORY: records.padded_history(self.max_history),
            T.SLATE: records.slate,
            T.FEEDBACK: records.feedback,
        }


def dataset_dir_for(explicit: Optional[str], simulator_path: Optional[str]) -> Path:
    """The dataset directory: given explicitly, or the one the training simulator was fit on."""
    if explicit:
        path = Path(explicit)
    else:
        if not simulator_path:
            raise ValueError("offline methods need config.offline_data (a dataset directory) or a training simulator to find it from")
        from envs.response import load_response_model

        info = load_response_model(simulator_path).info
        if not info.get("data_dir"):
            raise ValueError(f"the simulator {simulator_path} does not record its dataset directory: set config.offline_data")
        path = Path(info["data_dir"])
    if not (path / "train.parquet").is_file():
        raise ValueError(f"no train.parquet in {path}: offline methods read the dataset's logged training lists")
    return path


def _pin_to_current_placement_group() -> bool:
    """Inside a Tune trial, schedule Ray Data's tasks into the trial's placement group (its data
    bundle); True when there is one."""
    import ray
    from ray.data import DataContext
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = ray.util.get_current_placement_group()
    if pg is not None:
        DataContext.get_current().scheduling_strategy = PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)
    return pg is not None


def read_records(path: Path, num_cpus: float, in_placement_group: bool):
    """The Parquet records as a Ray Dataset (see the module docstring for the two read paths)."""
    import ray.data

    if in_placement_group and num_cpus < 1:
        import pyarrow.parquet as pq

        return ray.data.from_arrow(pq.read_table(path))
    return ray.data.read_parquet(str(path), num_cpus=num_cpus)


class LoggedRecordBatches:
    """Endless shuffled minibatches of the logged training lists (epoch after epoch)."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        user_features: np.ndarray,
        max_history: int,
        seed: int = 0,
        num_cpus: float = 0.5,
        split: str = "train",
    ):
        import ray.data

        in_pg = _pin_to_current_placement_group()
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        path = Path(data_dir) / f"{split}.parquet"
        self.seed = int(seed)
        self.num_cpus = float(num_cpus)
        ds = read_records(path, self.num_cpus, in_pg)
        ds = ds.map_batches(RecordsToColumns(user_features, max_history), batch_format="pyarrow", num_cpus=self.num_cpus)
        self._dataset = ds.materialize()
        self.num_records = int(self._dataset.count())
        if self.num_records == 0:
            raise ValueError(f"no records in {path}")
        self.epoch = 0
        self._batches: Optional[Iterator[Dict[str, np.ndarray]]] = None
        self._batch_size: Optional[int] = None
        logger.info("offline data: %d logged lists from %s", self.num_records, path)

    def _epoch_batches(self, batch_size: int) -> Iterator[Dict[str, np.ndarray]]:
        shuffled = self._dataset.random_shuffle(seed=self.seed * 100_003 + self.epoch, num_cpus=self.num_cpus)
        return iter(shuffled.iter_batches(batch_size=batch_size, batch_format="numpy", drop_last=True))

    def next_batch(self, batch_size: int) -> Dict[str, np.ndarray]:
        """``batch_size`` records; a new epoch (freshly shuffled) starts when the current one runs out."""
        batch_size = min(int(batch_size), self.num_records)
        if self._batches is None or batch_size != self._batch_size:
            self._batches, self._batch_size = self._epoch_batches(batch_size), batch_size
        try:
            return next(self._batches)
        except StopIteration:
            self.epoch += 1
            self._batches = self._epoch_batches(batch_size)
            return next(self._batches)

    def close(self) -> None:
        """Stop the running epoch's iterator (before Ray shuts down, not at interpreter exit)."""
        if self._batches is not None:
            close = getattr(self._batches, "close", None)
            if close is not None:
                close()
            self._batches = None
