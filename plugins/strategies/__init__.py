"""Training strategies: the optimizer loops mfbench times, the reference among them."""
