// Shared WebRTC helpers for the talk and watch pages.

// The server answers with all its candidates (no trickle), so we send a complete offer.
export function waitForIceGathering(pc, timeoutMs = 3000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs); // host candidates are enough on a LAN
  });
}

export async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

export async function negotiate(pc, url, extra = {}) {
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  const answer = await postJson(url, { sdp: pc.localDescription.sdp, type: "offer", ...extra });
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  return answer;
}

// Frames decoded by a <video>, for the stats panels (and for automated browser tests).
export function countFrames(video, onFrame) {
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const step = () => { onFrame(); video.requestVideoFrameCallback(step); };
  video.requestVideoFrameCallback(step);
}
