"""An engine whose frame cost the test sets, so pacing is tested the same on any machine.

``FixedCostEngine.loader(cost_s)`` goes where ``PortraitEngine.load`` would
(``create_app(settings, load_engine=...)``). The landmark step is the real one (ONNX
Runtime, about a millisecond); the render is a sleep of ``cost_s`` that shows the avatar's
loop frame. A sleep takes no CPU, so the cost is what the test asked for on a fast machine,
a slow one or one with a busy core: a test that needs a frame to cost 1.5 frame periods gets
exactly that.
"""

import time
from collections.abc import Callable

from engine.avatar.bundle import Avatar
from engine.avatar.render import Rendered
from engine.pipeline.portrait import PortraitEngine
from engine.runtime.loading import load_landmark_runtime


class FixedCostRenderer:
    """FaceRenderer's interface: ``render(index, face68)`` costs ``cost_s`` seconds."""

    def __init__(self, avatar: Avatar, cost_s: float) -> None:
        self.avatar = avatar
        self.cost_s = cost_s

    def render(self, index: int, face68) -> Rendered:
        time.sleep(self.cost_s)
        return Rendered(frame=self.avatar.frames[index], crop=None, sample=None)


class FixedCostEngine(PortraitEngine):
    def __init__(self, cost_s: float) -> None:
        super().__init__(load_landmark_runtime("onnx"), "onnx")
        self.cost_s = cost_s
        self._fixed: dict[str, FixedCostRenderer] = {}

    @classmethod
    def loader(cls, cost_s: float) -> Callable[[str], PortraitEngine]:
        return lambda backend: cls(cost_s)

    def renderer(self, avatar: Avatar) -> FixedCostRenderer:  # type: ignore[override]
        key = str(avatar.directory.resolve())
        if key not in self._fixed:
            self._fixed[key] = FixedCostRenderer(avatar, self.cost_s)
        return self._fixed[key]
