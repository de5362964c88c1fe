"""The ``hac`` command line: one root app, one sub-app module per area under ``hac_rllib.commands``.

Sub-apps import their heavy dependencies (torch, Ray) inside the commands, so ``hac --help`` and the
data commands start fast.
"""

from __future__ import annotations

import typer

from hac_rllib.commands import compare as compare_commands
from hac_rllib.commands import data as data_commands
from hac_rllib.commands import sim as sim_commands
from hac_rllib.commands import train as train_commands
from hac_rllib.commands import tune as tune_commands

app = typer.Typer(
    name="hac",
    help="Hyper-Actor Critic list-wise recommenders on Ray RLlib, with learned user simulators.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data_commands.app, name="data")
app.add_typer(sim_commands.app, name="sim")
train_commands.register(app)
tune_commands.register(app)
compare_commands.register(app)


def main() -> None:
    """Console-script entry point: known user errors print one clear line instead of a traceback."""
    from envs.data.errors import DataError
    from hac_rllib.training import TrainingError

    try:
        app()
    except (DataError, TrainingError) as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
