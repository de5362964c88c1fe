"""Shared fixtures: the real sample data in ../shared/data, and small synthetic datasets built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HAC_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data files beside the project (never copied into it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A small synthetic dataset directory (400 users, 600 items, 16,000 lists), generated once per session."""
    from envs.data.synthetic import SyntheticParams, write_synthetic

    out = tmp_path_factory.mktemp("data") / "synthetic-small"
    return write_synthetic(out, SyntheticParams(n_users=400, n_items=600, n_records=16_000, seed=0))


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny nets on 2 cores are much faster (and steadier) on one thread."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (ray.init costs ~5 s and ~1 GB)."""
    import ray

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def small_simulators(small_synthetic, tmp_path_factory) -> tuple[str, str]:
    """(training simulator, evaluation simulator) fit on the small synthetic dataset, once per session."""
    from envs.response import TrainConfig, train_response_model

    out = tmp_path_factory.mktemp("simulators")
    paths = []
    for split in ("train", "all"):
        ckpt = train_response_model(small_synthetic, split, train_config=TrainConfig(epochs=3, seed=0))
        paths.append(str(ckpt.save(out / f"{split}.pt")))
    return paths[0], paths[1]
