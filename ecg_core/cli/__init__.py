"""Command line: ``python -m ecg_core <command>`` or ``ecg-insight <command>``."""

from ecg_core.cli.app import main

__all__ = ["main"]
