"""Quality metrics: how a trained model is judged.

:mod:`mfbench.metrics.ranking` ranks the full item catalog for each user and scores the
top of that ranking (recall, precision, NDCG, MAP, MRR, hit rate, catalog coverage).
"""
