import { countFrames, negotiate } from "./rtc.js";

const $ = (id) => document.getElementById(id);
const ui = {
  avatar: $("avatar"), start: $("start"), stop: $("stop"), hear: $("hear"), status: $("status"),
  video: $("video"), share: $("share"), emotions: $("emotions"), intensity: $("intensity"),
  intensityValue: $("intensity-value"), blendFrom: $("blend-from"), blendTo: $("blend-to"),
  alpha: $("alpha"), alphaValue: $("alpha-value"), transition: $("transition"), auto: $("auto"),
  flush: $("flush"), state: $("state"), controlError: $("control-error"), stats: $("stats"),
};

// Exposed for scripts and automated tests; the page itself does not read it.
const live = { framesDecoded: 0, state: null, stats: null, sessionId: null };
window.evp = live;

let pc = null;
let socket = null;
let microphone = null;

function setStatus(text, isError = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", isError);
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

const transitionMs = () => Number(ui.transition.value) || 0;

async function loadChoices() {
  const [{ avatars, default: fallback }, { emotions }] = await Promise.all([
    fetch("/api/avatars").then((r) => r.json()),
    fetch("/api/emotions").then((r) => r.json()),
  ]);
  for (const a of avatars) ui.avatar.add(new Option(`${a.name} (${a.kind})`, a.name, a.name === fallback, a.name === fallback));
  for (const name of emotions) {
    const button = document.createElement("button");
    button.textContent = name;
    button.dataset.emotion = name;
    button.addEventListener("click", () =>
      send({ type: "set_emotion", emotion: name, intensity: Number(ui.intensity.value), transition_ms: transitionMs() }));
    ui.emotions.append(button);
    ui.blendFrom.add(new Option(name, name));
    ui.blendTo.add(new Option(name, name));
  }
  ui.blendFrom.value = "sad";
  ui.blendTo.value = "happy";
}

function showState(state) {
  live.state = state;
  const e = state.emotion;
  ui.state.textContent =
    e.mode === "manual" ? `${e.emotion} · intensity ${e.intensity.toFixed(2)}` :
    e.mode === "blend" ? `blend ${e.from} → ${e.to} · alpha ${e.alpha.toFixed(2)}` : "automatic (from the voice)";
  for (const b of ui.emotions.children) b.classList.toggle("active", e.mode === "manual" && b.dataset.emotion === e.emotion);
  ui.auto.classList.toggle("active", e.mode === "auto");
}

function showStats(stats) {
  live.stats = stats;
  const rows = {
    "fps (server)": stats.fps, "frames decoded": live.framesDecoded, "frames sent": stats.frames_sent,
    dropped: stats.frames_dropped, late: stats.frames_late,
    "audio level": stats.audio_level_db === null ? "–" : `${stats.audio_level_db} dBFS`,
    voice: stats.voice ? "speaking" : "silent",
    "voice sounds": stats.voice_emotion
      ? `${stats.voice_emotion.emotion} (${Math.round(100 * stats.voice_emotion.p)} %); ` +
        `auto shows ${stats.voice_emotion.shown.emotion} at ` +
        `${Math.round(100 * stats.voice_emotion.shown.intensity)} %` : "–",
    "server latency": stats.latency_ms === null ? "–" : `${stats.latency_ms} ms`,
    "pipeline delay": `${stats.pipeline_delay_ms} ms`, "queue delay": `${stats.queue_delay_ms} ms`,
    viewers: stats.viewers,
    "server rate": stats.degraded ? `${stats.target_fps} fps (lowered: ${stats.degraded})`
      : `${stats.target_fps} fps`,
  };
  ui.stats.replaceChildren(...Object.entries(rows).flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = String(v); dd.dataset.stat = k;
    return [dt, dd];
  }));
}

function openControl(sessionId, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/api/sessions/${sessionId}/control?token=${encodeURIComponent(token)}`);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "state") showState(message);
    else if (message.type === "stats") showStats(message);
    else if (message.type === "error") ui.controlError.textContent = message.message;
  });
  socket.addEventListener("close", () => { if (pc) setStatus("control channel closed", true); });
}

async function start() {
  ui.start.disabled = true;
  setStatus("asking for the microphone…");
  try {
    microphone = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    pc = new RTCPeerConnection({ iceServers: [] });
    live.pc = pc; // for benchmarks reading getStats()
    for (const track of microphone.getAudioTracks()) pc.addTrack(track, microphone);
    pc.addTransceiver("video", { direction: "recvonly" });
    const remote = new MediaStream();
    pc.addEventListener("track", (event) => {
      remote.addTrack(event.track);
      ui.video.srcObject = remote;
    });
    pc.addEventListener("connectionstatechange", () => {
      setStatus(`connection ${pc.connectionState}`, pc.connectionState === "failed");
    });
    setStatus("connecting…");
    // ?bench=1: frames carry their audio frame and its loudness (evp bench av-sync).
    const bench = new URLSearchParams(location.search).get("bench") === "1";
    const answer = await negotiate(pc, "/api/offer", { avatar: ui.avatar.value, bench });
    live.sessionId = answer.session_id;
    ui.share.value = `${location.origin}/watch?session=${answer.session_id}&token=${encodeURIComponent(answer.token)}`;
    openControl(answer.session_id, answer.token);
    ui.stop.disabled = false;
  } catch (error) {
    setStatus(`could not start: ${error.message}`, true);
    stop();
  }
}

function stop() {
  if (socket) socket.close();
  if (pc) pc.close();
  if (microphone) for (const t of microphone.getTracks()) t.stop();
  socket = pc = microphone = null;
  ui.start.disabled = false;
  ui.stop.disabled = true;
  if (!ui.status.classList.contains("error")) setStatus("idle");
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
ui.hear.addEventListener("change", () => { ui.video.muted = !ui.hear.checked; });
ui.intensity.addEventListener("input", () => { ui.intensityValue.textContent = Number(ui.intensity.value).toFixed(2); });
ui.intensity.addEventListener("change", () => {
  const s = live.state && live.state.emotion;
  if (s && s.mode === "manual") send({ type: "set_emotion", emotion: s.emotion, intensity: Number(ui.intensity.value), transition_ms: transitionMs() });
});
const sendBlend = () => {
  ui.alphaValue.textContent = Number(ui.alpha.value).toFixed(2);
  send({ type: "blend", from: ui.blendFrom.value, to: ui.blendTo.value, alpha: Number(ui.alpha.value), transition_ms: transitionMs() });
};
ui.alpha.addEventListener("input", sendBlend);
ui.blendFrom.addEventListener("change", sendBlend);
ui.blendTo.addEventListener("change", sendBlend);
ui.auto.addEventListener("click", () => send({ type: "auto", transition_ms: transitionMs() }));
ui.flush.addEventListener("click", () => send({ type: "flush" }));
countFrames(ui.video, () => { live.framesDecoded += 1; });

loadChoices().catch((error) => setStatus(`cannot reach the server: ${error.message}`, true));
