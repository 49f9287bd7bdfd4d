"""Every option of a command line has help text: one check for the three CLIs."""

from __future__ import annotations

import argparse


def undocumented(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> list[str]:
    """Options and arguments of `parser` and all its sub-commands (but those in `skip`)
    that have no help text."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                if name not in skip:
                    missing += [f"{name} {m}" for m in undocumented(child, skip)]
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append("/".join(action.option_strings) or action.dest)
    return missing
