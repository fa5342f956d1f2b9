"""Inference backends: one interface, chosen by ``--backend auto|torch|onnx``."""
