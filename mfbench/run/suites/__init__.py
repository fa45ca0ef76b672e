"""mfbench's built-in suite files (see mfbench/suite.py)."""
