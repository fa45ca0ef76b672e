"""Built-in split protocols: random, per user, temporal, leave-last-out."""
