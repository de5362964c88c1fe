"""``hac tune`` (a Ray Tune grid search over Appendix A.3 / the sensitivity studies) and
``hac report`` (the paper's sensitivity figures from a sweep directory)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hac_rllib.commands.train import _parse_overrides


def tune(
    out: Path = typer.Option(..., "--out", help="Sweep directory (sweep.json, simulators, trials, summary.csv)."),
    algo: str = typer.Option("hac", "--algo", help="Method to sweep (its Appendix A.3 grid; unknown methods get the common RL grid)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Dataset directory; both simulators are trained from it once, before the sweep."),
    grid: str = typer.Option("small", "--grid", help="appendix (full A.3 product) | sensitivity (one value at a time) | small (minutes on 2 CPUs)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per configuration (for the 95 % CIs)."),
    first_seed: int = typer.Option(0, help="Seeds are first_seed, first_seed+1, ..."),
    iterations: Optional[int] = typer.Option(None, help="RLlib iterations per trial [default: the grid's, e.g. 500 for appendix, 6 for small]."),
    steps_per_iteration: Optional[int] = typer.Option(None, help="HAC steps per iteration [default: the grid's]."),
    eval_sessions: Optional[int] = typer.Option(None, help="Sessions per evaluation [default: the grid's]."),
    eval_every: int = typer.Option(1, help="Evaluate every N iterations (the score is the last evaluation)."),
    train_simulator: Optional[Path] = typer.Option(None, help="Training simulator (else trained on --data's train split)."),
    eval_simulator: Optional[Path] = typer.Option(None, help="Evaluation simulator (else trained on all of --data)."),
    sim_epochs: int = typer.Option(10, help="Epochs for simulators trained from --data."),
    num_envs: int = typer.Option(32, help="Parallel simulated users per EnvRunner."),
    num_env_runners: int = typer.Option(0, help="Remote EnvRunners per trial (0: sample in the trial's own process)."),
    cpus_per_trial: Optional[float] = typer.Option(None, help="CPUs of a trial's main process + learner [default: 1 with 0 EnvRunners, else 0.5]."),
    cpus_per_env_runner: float = typer.Option(0.5, help="CPUs per remote EnvRunner."),
    max_concurrent: int = typer.Option(0, help="Cap on trials running at once (0: as many as resources allow)."),
    max_failures: int = typer.Option(0, help="Retries of a failed trial from its last checkpoint (e.g. on preemptible nodes)."),
    checkpoint_every: int = typer.Option(5, help="Checkpoint every N iterations (what --resume continues from)."),
    store_buffer: bool = typer.Option(False, help="Keep replay buffers in checkpoints (exact resume, bigger files)."),
    storage: Optional[str] = typer.Option(None, help="Tune storage for trials: s3://, gs:// or a shared path (needed on multi-node clusters)."),
    set_: List[str] = typer.Option([], "--set", help="Config values for every trial, e.g. --set gamma=0.9 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the sweep in --out with its saved settings (other options are ignored): finished trials are kept."),
    retry_errored: bool = typer.Option(True, help="With --resume: retry errored trials from their last checkpoint."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid and the resources per trial, run nothing."),
) -> None:
    """Grid-search a method with Ray Tune; best configuration by final evaluation Total Reward."""
    from tuning import analysis
    from tuning.spaces import get_grid
    from tuning.sweep import SweepError, SweepSpec, plan, resolve_run, run_sweep

    console = analysis.make_console()
    spec = SweepSpec(
        out=str(out), algo=algo, grid=grid, seeds=seeds, first_seed=first_seed,
        data=str(data) if data else None,
        train_simulator=str(train_simulator) if train_simulator else None,
        eval_simulator=str(eval_simulator) if eval_simulator else None,
        iterations=iterations, steps_per_iteration=steps_per_iteration, eval_sessions=eval_sessions, eval_every=eval_every,
        num_envs=num_envs, num_env_runners=num_env_runners, cpus_per_trial=cpus_per_trial, cpus_per_env_runner=cpus_per_env_runner,
        checkpoint_every=checkpoint_every, store_buffer=store_buffer, max_concurrent=max_concurrent, max_failures=max_failures, storage=storage,
        sim_epochs=sim_epochs, overrides=_parse_overrides(set_),
    )
    try:
        if dry_run:
            g = get_grid(grid, algo)
            run = resolve_run(spec, g)
            _, points, cpus = plan(spec, g, run)
            typer.echo(f"{g.description}\n{len(points)} configurations x {seeds} seeds = {len(points) * seeds} trials of "
                       f"{run.iterations} iterations x {run.steps_per_iteration} steps; {cpus:g} CPU per trial")
            for p in points:
                typer.echo(f"  {p.index:>4}  " + "  ".join(f"{k}={analysis.fmt_value(v)}" for k, v in p.values.items()) + f"   [{', '.join(p.studies)}]")
            return
        outcome = run_sweep(spec, resume=resume, retry_errored=retry_errored, log=typer.echo)
    except SweepError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    keys = outcome.manifest["keys"]
    analysis.print_summary(outcome.points, keys, title=f"sweep {outcome.sweep_dir} ({outcome.manifest.get('grid')}, {outcome.manifest.get('algo')})", console=console)
    for t in outcome.errored:
        console.print(f"[red]failed[/red] {t.name}: {t.error}  ({t.path / 'error.txt'})")
    best = outcome.best
    if best is not None:
        console.print(f"[bold]best[/bold] (mean final {analysis.METRIC} over {best.n} seeds): point {best.index} "
                      + " ".join(f"{k}={analysis.fmt_value(v)}" for k, v in best.values.items())
                      + f" -> {analysis.fmt_ci(best.mean[analysis.METRIC], best.ci95[analysis.METRIC])}")
    console.print(f"wrote {outcome.sweep_dir / 'summary.csv'}, trials.csv, best.json in {outcome.wall_s:.0f} s; "
                  f"figures: hac report {outcome.sweep_dir}; curves: tensorboard --logdir {outcome.manifest.get('experiment_path', outcome.sweep_dir)}")
    if outcome.unfinished:
        console.print(f"[yellow]{outcome.unfinished} trial(s) did not finish (interrupted?): continue with "
                      f"hac tune --out {outcome.sweep_dir} --resume[/yellow]")
        raise typer.Exit(130)
    if best is None:
        raise typer.Exit(1)


def report(
    sweep_dir: Path = typer.Argument(..., help="A directory written by `hac tune` (or any Tune experiment of these methods)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where the PNGs and report.json go [default: SWEEP_DIR/report]."),
) -> None:
    """Sensitivity figures (like the paper's Figures 5, 7, 9, 10): mean and 95 % CI over seeds."""
    from tuning import analysis
    from tuning.report import make_report

    if not sweep_dir.is_dir():
        typer.secho(f"error: {sweep_dir} is not a directory", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    console = analysis.make_console()
    rep = make_report(sweep_dir, out)
    outcome = rep["outcome"]
    analysis.print_summary(outcome.points, outcome.manifest["keys"], title=f"sweep {sweep_dir}", console=console)
    if not rep["figures"]:
        console.print("[yellow]no figure: no hyperparameter has two or more finished values[/yellow]")
    for fig in rep["figures"]:
        console.print(f"{fig['png']}")
        for p in fig["points"]:
            tr = p["total_reward"]
            console.print(f"    {fig['key']}={analysis.fmt_value(p['value'])}: total reward {analysis.fmt_ci(tr['mean'], tr['ci95'])} (n={p['n']})")
    console.print(f"numbers: {Path(rep['figures'][0]['png']).parent / 'report.json' if rep['figures'] else '-'}")


def register(app: typer.Typer) -> None:
    app.command("tune")(tune)
    app.command("report")(report)
