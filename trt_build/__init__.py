"""ONNX export and TensorRT engine building/verification, one CLI step each.

Filled in by the runtime issue: `evp export onnx`, `evp export trt`, `evp export verify`.
"""
