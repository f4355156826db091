"""Shared CLI plumbing: console, logging, and turning library errors into exit codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from vlmocr.errors import VlmocrError

console = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])

#: Exit code for a failure vlmocr detected and explained (bad input, failed check ...).
EXIT_FAILURE = 1
#: Exit code for invalid usage / configuration.
EXIT_USAGE = 2


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
        force=True,
    )
    for noisy in ("httpx", "httpcore", "PIL", "matplotlib", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def handle_errors(func: F) -> F:
    """Print a VlmocrError as one clear line and exit non-zero instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from vlmocr.errors import ConfigError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(EXIT_USAGE) from exc
        except VlmocrError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(EXIT_FAILURE) from exc

    return wrapper  # type: ignore[return-value]
