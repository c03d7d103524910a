"""Channel pruning of real PyTorch CNNs with the selectors of :mod:`theory` (in progress)."""
