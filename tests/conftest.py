import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from engine.constants import SAMPLE_RATE
from engine.pipeline.portrait import PortraitEngine
from engine.wav import read_wav
from server.app import SERVER_KEY, EvpServer, create_app
from server.bench.client import free_local_port
from server.settings import ServerSettings

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data; tests that need it skip without it, or fail when CI requires it."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("EVP_REQUIRE_DATA"):
            pytest.fail(f"EVP_REQUIRE_DATA is set but {SHARED_DATA} is missing")
        pytest.skip(f"shared data not present at {SHARED_DATA}")
    return SHARED_DATA.resolve()


@pytest.fixture(scope="session")
def speech_files(shared_data: Path) -> list[Path]:
    files = sorted((shared_data / "speech").glob("*.wav"))
    assert files, "no speech files in shared/data/speech"
    return files


@pytest.fixture(scope="session")
def speech(shared_data: Path) -> np.ndarray:
    """12 s of real speech (voiced from the first second), 16 kHz mono float32."""
    return read_wav(shared_data / "speech" / "evp_obama.wav", SAMPLE_RATE)[: 12 * SAMPLE_RATE]


def tiny_corpus_config(
    shared_data: Path, root: Path, actors: tuple[str, ...], pattern: str, **sizes
):
    """A corpus BuildConfig small enough for a test: RAVDESS ``actors`` (files matching
    ``pattern``) linked under ``root``, plus the real clips and MEAD; ``sizes`` override
    sentences, voices, intensities, shard_size and pairs per sentence."""
    from engine.data.build import BuildConfig

    ravdess = root / "ravdess"
    for actor in actors:
        (ravdess / actor).mkdir(parents=True)
        for wav in (shared_data / "ravdess" / actor).glob(pattern):
            os.symlink(wav, ravdess / actor / wav.name)
    return BuildConfig(
        ravdess=str(ravdess),
        clips=str(shared_data / "talking"),
        mead=str(shared_data / "mead"),
        **sizes,
    )


class RunningServer:
    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self.runner = runner
        self.url = url
        self.evp: EvpServer = runner.app[SERVER_KEY]


@pytest.fixture
def settings() -> ServerSettings:
    return ServerSettings(port=free_local_port(), media_timeout_s=10.0)


@pytest.fixture
def load_engine():
    """How the ``server`` fixture makes its engine: the real one unless a test module
    overrides this (tests/server/fakes.py: an engine whose frame cost the test sets)."""
    return PortraitEngine.load


@pytest.fixture
async def server(settings: ServerSettings, load_engine):
    app = create_app(settings, load_engine)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    yield RunningServer(runner, f"http://{settings.host}:{settings.port}")
    await runner.cleanup()


@pytest.fixture
def make_settings(settings: ServerSettings):
    def make(**changes) -> ServerSettings:
        return replace(settings, **changes)

    return make
