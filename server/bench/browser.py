"""``evp bench av-sync``: the offset between face and voice as a browser shows them.

    evp bench av-sync --spawn --seconds 20 --json av-sync.json

Headless Chromium (Debian's ``chromium``, driven by Playwright) opens the talk page with
``?bench=1`` and a WAV of speech bursts as its fake microphone, then the watch page of the
same session. In each page web_client/avsync.js records every displayed frame's expected
display time and stamp (which 10 ms hops of the audio it was made from were loud,
server/frame_stamp.py) and the returned voice's 10 ms loudness from WebAudio, all on the
page's clock; each burst's onset in the two gives one offset (server.bench.analysis).
"""

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.audio.pcm import float_to_int16
from engine.constants import SAMPLE_RATE
from engine.errors import EngineError
from engine.wav import read_wav
from server.bench.analysis import av_sync_offsets, burst_signal
from server.bench.live import BUNDLED_SPEECH, _serve_args, _SpawnedServer
from server.bench.live_session import _at_browser_rate
from server.frame_stamp import LOUD_DBFS

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]
TARGET_MS = 40.0  # the target: within +-40 ms (ITU-R BT.1359 detects +45 / -125)


@dataclass
class AvSyncOptions:
    url: str | None = None  # None: spawn a server
    seconds: float = 20.0
    wav: Path | None = None
    chromium: str | None = None  # default: `chromium` on PATH
    serve_args: list[str] = field(default_factory=list)


def _write_microphone(path: Path, signal: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(float_to_int16(signal).tobytes())


def summarise(offsets: list[float]) -> dict:
    if not offsets:
        return {"offset_ms": None, "spread_ms": None, "bursts": 0, "within_target": False}
    values = np.array(offsets)
    return {
        "offset_ms": round(float(np.median(values)), 1),
        "spread_ms": [round(float(values.min()), 1), round(float(values.max()), 1)],
        "bursts": int(values.size),
        "within_target": bool(np.all(np.abs(values) <= TARGET_MS)),
    }


async def run_av_sync(options: AvSyncOptions) -> dict:
    chromium = options.chromium or shutil.which("chromium")
    if chromium is None:
        return {"error": "no chromium: install Debian's chromium (scripts/ensure-chromium)"}
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return {"error": "Playwright is not installed: pip install -e '.[test]' (make test does)"}
    try:
        source = read_wav(options.wav or BUNDLED_SPEECH, SAMPLE_RATE)
        bursts = burst_signal([source], options.seconds)
    except (ValueError, EngineError) as e:
        return {"error": f"bad input: {e}"}
    work = Path(tempfile.mkdtemp(prefix="evp-avsync-"))
    microphone = work / "microphone.wav"
    _write_microphone(microphone, *_at_browser_rate(bursts.signal))
    server = _SpawnedServer(options.serve_args) if options.url is None else None
    try:
        if options.url:
            url = options.url
        else:
            assert server is not None  # spawned when no url was given
            url = await server.start()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium,
                headless=True,
                args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={microphone}"],
            )
            try:
                pages = await _measure(browser, url, options.seconds)
            finally:
                await browser.close()
    except OSError as e:
        return {"error": f"cannot reach the server: {e}"}
    finally:
        if server is not None:
            await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    loud = 10 ** (LOUD_DBFS / 20)
    result = {
        name: summarise(av_sync_offsets(p["frames"], p["voice"], loud)) for name, p in pages.items()
    }
    for name, page in pages.items():
        result[name] |= {
            "frames": len(page["frames"]),
            "errors": page["errors"][:3],
            "browser_receive": page["receive"],
        }
    return result | {
        "seconds": options.seconds,
        "url": url if server is None else " ".join(["spawned: evp serve", *options.serve_args]),
        "method": "per speech burst: the expected display time (requestVideoFrameCallback) "
        "of the first frame whose stamp says its audio became loud, plus 10 ms per hop, "
        "minus the time the returned voice's 10 ms RMS (WebAudio, the same audio track) "
        f"first exceeds {LOUD_DBFS:.0f} dBFS; > 0: the face comes after the voice; both on "
        "the page's performance.now() clock",
    }


# What the browser's receivers report: mean jitter-buffer delay per kind (ms), and how long
# audio takes from arrival to playout, where the browser reports it.
RECEIVE_STATS_JS = """async () => {
    const out = {};
    const report = await window.evp.pc.getStats();
    report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.jitterBufferEmittedCount) {
            out[s.kind + '_jitter_buffer_ms'] =
                Math.round(10000 * s.jitterBufferDelay / s.jitterBufferEmittedCount) / 10;
            if (s.jitterBufferTargetDelay !== undefined)
                out[s.kind + '_jitter_buffer_target_ms'] =
                    Math.round(10000 * s.jitterBufferTargetDelay / s.jitterBufferEmittedCount) / 10;
        }
        if (s.type === 'media-playout' && s.totalSamplesCount)
            out.audio_playout_ms = Math.round(10000 * s.totalPlayoutDelay / s.totalSamplesCount) / 10;
    });
    return out;
}"""


async def _measure(browser: "Browser", url: str, seconds: float) -> dict:
    talk = await browser.new_page()
    await talk.goto(f"{url}/?bench=1")
    await talk.wait_for_selector("#emotions button[data-emotion=happy]")
    await talk.click("#start")
    await talk.wait_for_function("window.evp.framesDecoded > 25", timeout=30_000)
    share = await talk.eval_on_selector("#share", "e => e.value")
    watch = await browser.new_page()
    await watch.goto(share)
    await watch.wait_for_function("window.evp.framesDecoded > 25", timeout=30_000)
    for page in (talk, watch):
        await page.add_script_tag(url=f"{url}/static/avsync.js")
        await page.evaluate("window.evpStartAvSync()")
    await asyncio.sleep(seconds)
    pages = {
        name: await p.evaluate("window.evpAvSync") | {"receive": await p.evaluate(RECEIVE_STATS_JS)}
        for name, p in (("talk", talk), ("watch", watch))
    }
    await talk.click("#stop")
    return pages


def run(args: argparse.Namespace) -> int:
    options = AvSyncOptions(
        url=None if args.spawn else args.url,
        seconds=args.seconds,
        wav=args.wav,
        serve_args=_serve_args(args),
    )
    result = asyncio.run(run_av_sync(options))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        try:
            tmp = args.json.with_name(args.json.name + ".partial")
            tmp.write_text(text + "\n")
            tmp.replace(args.json)
        except OSError as e:
            print(f"evp bench av-sync: cannot write the results: {e}", file=sys.stderr)
            return 2
    return 2 if "error" in result else 0
