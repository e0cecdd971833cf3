"""argparse help for every ``radgaze`` subcommand: each default said once, epilog lines kept.

``argparse.ArgumentDefaultsHelpFormatter`` appends "(default: X)" to every option, also where the help text
already says its default and where there is none ("(default: None)"). This formatter appends it only where
neither is the case. Qt-free and layer-free (any package may use it).
"""

from __future__ import annotations

import argparse


class DefaultsOnceFormatter(argparse.RawDescriptionHelpFormatter):
    """Help with each default said once: "(default: X)" is added only where the help text does not already
    say its default and there is one to say (not None, not a flag's False); epilogs keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default is None
            or default is False
            or default == argparse.SUPPRESS
            or (isinstance(default, list | tuple) and not default)  # an empty repeatable option
            or isinstance(action, argparse._HelpAction)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"
