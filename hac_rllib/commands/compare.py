"""``hac compare``: every method of Table 3 × seeds through Ray Tune, and a Table-2-style report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hac_rllib.commands.train import _parse_overrides


def compare(
    out: Path = typer.Option(..., "--out", help="Comparison directory (simulators, trials, report.md, report.csv, curve PNGs)."),
    algos: str = typer.Option(
        "all", "--algos", help="Comma-separated methods, or 'all': offline_sl,online_sl,a2c,ddpg,td3,ddpg_ra,hac,hac_no_bce,hac_no_hyper,hac_effect_explore."
    ),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Seeds per method (for the 95 % CIs)."),
    first_seed: int = typer.Option(0, help="Seeds are first_seed, first_seed+1, ..."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset directory; both simulators are trained from it once."),
    iterations: int = typer.Option(10, help="RLlib iterations per trial."),
    steps_per_iteration: int = typer.Option(100, help="Steps per iteration (one env step of all users + one update; Offline SL: one update)."),
    eval_sessions: int = typer.Option(100, help="Sessions per evaluation in the evaluation simulator."),
    eval_every: int = typer.Option(1, help="Evaluate every N iterations (must divide --iterations; the table uses the last)."),
    train_simulator: Optional[Path] = typer.Option(None, help="Training simulator (else trained on --data's train split)."),
    eval_simulator: Optional[Path] = typer.Option(None, help="Evaluation simulator (else trained on all of --data)."),
    sim_epochs: int = typer.Option(10, help="Epochs for simulators trained from --data."),
    num_envs: int = typer.Option(32, help="Parallel simulated users per trial."),
    cpus_per_trial: float = typer.Option(1.0, help="CPUs one trial reserves (fractions allowed)."),
    max_concurrent: int = typer.Option(0, help="Cap on trials running at once (0: as many as the CPUs allow)."),
    set_: List[str] = typer.Option([], "--set", help="Config values for every method, e.g. --set num_steps_sampled_before_learning_starts=640."),
    report_only: bool = typer.Option(False, "--report-only", help="Only rebuild the report of the comparison in --out."),
) -> None:
    """Compare methods (Table 3) over seeds with Ray Tune; writes report.md / report.csv / curve PNGs."""
    from hac_rllib.algorithms.methods import TABLE_ORDER
    from hac_rllib.compare import CompareError, CompareSpec, make_report, run_compare

    names = list(TABLE_ORDER) if algos.strip() == "all" else [a.strip() for a in algos.split(",") if a.strip()]
    try:
        if report_only:
            make_report(out, log=typer.echo)
            return
        spec = CompareSpec(
            out=str(out), algos=names, seeds=seeds, first_seed=first_seed,
            data=str(data) if data else None,
            train_simulator=str(train_simulator) if train_simulator else None,
            eval_simulator=str(eval_simulator) if eval_simulator else None,
            iterations=iterations, steps_per_iteration=steps_per_iteration, eval_sessions=eval_sessions, eval_every=eval_every,
            num_envs=num_envs, sim_epochs=sim_epochs, cpus_per_trial=cpus_per_trial, max_concurrent=max_concurrent,
            overrides=_parse_overrides(set_),
        )
        report = run_compare(spec, log=typer.echo)
    except CompareError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wall time {report['wall_s'] / 60:.1f} min; report: {report['report']}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
