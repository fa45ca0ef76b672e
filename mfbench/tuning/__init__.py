"""Tuning: budgeted searches over each strategy's declared search space on the validation split
(Optuna studies), stored so that they resume and can be shared, and read back into tuned cases
for ``mfbench run --tuned``.

Imports ``run`` and the folders below it; Optuna only where a study is made or read.
"""
