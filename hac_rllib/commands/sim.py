"""``hac sim ...``: train the user simulator Ψ, inspect it, and score the reference policies in it.

Per dataset there are two simulators: ``--split train`` (the training environment) and ``--split all``
(the evaluation environment, Ψ fit on every record).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Train and inspect user simulators (response model Ψ + environment).", no_args_is_help=True)


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


@app.command("train")
def train(
    data: Path = typer.Option(..., "--data", help="Dataset directory (from `hac data prepare` / `hac data synthetic`)."),
    out: Path = typer.Option(..., "--out", help="Checkpoint file to write; the fidelity report goes to OUT.fidelity.json."),
    split: str = typer.Option("train", "--split", help="Records to fit: 'train' (training simulator) or 'all' (evaluation simulator)."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation and batch order."),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs (early stopping usually ends sooner)."),
    batch_size: int = typer.Option(512, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate."),
    weight_decay: float = typer.Option(1e-4, "--weight-decay"),
    patience: int = typer.Option(3, "--patience", help="Epochs without improvement before stopping."),
    monitor: str = typer.Option("log_loss", "--monitor", help="Early-stopping metric on the held-out records: log_loss or auc."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Most recent fraction of the records held out."),
    dim: int = typer.Option(32, "--dim", help="Embedding / attention width."),
    heads: int = typer.Option(2, "--heads", help="Attention heads (must divide --dim)."),
    dropout: float = typer.Option(0.1, "--dropout"),
    user_ids: bool = typer.Option(True, "--user-ids/--no-user-ids", help="Learn a per-user id embedding (besides features)."),
    item_ids: bool = typer.Option(True, "--item-ids/--no-item-ids", help="Learn a per-item id embedding (besides features)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads."),
    device: str = typer.Option("cpu", "--device"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing checkpoint."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Fit Ψ on a dataset split and write the simulator checkpoint plus its fidelity report."""
    from rich.console import Console

    from envs.data.errors import OutputExistsError
    from envs.response import TrainConfig, fidelity_tables, train_response_model, write_fidelity_report

    if out.exists() and not overwrite:
        raise OutputExistsError("checkpoint exists already; choose another --out or pass --overwrite", path=out)
    _threads(threads)
    console = Console()
    tc = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                     monitor=monitor, val_fraction=val_fraction, seed=seed)
    overrides = dict(dim=dim, n_heads=heads, dropout=dropout, use_user_ids=user_ids, use_item_ids=item_ids)
    try:
        tc.validate()
        t0 = time.perf_counter()
        sim = train_response_model(data, split, train_config=tc, model_overrides=overrides, device=device,
                                   progress=progress, log=console.print)
    except ValueError as e:  # bad settings (DataError, a ValueError too, reaches the root handler)
        from envs.data.errors import DataError

        if isinstance(e, DataError):
            raise
        raise DataError(str(e)) from None
    path = sim.save(out)
    report = write_fidelity_report(sim, out)
    for table in fidelity_tables(sim.info):
        console.print(table)
    tr = sim.info["training"]
    console.print(
        f"fit {tr['n_fit_records']:,} records in {time.perf_counter() - t0:.1f} s "
        f"({tr['epochs_run']} epochs, best {tr['best_epoch']})\nwrote {path}\nwrote {report}"
    )


@app.command("info")
def info(simulator: Path = typer.Argument(..., help="Simulator checkpoint.")) -> None:
    """Print what a checkpoint holds and its fidelity report."""
    from rich.console import Console

    from envs.response import fidelity_tables, load_response_model

    _threads(1)
    sim = load_response_model(simulator)
    c = sim.config
    console = Console()
    console.print(
        f"dataset {sim.dataset!r}, split {sim.split!r}: {sim.n_items:,} items (d={sim.item_features.shape[1]}), "
        f"{sim.n_users:,} users (d={sim.user_features.shape[1]}), k={sim.k}, history {sim.max_history}, "
        f"{len(sim.start_user_ids):,} start states\nΨ: dim {c.dim}, heads {c.n_heads}, item ids {c.use_item_ids}, "
        f"user ids {c.use_user_ids}, {sum(p.numel() for p in sim.model.parameters()):,} parameters"
    )
    for table in fidelity_tables(sim.info):
        console.print(table)


@app.command("evaluate-baselines")
def evaluate_baselines(
    simulator: Path = typer.Option(..., "--simulator", help="Simulator checkpoint (usually the --split all one)."),
    sessions: int = typer.Option(1000, "--sessions", help="Complete sessions per policy."),
    seed: int = typer.Option(0, "--seed"),
    num_envs: int = typer.Option(256, "--num-envs", help="Users simulated in parallel."),
    policies: str = typer.Option(
        "random,popular,oracle", "--policies",
        help="Comma-separated: random, popular, popular-unseen, oracle, oracle-unseen (-unseen: skip history items).",
    ),
    leave_cost: Optional[float] = typer.Option(None, "--leave-cost", help="Temper cost c of a bad slate (default k)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON."),
) -> None:
    """Total Reward, Depth and Reward Variance (95 % CIs) of the reference policies."""
    from rich.console import Console
    from rich.table import Table

    from envs.data.errors import DataError
    from envs.evaluation import evaluate_reference_policies

    _threads(1)
    names = tuple(p.strip() for p in policies.split(",") if p.strip())
    try:
        results = evaluate_reference_policies(simulator, sessions, seed, num_envs=num_envs, policies=names,
                                              env_kwargs={"leave_cost": leave_cost})
    except ValueError as e:
        if isinstance(e, DataError):
            raise
        raise DataError(str(e)) from None
    table = Table(title=f"reference policies in {simulator.name}: {sessions:,} sessions each, seed {seed}, 95% CIs")
    for col in ("policy", "Total Reward", "Depth", "Reward Variance", "r / slate"):
        table.add_column(col, justify="right", no_wrap=True)
    pm = lambda v, c: f"{v:.2f} ±{(c[1] - c[0]) / 2:.2f}"  # noqa: E731  (t-interval: symmetric)
    for name, s in results.items():
        lo, hi = s.reward_variance_ci  # chi-square interval: asymmetric
        table.add_row(name, pm(s.total_reward, s.total_reward_ci), pm(s.depth, s.depth_ci),
                      f"{s.reward_variance:.2f} ({lo:.2f}–{hi:.2f})", f"{s.avg_reward:.3f}")
    Console().print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"simulator": str(simulator.absolute()), "sessions": sessions, "seed": seed,
                   "results": {k: v.as_dict() for k, v in results.items()}}
        tmp = json_out.with_name(json_out.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n")
        tmp.replace(json_out)
