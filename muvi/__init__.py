"""muvi: music for the clips an editor selected, as stems that land on the cuts.

The library modules (time, media, analysis, model, music, pipeline, training, evaluation)
import torch/numpy/av but never grpc, onnx or tensorrt; ``muvi.cli`` is the composition root.
"""

__version__ = "0.1.0"
