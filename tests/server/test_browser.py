"""A real browser: Debian's chromium, headless, with a WAV file as its microphone."""

import os
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from engine.audio.pcm import float_to_int16
from engine.constants import SAMPLE_RATE
from server.client import wait_for

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


async def test_talk_and_watch_pages_in_headless_chromium(
    server, chromium_path, speech_wav, tmp_path
):
    from playwright.async_api import async_playwright

    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_wav}",
        "--autoplay-policy=no-user-gesture-required",
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
            assert size == [512, 512]

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
            assert stats["fps"] >= 24

            # The share link opens the watch page, which receives the same session.
            share = await page.eval_on_selector("#share", "e => e.value")
            assert "/watch?session=" in share
            viewer = await browser.new_page()
            await viewer.goto(share)
            await viewer.wait_for_function("window.evp.framesDecoded > 25", timeout=20_000)
            session = next(iter(server.evp.sessions.values()))
            assert session.viewer_count == 1
            await page.screenshot(path=str(tmp_path / "talk.png"))
            await viewer.close()

            await page.click("#stop")
            await wait_for(lambda: not server.evp.sessions, timeout=10)
            assert errors == []
        finally:
            await browser.close()
