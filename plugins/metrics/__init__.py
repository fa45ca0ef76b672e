"""Built-in quality metrics: rating prediction (RMSE, MAE) and top-N ranking over the full catalog."""
