"""Executors that run cases elsewhere than this machine's processes (Dask)."""
