"""Simulator throughput: user-steps per second of ``HACSimulatorEnv.step`` at B = 32, 256, 1024.

Ψ is randomly initialised with the default sizes (dim 32, 2 heads, history 50, k 10) and synthetic
features of realistic widths, on a 3,700-item pool (ML-1M size) and a 100,000-item pool; speed does
not depend on the weights. Slates are drawn before timing, so the figure is the env's own cost
(response model, sampling, history update, leave model, validation, observation). Single process,
one torch thread; each configuration reports the best of ``--repeats`` timed windows (and the median)::

    python benchmarks/env_throughput.py --out /tmp/env_throughput.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch


def random_simulator(n_items: int, n_users: int = 6040, *, d_item: int = 20, d_user: int = 30, k: int = 10,
                     max_history: int = 50, n_starts: int = 50_000, n_heads: int = 2, seed: int = 0):
    """A SimulatorCheckpoint with random Ψ, features and start states of the given sizes."""
    from envs.response import ResponseModel, ResponseModelConfig, SimulatorCheckpoint

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    item_f = rng.normal(size=(n_items + 1, d_item)).astype(np.float32)
    user_f = rng.normal(size=(n_users + 1, d_user)).astype(np.float32)
    item_f[0] = 0
    user_f[0] = 0
    cfg = ResponseModelConfig(n_items=n_items, n_users=n_users, item_feature_dim=d_item, user_feature_dim=d_user,
                              max_history=max_history, n_heads=n_heads)
    model = ResponseModel(cfg, torch.from_numpy(item_f), torch.from_numpy(user_f)).eval().requires_grad_(False)
    lengths = rng.integers(0, max_history + 1, size=n_starts)
    hist = rng.integers(1, n_items + 1, size=(n_starts, max_history))
    hist[np.arange(max_history)[None, :] < (max_history - lengths)[:, None]] = 0
    return SimulatorCheckpoint(
        model=model, item_features=item_f, user_features=user_f,
        start_user_ids=rng.integers(1, n_users + 1, size=n_starts), start_histories=hist,
        k=k, max_history=max_history, dataset="benchmark", split="train",
        item_positive_counts=np.zeros(n_items + 1, dtype=np.int64),
    )


def measure(sim, batch_size: int, *, seconds: float = 1.0, repeats: int = 3, warmup: int = 5, seed: int = 0) -> dict:
    """Best (and median) of ``repeats`` timed windows: on a shared machine the best window is the
    closest to the env's own cost, as with ``timeit``."""
    from envs.simulator import HACSimulatorEnv
    from envs.spaces import sample_slates

    env = HACSimulatorEnv(sim, num_envs=batch_size, seed=seed)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    pool = [sample_slates(rng, sim.n_items, sim.k, batch_size) for _ in range(16)]
    for i in range(warmup):
        env.step(pool[i % 16])
    rates, total_steps = [], 0
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while True:
            env.step(pool[steps % 16])
            steps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds and steps >= 5:
                break
        rates.append(batch_size * steps / elapsed)
        total_steps += steps
    best = max(rates)
    return {
        "batch_size": batch_size,
        "n_items": sim.n_items,
        "user_steps_per_s": best,
        "user_steps_per_s_median": float(np.median(rates)),
        "ms_per_step": 1000 * batch_size / best,
        "steps": total_steps,
        "repeats": repeats,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256, 1024])
    ap.add_argument("--pools", type=int, nargs="+", default=[3_700, 100_000])
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per timed window")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows per configuration (best is reported)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heads", type=int, default=2, help="attention heads of Ψ (the default model has 2)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    records = []
    for n_items in args.pools:
        sim = random_simulator(n_items, n_heads=args.heads)
        for b in args.batch_sizes:
            rec = measure(sim, b, seconds=args.seconds, repeats=args.repeats)
            rec.update(n_heads=args.heads, torch_threads=args.threads, torch=torch.__version__, machine=platform.processor() or platform.machine())
            records.append(rec)
            print(f"n_items={n_items:>7,}  B={b:>5}  {rec['user_steps_per_s']:>10,.0f} user-steps/s best "
                  f"(median {rec['user_steps_per_s_median']:,.0f}; {rec['ms_per_step']:.2f} ms/step)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(records, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
