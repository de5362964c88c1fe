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
