"""Option bundles shared by several commands, defined once."""

from __future__ import annotations

from typing import Callable

import click

from r42.modes import MODES
from r42.scoring import SCORERS


class SettingOption(click.Option):
    """An option for a setting that load_settings also reads from R42_<NAME>: --help shows the
    variable (envvar, show_envvar), but click does not read it, so the environment has one reader
    and one precedence (flags > R42_* > config.toml > defaults, in r42.config)."""

    def value_from_envvar(self, ctx: click.Context) -> None:
        return None


def scorer_option(func: Callable) -> Callable:
    return click.option(
        "--scorer",
        cls=SettingOption,
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
        cls=SettingOption,
        type=click.Choice(MODES),
        default=None,
        envvar="R42_MODE",
        show_envvar=True,
        help="Routing preference (default: auto).",
    )(func)


def privacy_options(func: Callable) -> Callable:
    """--allow-cloud / --redact: what a prompt with sensitive data may do (setting sensitive_policy)."""
    func = click.option(
        "--redact",
        "sensitive_policy",
        flag_value="redact",
        default=None,
        help="Let prompts with sensitive data go to cloud models with each value replaced by a placeholder "
        "(restored in the answer).",
    )(func)
    func = click.option(
        "--allow-cloud",
        "sensitive_policy",
        flag_value="allow",
        default=None,
        help="Let prompts with sensitive data go to cloud models as they are.",
    )(func)
    return func


def explain_option(func: Callable) -> Callable:
    return click.option("--explain", is_flag=True, help="Say on stderr why the prompt was kept local (or not).")(func)


def max_cost_option(func: Callable) -> Callable:
    """--max-cost, shared by rank and ask (the setting `max_cost`)."""
    return click.option(
        "--max-cost",
        type=click.FloatRange(min=0),
        default=None,
        cls=SettingOption,
        envvar="R42_MAX_COST",
        show_envvar=True,
        help="Highest estimated USD per call.",
    )(func)
