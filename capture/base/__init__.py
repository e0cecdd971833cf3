"""The bottom layer of radgaze: the record types (``records``), the exceptions (``errors``), the one report
format every benchmark prints (``report``) and the argparse help of every subcommand (``helpformat``).

Every package may import it (``model/`` imports nothing else of capture); it imports nothing of radgaze.
"""
