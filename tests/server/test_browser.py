"""A real browser: Debian's chromium, headless, with a WAV file as its microphone."""

import base64
import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from engine.audio.pcm import float_to_int16
from engine.constants import SAMPLE_RATE
from server.bench.browser import CHROMIUM_FLAGS
from server.bench.client import wait_for
from tests.server.streams import default_frame_size
from tests.server.test_live_pipeline import mouth_measures

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def chromium_path() -> str:
    if not os.path.exists(CHROMIUM):
        message = "Debian's chromium is not installed (scripts/ensure-chromium installs it)"
        if os.environ.get("EVP_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def speech_wav(speech: np.ndarray, tmp_path: Path) -> Path:
    path = tmp_path / "mic.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(float_to_int16(speech).tobytes())
    return path


SNAPSHOTS_JS = """async ([count, interval]) => {
    const video = document.getElementById('video');
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext('2d');
    const out = [];
    for (let i = 0; i < count; i++) {
        context.drawImage(video, 0, 0);
        out.push(canvas.toDataURL('image/png'));
        await new Promise(resolve => setTimeout(resolve, interval));
    }
    return out;
}"""


async def snapshots(page, count: int, interval_ms: int = 100) -> list[np.ndarray]:
    """``count`` pictures of the page's #video as the browser shows them, (H, W, 3) RGB."""
    import cv2

    urls = await page.evaluate(SNAPSHOTS_JS, [count, interval_ms])
    images = []
    for url in urls:
        png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
        images.append(cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
    return images


async def test_talk_and_watch_pages_in_headless_chromium(
    server, chromium_path, speech_wav, tmp_path
):
    from playwright.async_api import async_playwright

    args = [
        *CHROMIUM_FLAGS,
        f"--use-file-for-fake-audio-capture={speech_wav}",
    ]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=args
        )
        try:
            page = await browser.new_page(viewport={"width": 1100, "height": 760})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(server.url + "/")
            await page.wait_for_selector("#emotions button[data-emotion=happy]")
            assert await page.eval_on_selector("#avatar", "s => s.value") == "default"
            await page.click("#start")

            # Video frames are decoded by the browser (requestVideoFrameCallback).
            await page.wait_for_function("window.evp.framesDecoded > 50", timeout=20_000)
            size = await page.eval_on_selector("#video", "v => [v.videoWidth, v.videoHeight]")
            assert tuple(size) == default_frame_size()

            # An emotion button round-trips through the control socket to the state line.
            await page.click("#emotions button[data-emotion=happy]")
            await page.wait_for_function(
                "document.getElementById('state').textContent.startsWith('happy')", timeout=5_000
            )
            assert await page.eval_on_selector(
                "#emotions button[data-emotion=happy]", "b => b.classList.contains('active')"
            )
            await page.fill("#intensity", "0.5")
            await page.click("#emotions button[data-emotion=sad]")
            await page.wait_for_function(
                "window.evp.state.emotion.emotion === 'sad' && window.evp.state.emotion.intensity === 0.5"
            )

            # The server hears the fake microphone: speech level and voice activity.
            await page.wait_for_function(
                "window.evp.stats && window.evp.stats.voice && window.evp.stats.audio_level_db > -50",
                timeout=10_000,
            )
            stats = await page.evaluate("window.evp.stats")
            assert stats["frames_sent"] > 0 and stats["viewers"] == 0  # pacing: test_pacing.py

            # The lips move: the avatar's mouth, tracked in frames the browser decoded.
            talk_frames = await snapshots(page, count=30, interval_ms=100)
            opening, _ = mouth_measures(talk_frames)
            assert np.isfinite(opening).all()
            assert np.percentile(opening, 90) - np.percentile(opening, 10) > 0.02, opening

            # The share link opens the watch page, which receives the same session.
            share = await page.eval_on_selector("#share", "e => e.value")
            assert "/watch?session=" in share
            viewer = await browser.new_page()
            await viewer.goto(share)
            await viewer.wait_for_function("window.evp.framesDecoded > 25", timeout=20_000)
            session = next(iter(server.evp.sessions.values()))
            assert session.viewer_count == 1
            # The same stream: the viewer's picture matches the talker's (same face, same
            # loop; only the moment and the encoding differ).
            (watched,), (talked,) = await snapshots(viewer, 1), await snapshots(page, 1)
            error = np.mean((watched.astype(float) - talked.astype(float)) ** 2)
            assert 10 * np.log10(255**2 / error) > 26  # measured 31-32 dB
            await page.screenshot(path=str(tmp_path / "talk.png"))
            await viewer.close()

            await page.click("#stop")
            await wait_for(lambda: not server.evp.sessions, timeout=10)
            assert errors == []
        finally:
            await browser.close()
