"""Stable ids for the simulators: gymnasium ``hac/<Dataset>-v0`` and an RLlib env-registry helper.

gymnasium (importing :mod:`envs.simulator` or this module registers them;
``gym.make("envs.registration:hac/ML1M-v0", ...)`` imports it for you)::

    env  = gym.make("hac/ML1M-v0", simulator="sims/ml1m-all.pt")              # one user, gym.Env
    venv = gym.make_vec("hac/ML1M-v0", num_envs=32, vectorization_mode="vector_entry_point",
                        simulator="sims/ml1m-all.pt")                         # HACSimulatorEnv

Every ``hac/<Dataset>-v0`` id checks that the checkpoint was trained on that dataset;
``hac/Simulator-v0`` takes any checkpoint. RLlib::

    register_rllib_env()   # "hac-simulator"
    config.environment("hac-simulator", env_config={"simulator": path, "seed": 0})
          .env_runners(num_envs_per_env_runner=32, gym_env_vectorize_mode="vector_entry_point")
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym

#: gymnasium id name -> dataset name (as written in the dataset's meta.json, compared loosely)
DATASET_IDS: dict[str, str] = {
    "Synthetic": "synthetic",
    "ML100K": "ml100k",
    "ML1M": "ml1m",
    "MLLatestSmall": "ml-latest-small",
    "KuaiRand1K": "kuairand-1k",
    "KuaiRandPure": "kuairand-pure",
    "RL4RS": "rl4rs",
}
GENERIC_ID = "hac/Simulator-v0"
RLLIB_ENV_NAME = "hac-simulator"
_SINGLE = "envs.simulator:HACSimulatorSingleEnv"
_VECTOR = "envs.simulator:HACSimulatorEnv"


def gym_id(dataset_id_name: str) -> str:
    return f"hac/{dataset_id_name}-v0"


def register_gymnasium_envs() -> list[str]:
    """Register (idempotently) every ``hac/...`` id; returns them."""
    ids = []
    for name, dataset in [(None, None)] + list(DATASET_IDS.items()):
        env_id = GENERIC_ID if name is None else gym_id(name)
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point=_SINGLE,
                vector_entry_point=_VECTOR,
                kwargs={} if dataset is None else {"dataset": dataset},
            )
        ids.append(env_id)
    return ids


# RLlib gives each EnvRunner (worker_index) and sub-env (vector_index) its own context; offsetting the
# seed by them keeps parallel runners from simulating identical users.
_WORKER_SEED_STRIDE = 1_000_003


def make_rllib_env(config: Mapping[str, Any]):
    """RLlib env creator: ``config | {"num_envs": N}`` -> :class:`HACSimulatorEnv`, without -> one-user env."""
    from envs.simulator import HACSimulatorEnv, HACSimulatorSingleEnv

    kwargs = dict(config)
    num_envs = kwargs.pop("num_envs", None)
    if "simulator" not in kwargs:
        raise ValueError('env_config needs "simulator": the path of a checkpoint written by `hac sim train`')
    if kwargs.get("seed") is not None:
        worker = int(getattr(config, "worker_index", 0) or 0)
        vector = int(getattr(config, "vector_index", 0) or 0)
        kwargs["seed"] = int(kwargs["seed"]) + _WORKER_SEED_STRIDE * worker + vector
    if num_envs is None:
        return HACSimulatorSingleEnv(**kwargs)
    return HACSimulatorEnv(num_envs=int(num_envs), **kwargs)


def register_rllib_env(name: str = RLLIB_ENV_NAME) -> str:
    """Register :func:`make_rllib_env` in RLlib's env registry under ``name``; returns the name."""
    from ray.tune.registry import register_env

    register_env(name, make_rllib_env)
    return name


register_gymnasium_envs()
