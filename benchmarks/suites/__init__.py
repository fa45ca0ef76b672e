"""mfbench's built-in suite files, installed as ``mfbench.suites`` (see mfbench/suite.py)."""
