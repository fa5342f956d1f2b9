"""Export of the networks for the runtimes, one CLI step each.

    evp export onnx     trt_build.onnx_export: Ec, Ee, the identity MLP and one LSTM step,
                        dynamic batch, with their I/O specs in models.json
    evp export verify   trt_build.verify: ONNX Runtime against PyTorch, with tolerances

(TensorRT engine building, `evp export trt`, comes with the runtime issue.)
"""
