"""Models: what is trained (the dot and biased layouts every hand-written strategy knows)."""
