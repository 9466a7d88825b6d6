"""Runtime backends behind :class:`muvi.backend.Backend`: ONNX Runtime (CPU/CUDA) and TensorRT.

Imports ``muvi``; ``muvi`` itself never imports this package (only ``muvi.cli`` does, lazily).
"""
