"""The methods this library trains, by CLI name: one place that lists them (issue: Table 3 presets).

Every name maps to a config factory; the presets themselves (phases, module parts, defaults) are in
``hac_rllib.algorithms.methods``.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict

from hac_rllib.algorithms.methods import METHODS, make_config

ALGORITHMS: Dict[str, Callable[[], object]] = {name: functools.partial(make_config, name) for name in METHODS}


def get_algorithm_config(name: str):
    """A fresh AlgorithmConfig for the method ``name`` (see ``ALGORITHMS``)."""
    try:
        return ALGORITHMS[name]()
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}") from None
