"""Export of the networks for the runtimes, one CLI step each.

evp export onnx     trt_build.onnx_export: Ec, Ee, the identity MLP and one LSTM step,
                    dynamic batch, with their I/O specs in models.json
evp export trt      trt_build.tensorrt_engine: TensorRT 10 engines (FP16, batch 1-64,
                    timing cache, keyed by GPU and TensorRT version); untested here
evp export verify   trt_build.verify: ONNX Runtime against PyTorch, with tolerances
"""
