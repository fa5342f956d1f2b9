import pytest

from engine.avatar.bundle import AvatarLibrary
from engine.pipeline.portrait import PortraitEngine
from server.settings import DEFAULT_AVATARS


@pytest.fixture(scope="session")
def avatar():
    return AvatarLibrary(DEFAULT_AVATARS).get("default")


@pytest.fixture(scope="session")
def engine():
    return PortraitEngine.load("onnx")
