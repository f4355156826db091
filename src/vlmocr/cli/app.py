"""The `vlmocr` console script. Each command group lives in its own small module."""

from __future__ import annotations

import importlib

import typer

import vlmocr
from vlmocr.cli._common import setup_logging

app = typer.Typer(
    name="vlmocr",
    help="Turn document images into JSON with vision-language models: "
    "data, training, export, serving, extraction and evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules under vlmocr.cli that add commands through `register(app)`.
COMMAND_MODULES = ("data", "model", "train", "export", "serve", "extract", "evaluate", "demo")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlmocr {vlmocr.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    setup_logging(verbose)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"vlmocr.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"vlmocr.cli.{_name}":
            raise
        continue
    _module.register(app)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
