"""Replay captured CUDA graphs instead of launching a small network's kernels one by one.

A tick of the live server runs the same networks on batches of the same few sizes over and
over; at these sizes the GPU time is mostly kernel-launch overhead, which a CUDA graph
removes. ``GraphedModule`` pads each batch up to a bucket (1, 2, 4, ... 64), captures one
graph per bucket on first use (after warm-up runs on a side stream, as PyTorch's CUDA
graph notes require) and replays it, copying inputs into and outputs out of the graph's
static tensors. Off CUDA it runs the module eagerly with the same padding and slicing, so
that logic is tested on the CPU.
"""

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from engine.errors import EngineError

if TYPE_CHECKING:
    import torch

    #: What a module returns: one tensor or several.
    Outputs = torch.Tensor | tuple[torch.Tensor, ...]

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
WARMUP_RUNS = 3


def bucket(batch: int) -> int:
    for size in BUCKETS:
        if batch <= size:
            return size
    raise EngineError(f"a batch of {batch} is more than the {BUCKETS[-1]} graphs are captured for")


class GraphedModule:
    """``module(*inputs)`` -> tuple of outputs, with the batch on ``input_axes[i]`` of each
    input and ``output_axes[j]`` of each output."""

    def __init__(
        self,
        module: Callable[..., "Outputs"],
        input_axes: Sequence[int],
        output_axes: Sequence[int],
        capture: bool,
    ) -> None:
        import torch

        self._torch = torch
        self._module = module
        self._in_axes, self._out_axes = tuple(input_axes), tuple(output_axes)
        self._capture = capture
        # padded input shapes -> (graph, ins, outs)
        self._graphs: dict[
            tuple[tuple[int, ...], ...],
            tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
        ] = {}
        self._pool = torch.cuda.graph_pool_handle() if capture else None  # shared by buckets

    def __call__(self, *inputs: "torch.Tensor") -> tuple["torch.Tensor", ...]:
        axis0 = self._in_axes[0]
        batch = inputs[0].shape[axis0]
        size = bucket(batch)
        padded = tuple(
            self._pad(x, axis, size) for x, axis in zip(inputs, self._in_axes, strict=True)
        )
        outputs = self._replay(padded) if self._capture else self._eager(padded)
        # Copies: a graph's outputs are overwritten by its next replay.
        return tuple(
            out.narrow(axis, 0, batch).clone()
            for out, axis in zip(outputs, self._out_axes, strict=True)
        )

    def _pad(self, x: "torch.Tensor", axis: int, size: int) -> "torch.Tensor":
        missing = size - x.shape[axis]
        if not missing:
            return x
        shape = list(x.shape)
        shape[axis] = missing
        return self._torch.cat([x, x.new_zeros(shape)], dim=axis)

    def _eager(self, inputs: tuple["torch.Tensor", ...]) -> tuple["torch.Tensor", ...]:
        out = self._module(*inputs)
        return out if isinstance(out, tuple) else (out,)

    def _replay(self, inputs: tuple["torch.Tensor", ...]) -> tuple["torch.Tensor", ...]:
        torch = self._torch
        key = tuple(tuple(x.shape) for x in inputs)
        if key not in self._graphs:
            static_in = tuple(x.clone() for x in inputs)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP_RUNS):
                    self._eager(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                static_out = self._eager(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        for target, x in zip(static_in, inputs, strict=True):
            target.copy_(x)
        graph.replay()
        return static_out
