"""Channel pruning of real PyTorch CNNs with the selectors of :mod:`theory` (in progress).

So far: :mod:`torchbridge.gram` (the exact channel Gram matrix of a consumer convolution or
linear layer, accumulated batch by batch in float64) and :mod:`torchbridge.counting` (FLOPs,
MACs and parameters by torch's flop counter).
"""
