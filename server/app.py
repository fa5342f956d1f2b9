"""The aiohttp application: signalling, control sockets, viewers, static client, metrics.

Public API (DESIGN §8), all on one port:
    POST /api/offer                               talk: offer -> answer + session id + token
    GET  /api/sessions/{id}/control?token=...     control WebSocket
    POST /api/sessions/{id}/viewers?token=...     watch: receive-only offer -> answer
    GET  /api/avatars, /api/emotions, /healthz, /metrics
    GET  /, /watch, /static/...                   the web client
"""

import asyncio
import hmac
import itertools
import json
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from urllib.parse import urlsplit

from aiohttp import web

from engine.avatar.bundle import Avatar, AvatarLibrary
from engine.constants import EMOTIONS, PTS_PER_VIDEO_FRAME
from engine.emotion_state import EmotionState
from engine.errors import AvatarError, EngineError
from engine.pipeline.h264 import H264Stream, to_i420
from engine.pipeline.portrait import PortraitEngine
from server.capacity import RETRY_AFTER_S, Capacity, FrameCost, MachineMeter, calibrate
from server.control import ControlError, parse_emotion_spec
from server.control_socket import serve_control_socket
from server.inference import InferenceWorker
from server.memory import release_freed_memory
from server.metrics import ServerMetrics
from server.offer import OfferError
from server.session import Session
from server.settings import ServerSettings
from server.tasks import TaskSupervisor

