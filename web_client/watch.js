// Receive-only viewer of a session: /watch?session=ID&token=TOKEN (works as an OBS browser source).
import { countFrames, negotiate } from "./rtc.js";

const video = document.getElementById("video");
const status = document.getElementById("status");
const unmute = document.getElementById("unmute");
const live = { framesDecoded: 0, connected: false };
window.evp = live;

async function watch() {
  const params = new URLSearchParams(location.search);
  const session = params.get("session");
  const token = params.get("token");
  if (!session || !token) {
    status.textContent = "this link needs ?session=…&token=… (copy it from the talk page)";
    return;
  }
  const pc = new RTCPeerConnection({ iceServers: [] });
  live.pc = pc; // for benchmarks reading getStats()
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const remote = new MediaStream();
  pc.addEventListener("track", (event) => { remote.addTrack(event.track); video.srcObject = remote; });
  pc.addEventListener("connectionstatechange", () => {
    live.connected = pc.connectionState === "connected";
    status.textContent = pc.connectionState === "connected" ? "" : `connection ${pc.connectionState}`;
  });
  try {
    await negotiate(pc, `/api/sessions/${encodeURIComponent(session)}/viewers?token=${encodeURIComponent(token)}`);
  } catch (error) {
    status.textContent = `cannot watch: ${error.message}`;
    return;
  }
  // Autoplay with sound needs a user gesture in ordinary browsers (OBS allows it).
  video.play().catch(() => {
    video.muted = true;
    video.play();
    unmute.hidden = false;
  });
}

unmute.addEventListener("click", () => { video.muted = false; unmute.hidden = true; });
countFrames(video, () => { live.framesDecoded += 1; });
watch();
