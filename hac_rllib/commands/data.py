"""``hac data ...``: download, prepare and inspect datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Download, prepare and inspect datasets.", no_args_is_help=True)


@app.command("synthetic")
def synthetic(
    out: Path = typer.Option(..., "--out", help="Dataset directory to create."),
    n_users: int = typer.Option(1000, help="Number of users."),
    n_items: int = typer.Option(2000, help="Number of items."),
    n_records: int = typer.Option(100_000, help="Number of logged lists."),
    seed: int = typer.Option(0, help="Random seed (the dataset is deterministic given it)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output directory."),
) -> None:
    """Generate the synthetic dataset (the same as `hac data prepare synthetic`, with its sizes)."""
    from envs.data.synthetic import SyntheticParams, write_synthetic

    path = write_synthetic(out, SyntheticParams(n_users=n_users, n_items=n_items, n_records=n_records, seed=seed), overwrite=overwrite)
    typer.echo(f"wrote {path}")


@app.command("download")
def download(
    name: str = typer.Argument(..., help="Dataset: ml1m, ml100k, ml-latest-small, kuairand-1k, kuairand-pure, rl4rs."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache folder (default $XDG_CACHE_HOME/hac-rllib or ~/.cache/hac-rllib)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Download a dataset, verify its size and checksum, and extract only the files it needs."""
    from envs.data.download import download as do_download
    from envs.data.registry import get_entry

    entry = get_entry(name)
    if not entry.redistributable:
        typer.secho(f"licence: {entry.licence}", fg=typer.colors.YELLOW, err=True)
    result = do_download(entry, cache_dir, progress=progress)
    state = "already downloaded and verified" if result.cached else "downloaded and verified"
    typer.echo(f"{entry.title}: {state} in {result.directory}")
    for f in result.files:
        typer.echo(f"  {f.relative_to(result.directory)}")


@app.command("prepare")
def prepare(
    name: str = typer.Argument(..., help="Dataset: ml1m, ml100k, ml-latest-small, kuairand-1k, kuairand-pure, rl4rs, synthetic."),
    out: Path = typer.Option(..., "--out", help="Dataset directory to create (must not exist unless --overwrite)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Folder with the dataset's files (offline); default: the download cache."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache folder used by `hac data download`."),
    k: Optional[int] = typer.Option(None, "--k", help="Slate size (default 10; RL4RS: its logged 9)."),
    max_history: int = typer.Option(50, "--max-history", help="Most recent positives kept as a list's history."),
    train_fraction: float = typer.Option(0.8, "--train-fraction", help="Share of records, oldest first, that train."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output directory (atomically)."),
    include_random_log: bool = typer.Option(False, "--include-random-log", help="KuaiRand: add the randomly-exposed log."),
    core: Optional[int] = typer.Option(None, "--core", help="KuaiRand: drop videos with fewer rows than this (default 50; 0 = off)."),
) -> None:
    """Build a dataset directory (Parquet + meta.json) from downloaded or local files."""
    import time
    import warnings

    from envs.data.prepare import DataWarning, prepare as do_prepare

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        path = do_prepare(
            name, out, source=source, cache_dir=cache_dir, k=k, max_history=max_history, train_fraction=train_fraction,
            overwrite=overwrite, include_random_log=include_random_log, core=core,
        )  # fmt: skip
    for w in caught:
        if issubclass(w.category, DataWarning):
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
    from envs.data.format import load_meta

    meta = load_meta(path)
    typer.echo(
        f"wrote {path} in {time.perf_counter() - start:.1f}s: {meta['n_train']:,} train + {meta['n_test']:,} test lists of {meta['k']}, "
        f"{meta['n_items']:,} items, {meta['n_users']:,} users"
    )


@app.command("info")
def info(
    data_dir: Path = typer.Argument(..., help="A dataset directory made by `hac data prepare`."),
) -> None:
    """Counts and statistics of a dataset directory: positive rate, history lengths, split dates."""
    from envs.data.info import render_info

    summary = render_info(data_dir)
    if summary["problems"]:
        raise typer.Exit(1)