logger = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class EvpServer:
    """Owns everything one server process shares: avatars, sessions, the worker, metrics."""

    def __init__(
        self,
        settings: ServerSettings,
        load_engine: Callable[[str], PortraitEngine] | None = None,
    ) -> None:
        """``load_engine(backend)`` makes the shared engine at startup (tests pass one
        whose cost they control); by default the shipped ``settings.model``."""
        self.settings = settings
        self._load_engine = load_engine or partial(PortraitEngine.load, model=settings.model)
        self.metrics = ServerMetrics()
        self.avatars = AvatarLibrary(settings.avatars_dir)
        self.sessions: dict[str, Session | None] = {}  # None: being set up
        # The engine's own thread: its session state and every batched landmark step.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evp-worker")
        # Sessions' renders, one per core at once (ONNX Runtime and OpenCV free the GIL).
        threads = settings.render_pool_size()
        self.renders = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="evp-render")
        # Every session's audio front-end (about 1 ms a packet), never behind a render.
        self.analysis = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evp-audio")
        # Slow, rare work (decoding an avatar, loading its generator, trimming memory) runs
        # on its own thread so that live sessions never wait behind it.
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evp-loader")
        # Sessions' H.264 encodes (about 2 ms a frame; one session's run in order).
        self.encoder = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="evp-encode")
        self.inference: InferenceWorker | None = None  # at startup: loading takes a while
        self.machine = MachineMeter()
        self.capacity: Capacity | None = None  # at startup, from a calibration
        self._tasks = TaskSupervisor("server", self._task_failed)
        self._stopping = False

    # ------------------------------------------------------------- lifecycle

    async def startup(self, app: web.Application) -> None:
        """Load the networks on the chosen backend and the default avatar (decoded, its
        generator loaded) before the first offer, so it is answered quickly."""
        loop = asyncio.get_running_loop()
        engine = await loop.run_in_executor(self.worker, self._load_engine, self.settings.backend)
        avatar = await loop.run_in_executor(
            self.loader, self.avatars.get, self.settings.default_avatar
        )
        await loop.run_in_executor(self.loader, engine.renderer, avatar)
        window = self.settings.window
        if window is not None and window != engine.window:
            raise EngineError(
                f"--lookahead-hops {window.lookahead_hops} does not match the model, trained "
                f"with {engine.window.lookahead_hops}: leave it out"
            )
        self.settings = replace(self.settings, window=engine.window)
        self.metrics.lookahead.set(engine.window.lookahead_seconds)
        logger.info(
            "engine: landmarks (%s) on %s, look-ahead %d hops",
            self.settings.model,
            engine.runtime.name,
            engine.window.lookahead_hops,
        )
        prior = await loop.run_in_executor(self.worker, self._calibrate, engine, avatar)
        self.capacity = Capacity(self.machine.read().cores, self.settings.render_pool_size(), prior)
        logger.info(
            "capacity: a calibration frame takes %.1f ms, %.1f ms of CPU; %d render threads",
            1000 * prior.frame_s,
            1000 * prior.cpu_s,
            self.settings.render_pool_size(),
        )
        self.inference = InferenceWorker(
            engine, self.worker, self.renders, self.metrics, self.capacity.rendered
        )
        self.inference.start()
        self._tasks.spawn(self._measure_capacity(), "capacity")

    @staticmethod
    def _calibrate(engine: PortraitEngine, avatar: Avatar) -> FrameCost:
        """Worker thread: the cost of a whole frame (draw, I420, H.264) of the default
        avatar, measured before any session runs: the capacity model's prior."""
        portrait = engine.open("calibration", avatar)
        encoder = H264Stream(*avatar.size)
        try:
            pts = itertools.count(0, PTS_PER_VIDEO_FRAME)
            return calibrate(
                lambda i: to_i420(portrait.draw_frame(i).image),
                lambda i420: encoder.encode(i420, next(pts)),
            )
        finally:
            portrait.close()

    async def _measure_capacity(self) -> None:
        """Once a second: the capacity model re-estimated, its step chosen, exported."""
        capacity = self.capacity
        assert capacity is not None
        while True:
            await asyncio.sleep(1.0)
            rung = capacity.rung
            capacity.update(len(self.sessions), self.machine.read())
            if capacity.rung > rung:
                self.metrics.degradations.inc()
                logger.warning(
                    "degraded to %.1f fps for every session: %s", capacity.fps, capacity.reason
                )
            elif capacity.rung < rung:
                logger.info("recovered to %.1f fps", capacity.fps)
            self.metrics.export_capacity(capacity)

    async def shutdown(self, app: web.Application) -> None:
        """Refuse new offers, then close every session (aiohttp still finishes requests
        in flight after this; ``cleanup`` stops the engine once they are done)."""
        self._stopping = True
        await asyncio.gather(
            *(s.aclose("server shutting down") for s in list(self.sessions.values()) if s),
            return_exceptions=True,
        )

    async def cleanup(self, app: web.Application) -> None:
        await asyncio.gather(
            *(s.aclose("server shutting down") for s in list(self.sessions.values()) if s),
            return_exceptions=True,
        )
        await self._tasks.aclose()
        if self.inference is not None:
            await self.inference.aclose()
        for executor in (self.worker, self.renders, self.analysis, self.loader, self.encoder):
            await asyncio.to_thread(executor.shutdown, wait=True)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        logger.error("server task %s failed: %r", name, exc)

    def _session_closed(self, session_id: str) -> None:
        if session_id in self.sessions:
            del self.sessions[session_id]
            self.metrics.sessions.dec()
            if not self._stopping:
                self._tasks.spawn(self._release_memory(), "release-memory")

    async def _release_memory(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.loader, release_freed_memory)

    # ------------------------------------------------------------- helpers

    def _refusal(self) -> str | None:
        """Why one more session may not start now, or None."""
        fixed = self.settings.max_sessions
        if fixed is not None:
            return f"{fixed} sessions (--max-sessions)" if len(self.sessions) >= fixed else None
        assert self.capacity is not None  # set before the inference worker
        return self.capacity.refusal(len(self.sessions))

    async def _read_offer(self, request: web.Request) -> dict:
        if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_OFFER_BYTES, actual_size=request.content_length
            )
        try:
            body = json.loads(await request.text())
        except (ValueError, RecursionError) as e:  # bad JSON or text, too deep or long a number
            reason = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise OfferError(
                f'the body must be JSON like {{"sdp": ..., "type": "offer"}}: {reason}'
            ) from e
        if (
            not isinstance(body, dict)
            or body.get("type") != "offer"
            or not isinstance(body.get("sdp"), str)
        ):
            raise OfferError('expected JSON {"sdp": "<SDP offer>", "type": "offer"}')
        return body

    def _session_for(self, request: web.Request) -> Session:
        session = self.sessions.get(request.match_info["session_id"])
        if session is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": "no such session"}), content_type="application/json"
            )
        token = request.query.get("token", "")
        if not hmac.compare_digest(token.encode(), session.token.encode()):
            raise web.HTTPForbidden(
                text=json.dumps({"error": "wrong or missing token"}),
                content_type="application/json",
            )
        return session

    def _origin_allowed(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True  # not a browser: scripts and the CLI
        if origin in self.settings.allowed_origins:
            return True
        return urlsplit(origin).netloc == request.host

    # ------------------------------------------------------------- handlers

    async def offer(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_offer(request)
            avatar_name = body.get("avatar") or self.settings.default_avatar
            if not isinstance(avatar_name, str):
                raise OfferError(f"'avatar' must be an avatar's name, got {avatar_name!r}")
            if not isinstance(body.get("bench", False), bool):
                raise OfferError("'bench' must be true or false")
            emotion = EmotionState()
            if body.get("emotion") is not None:
                command = parse_emotion_spec(str(body["emotion"]))
                emotion = EmotionState(emotion=command.emotion, intensity=command.intensity)
        except (OfferError, ControlError) as e:
            return error(400, str(e))
        inference = self.inference
        if self._stopping or inference is None or not inference.healthy:
            return error(
                503, "the server is not serving sessions now (starting, stopping or failed)"
            )
        if (refusal := self._refusal()) is not None:
            self.metrics.sessions_refused.inc()
            return web.json_response(
                {"error": f"server at capacity: {refusal}; try again later"},
                status=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        session_id = secrets.token_hex(9)  # hex: never starts with '-', safe as an argument
        self.sessions[session_id] = None  # reserve the slot before awaiting
        self.metrics.sessions.inc()
        loop = asyncio.get_running_loop()
        portrait = None
        try:
            avatar = await loop.run_in_executor(self.loader, self.avatars.get, avatar_name)
            await loop.run_in_executor(self.loader, inference.engine.renderer, avatar)
            portrait = await inference.call(inference.engine.open, session_id, avatar, emotion)
            session = Session(
                session_id=session_id,
                token=secrets.token_hex(24),
                avatar=avatar,
                settings=self.settings,
                metrics=self.metrics,
                analysis=self.analysis,
                encode=self.encoder,
                inference=inference,
                capacity=self.capacity,
                portrait=portrait,
                on_closed=lambda s: self._session_closed(s.id),
                emotion=emotion,
                stamp_frames=body.get("bench", False),
            )
        except BaseException as e:
            if portrait is not None:
                await inference.call(portrait.close)
            self._session_closed(session_id)
            if isinstance(e, EngineError):  # a bad avatar, an emotion the model lacks
                return error(400, str(e))
            raise
        self.sessions[session_id] = session
        try:
            answer = await session.accept_offer(body["sdp"])
        except OfferError as e:
            await session.aclose("bad offer")
            return error(400, str(e))
        except BaseException:
            await session.aclose("error while answering")
            raise
        session.start()
        if self.capacity is not None:
            self.capacity.started()
        self.metrics.sessions_started.inc()
        logger.info("session %s started (avatar %s)", session.id, avatar_name)
        return web.json_response(
            {
                "sdp": answer.sdp,
                "type": answer.type,
                "session_id": session.id,
                "token": session.token,
            }
        )

    async def viewers(self, request: web.Request) -> web.Response:
        session = self._session_for(request)
        try:
            body = await self._read_offer(request)
            answer = await session.add_viewer(body["sdp"])
        except OfferError as e:
            return error(400, str(e))
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": session.id})

    async def control(self, request: web.Request) -> web.StreamResponse:
        session = self._session_for(request)
        if not self._origin_allowed(request):
            return error(403, f"origin {request.headers.get('Origin')} may not control sessions")
        return await serve_control_socket(
            request,
            session,
            self.metrics,
            rate=self.settings.control_rate_per_s,
            max_bytes=self.settings.control_max_message_bytes,
        )

    async def list_avatars(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()  # reading every manifest is file I/O: off the loop
        avatars = await loop.run_in_executor(None, self._avatar_listing)
        return web.json_response({"default": self.settings.default_avatar, "avatars": avatars})

    def _avatar_listing(self) -> list[dict]:
        avatars = []
        for name in self.avatars.names():
            try:
                manifest = self.avatars.manifest(name)
            except AvatarError as e:
                logger.warning("skipping avatar %s: %s", name, e)
                continue
            public = ("name", "kind", "source", "licence", "fps", "frame_count", "width", "height")
            box = manifest.crop_box
            avatars.append(
                {k: getattr(manifest, k) for k in public}
                | {"validation": manifest.validation, "face_box": [box.x, box.y, box.size]}
            )
        return avatars

    async def list_emotions(self, request: web.Request) -> web.Response:
        return web.json_response({"emotions": list(EMOTIONS)})

    async def healthz(self, request: web.Request) -> web.Response:
        healthy = self.inference is not None and self.inference.healthy and not self._stopping
        return web.json_response(
            {
                "status": "ok" if healthy else "unavailable",
                "sessions": len(self.sessions),
                "max_sessions": self.settings.max_sessions or "auto",
                "capacity": None if self.capacity is None else self.capacity.summary(),
            },
            status=200 if healthy else 503,
        )

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), content_type="text/plain", charset="utf-8"
        )


SERVER_KEY = web.AppKey("evp_server", EvpServer)


def create_app(
    settings: ServerSettings,
    load_engine: Callable[[str], PortraitEngine] | None = None,
) -> web.Application:
    server = EvpServer(settings, load_engine)
    app = web.Application(client_max_size=MAX_OFFER_BYTES)
    app[SERVER_KEY] = server
    app.on_startup.append(server.startup)
    app.on_shutdown.append(server.shutdown)
    app.on_cleanup.append(server.cleanup)
    static = settings.web_client_dir

    async def talk_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "talk.html")

    async def watch_page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(static / "watch.html")

    app.add_routes(
        [
            web.post("/api/offer", server.offer),
            web.get("/api/sessions/{session_id}/control", server.control),
            web.post("/api/sessions/{session_id}/viewers", server.viewers),
            web.get("/api/avatars", server.list_avatars),
            web.get("/api/emotions", server.list_emotions),
            web.get("/healthz", server.healthz),
            web.get("/metrics", server.prometheus),
            web.get("/", talk_page),
            web.get("/watch", watch_page),
            web.static("/static", static),
        ]
    )
    return app
