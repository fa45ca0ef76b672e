"""What people read: the terminal table fitted to its width, the progress display of a running
suite, comparisons of two runs (matching, verdicts and their rendering, the GitHub summary), the
tuning and profile tables, the self-contained HTML pages with their SVG charts, and the PNG plots.

Imports everything below it (``run``, ``tuning``, ``stats``, ...); only ``cli`` imports it.
"""
