"""Training entry points: the importable train(cfg) function, the Trainer and callbacks."""
