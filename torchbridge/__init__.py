"""Channel pruning of real PyTorch CNNs with the selectors of :mod:`theory`.

- :mod:`torchbridge.gram`: the exact channel Gram matrix of a consumer convolution or linear
  layer, accumulated batch by batch in float64 from its input activations.
- :mod:`torchbridge.surgery`: physical removal of channels, weights folded into the consumer.
- :mod:`torchbridge.chains`: producer -> consumer chains of Sequential CNNs and of torchvision
  ResNet / MobileNetV2 and timm EfficientNet-Lite blocks, pruned from the input side.
- :mod:`torchbridge.counting`: FLOPs, MACs and parameters; :mod:`torchbridge.efficientnet`:
  EfficientNet-Lite0 with real ImageNet weights and real photos, offline.
"""
