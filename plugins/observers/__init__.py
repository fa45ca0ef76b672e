"""Observers: plugins that describe the machine or watch cases finish."""
