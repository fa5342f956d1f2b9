// A/V sync as a viewer sees it, measured inside the page (evp bench av-sync loads this
// into the talk or watch page of a session opened with "bench": true).
//
// Video: every displayed frame's expected display time (requestVideoFrameCallback) and the
// stamp in its bottom-left corner (server/frame_stamp.py): its audio frame and which of that
// audio's four 10 ms hops were loud. Voice: the RMS of every 10 ms of the returned audio
// track as WebAudio receives it, on the same clock (performance.now()). Both are kept;
// server/bench/browser.py pairs the onsets of loudness in the two.
(() => {
  const BLOCK = 8, BITS = 28, HOP_BITS = 4, VALUE_BITS = 20, MARKER = 0b1010;

  function readWord(context, height) {
    const row = context.getImageData(0, height - BLOCK / 2 - 1, BITS * BLOCK, 2).data;
    let word = 0;
    for (let bit = 0; bit < BITS; bit++) {
      let luma = 0;
      for (const y of [0, 1]) {
        for (const x of [3, 4]) {
          const i = (y * BITS * BLOCK + bit * BLOCK + x) * 4;
          luma += 0.299 * row[i] + 0.587 * row[i + 1] + 0.114 * row[i + 2];
        }
      }
      word = word * 2 + (luma / 4 > 128 ? 1 : 0);
    }
    if (Math.floor(word / 2 ** (VALUE_BITS + HOP_BITS)) !== MARKER) return null;
    return { value: Math.floor(word / 2 ** HOP_BITS) % 2 ** VALUE_BITS, hops: word % 2 ** HOP_BITS };
  }

  function start(video) {
    const result = { frames: [], voice: [], errors: [] };
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    const onFrame = (now, metadata) => {
      try {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        context.drawImage(video, 0, 0);
        const stamp = readWord(context, canvas.height);
        if (stamp) result.frames.push([metadata.expectedDisplayTime, stamp.value, stamp.hops]);
      } catch (error) {
        result.errors.push(String(error));
      }
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);

    const audio = new AudioContext();
    const track = video.srcObject.getAudioTracks()[0];
    const source = audio.createMediaStreamSource(new MediaStream([track]));
    const processor = audio.createScriptProcessor(512, 1, 1);
    const hop = Math.round(audio.sampleRate / 100);
    let pending = [], pendingStart = null;
    processor.onaudioprocess = (event) => {
      // The input block entered the graph one block before it is due to play out.
      const clock = audio.getOutputTimestamp();
      const blockS = event.inputBuffer.length / audio.sampleRate;
      const startS = event.playbackTime - blockS;
      const startMs = clock.performanceTime + (startS - clock.contextTime) * 1000;
      const samples = event.inputBuffer.getChannelData(0);
      if (pendingStart === null) pendingStart = startMs;
      for (let i = 0; i < samples.length; i++) {
        pending.push(samples[i]);
        if (pending.length === hop) {
          let sum = 0;
          for (const x of pending) sum += x * x;
          result.voice.push([pendingStart, Math.sqrt(sum / hop)]);
          pending = [];
          pendingStart = startMs + ((i + 1) / audio.sampleRate) * 1000;
        }
      }
    };
    source.connect(processor);
    processor.connect(audio.destination);
    window.evpAvSync = result;
    return result;
  }

  window.evpStartAvSync = () => start(document.getElementById("video"));
})();
