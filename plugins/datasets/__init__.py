"""Datasets: where ratings come from (planted, downloaded, or read from a file)."""
