"""Offline export: torch → ONNX → TensorRT plans (the ``export-engines`` command).

Imports ``muvi`` and ``engines``; nothing in ``muvi`` imports this package.
"""
