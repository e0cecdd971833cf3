"""The help formatter every subcommand uses: each default said once, and only where there is one."""

from __future__ import annotations

import argparse

from radgaze.capture.base.helpformat import DefaultsOnceFormatter


def _help(**kwargs) -> str:
    p = argparse.ArgumentParser(prog="x", formatter_class=DefaultsOnceFormatter)
    p.add_argument("--opt", help="the option", **kwargs)
    return " ".join(p.format_help().split())


def test_a_zero_default_is_said_and_absent_ones_are_not():
    assert "the option (default: 0)" in _help(type=int, default=0)
    assert "(default" not in _help(default=None)
    assert "(default" not in _help(action="append", default=[])
    assert "(default" not in _help(action="store_true")


def test_a_default_the_help_already_says_is_not_repeated():
    p = argparse.ArgumentParser(prog="x", formatter_class=DefaultsOnceFormatter)
    p.add_argument("--rate", type=float, default=250.0, help="rate in Hz (default: the tracker's)")
    out = " ".join(p.format_help().split())
    assert out.count("default") == 1 and "250" not in out
