"""The methods this library trains, by CLI name: one place that lists them (issue: Table 3 presets)."""

from __future__ import annotations

from typing import Callable, Dict


def _hac():
    from hac_rllib.algorithms.hac import HACConfig

    return HACConfig()


ALGORITHMS: Dict[str, Callable[[], object]] = {"hac": _hac}


def get_algorithm_config(name: str):
    """A fresh AlgorithmConfig for the method ``name`` (see ``ALGORITHMS``)."""
    try:
        return ALGORITHMS[name]()
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}") from None
