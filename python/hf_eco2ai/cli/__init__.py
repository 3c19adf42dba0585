"""The ``hf-eco2ai`` command line: one module per group of subcommands, ``main`` dispatches."""

from hf_eco2ai.cli.main import main

__all__ = ["main"]
