"""Option bundles shared by several commands, defined once."""

from __future__ import annotations

from typing import Callable

import click

from r42.config import MODES
from r42.scoring import SCORERS


def scorer_option(func: Callable) -> Callable:
    return click.option(
        "--scorer",
        type=click.Choice(["default", *SCORERS]),
        default=None,
        envvar="R42_SCORER",
        show_envvar=True,
        help="Which scorer estimates complexity and domain (default: the configured one).",
    )(func)


def mode_option(func: Callable) -> Callable:
    return click.option(
        "--mode",
        "-m",
        type=click.Choice(MODES),
        default=None,
        envvar="R42_MODE",
        show_envvar=True,
        help="Routing preference (default: auto).",
    )(func)
