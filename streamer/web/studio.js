// stylestream studio: the camera goes to the server over WebRTC, the stylized video comes back.
// Plain JS, no build step. window.studio exposes the state for tests and the benchmark.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");

const studio = {
  connectionId: null,
  pc: null,
  camera: null,
  config: null,
  style: null,          // the selected gallery style id
  mixStyle: null,       // the second style when mixing
  serverStyleId: null,  // the style id of the last frame the server stylized
  serverStatus: null,
  framesShown: 0,
  recording: null,
  snapshots: [],
  bench: { local: new Map(), roundTrips: [], seen: 0 },
};
window.studio = studio;

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["X-Studio-Token"] = token;
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function withToken(url) {
  return token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setState(text, kind) {
  const pill = $("state");
  pill.textContent = text;
  pill.className = `pill ${kind}`;
}

// -- gallery ---------------------------------------------------------------------------------
function renderGallery(styles) {
  const gallery = $("gallery");
  gallery.replaceChildren();
  const mixSelect = $("mix-style");
  const previousMix = mixSelect.value;
  mixSelect.replaceChildren();
  for (const style of styles) {
    const tile = document.createElement("button");
    tile.className = "tile";
    tile.dataset.style = style.id;
    tile.title = style.kind === "upload" ? `${style.name} (uploaded)` : style.name;
    const img = document.createElement("img");
    img.alt = style.name;
    img.loading = "lazy";
    img.src = withToken(`api/styles/${encodeURIComponent(style.id)}/thumb.jpg`);
    const label = document.createElement("span");
    label.textContent = style.name;
    tile.append(img, label);
    tile.addEventListener("click", () => selectStyle(style.id));
    gallery.append(tile);
    const option = document.createElement("option");
    option.value = style.id;
    option.textContent = style.name;
    mixSelect.append(option);
  }
  if (previousMix) mixSelect.value = previousMix;
  else if (styles.length > 1) mixSelect.value = styles[1].id;
  markGallery();
}

function markGallery() {
  const mixing = $("mix-on").checked;
  for (const tile of document.querySelectorAll(".tile")) {
    tile.classList.toggle("active", tile.dataset.style === studio.style);
    tile.classList.toggle("mixed", mixing && tile.dataset.style === $("mix-style").value);
  }
}

async function selectStyle(id) {
  studio.style = id;
  markGallery();
  await sendStyle();
}

async function sendStyle() {
  if (!studio.connectionId) return;
  const mixing = $("mix-on").checked && $("mix-style").value && $("mix-style").value !== studio.style;
  const m = Number($("mix").value) / 100;
  const body = mixing
    ? { styles: [studio.style, $("mix-style").value], weights: [1 - m, m] }
    : { styles: [studio.style], weights: null };
  try {
    const reply = await api(`api/connections/${studio.connectionId}/style`, { method: "POST", json: body });
    studio.requestedStyleId = reply.style_id;
    showError("");
  } catch (err) {
    showError(`style: ${err.message}`);
  }
}

async function sendAlpha() {
  const value = Number($("alpha").value) / 100;
  $("alpha-value").textContent = `${Math.round(value * 100)}%`;
  if (!studio.connectionId) return;
  try {
    const reply = await api(`api/connections/${studio.connectionId}/alpha`, { method: "POST", json: { alpha: value } });
    studio.alpha = reply.alpha;
  } catch (err) {
    showError(`alpha: ${err.message}`);
  }
}

async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  $("upload-note").textContent = `uploading ${file.name}…`;
  try {
    const entry = await api("api/styles", { method: "POST", body: form });
    const { styles } = await api("api/styles");
    renderGallery(styles);
    $("upload-note").textContent = `added ${entry.name}`;
    await selectStyle(entry.id);
  } catch (err) {
    $("upload-note").textContent = err.message;
  }
}

// -- camera and WebRTC -------------------------------------------------------------------------
async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const select = $("camera");
  const current = select.value;
  select.replaceChildren();
  const cameras = devices.filter((d) => d.kind === "videoinput");
  cameras.forEach((device, i) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `camera ${i + 1}`;
    select.append(option);
  });
  if (!cameras.length) select.append(new Option("no camera found", ""));
  if (current) select.value = current;
}

async function openCamera() {
  const deviceId = $("camera").value;
  const c = studio.config;
  const video = { width: { ideal: c.width }, height: { ideal: c.height }, frameRate: { ideal: 30 } };
  if (deviceId) video.deviceId = { exact: deviceId };
  const stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
  if (studio.camera) studio.camera.getTracks().forEach((t) => t.stop());
  studio.camera = stream;
  $("local").srcObject = stream;
  return stream.getVideoTracks()[0];
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000); // host candidates are enough on a LAN
  });
}

async function start() {
  showError("");
  $("start").disabled = true;
  setState("connecting…", "connecting");
  try {
    const track = await openCamera();
    await listCameras();
    const pc = new RTCPeerConnection({ iceServers: [] });
    studio.pc = pc;
    studio.sender = pc.addTransceiver(track, { direction: "sendrecv" }).sender;
    pc.addEventListener("track", (event) => {
      $("stylized").srcObject = event.streams[0] || new MediaStream([event.track]);
      $("placeholder").hidden = true;
      $("overlay").hidden = false;
    });
    pc.addEventListener("connectionstatechange", () => {
      const s = pc.connectionState;
      setState(s === "connected" ? "live" : s, s === "connected" ? "connected" : s === "failed" ? "failed" : "connecting");
      if (s === "failed") showError("the connection to the server failed");
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    const answer = await api("api/offer", {
      method: "POST",
      json: { sdp: pc.localDescription.sdp, type: "offer", style: studio.style, alpha: Number($("alpha").value) / 100 },
    });
    studio.connectionId = answer.id;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    $("start").textContent = "Stop";
    $("start").classList.remove("primary");
    $("snapshot").disabled = false;
    $("record").disabled = false;
    if ($("mix-on").checked) await sendStyle();
  } catch (err) {
    showError(`could not start: ${err.message}`);
    setState("not connected", "idle");
    await stop();
  } finally {
    $("start").disabled = false;
  }
}

async function stop() {
  const id = studio.connectionId;
  studio.connectionId = null;
  if (studio.recording) await toggleRecord(id);
  if (studio.pc) studio.pc.close();
  studio.pc = null;
  if (id) api(`api/connections/${id}/close`, { method: "POST" }).catch(() => {});
  if (studio.camera) studio.camera.getTracks().forEach((t) => t.stop());
  studio.camera = null;
  $("stylized").srcObject = null;
  $("local").srcObject = null;
  $("placeholder").hidden = false;
  $("overlay").hidden = true;
  $("start").textContent = "Start";
  $("start").classList.add("primary");
  $("snapshot").disabled = true;
  $("record").disabled = true;
  setState("not connected", "idle");
}

async function switchCamera() {
  if (!studio.pc || !studio.sender) return;
  try {
    await studio.sender.replaceTrack(await openCamera());
  } catch (err) {
    showError(`camera: ${err.message}`);
  }
}

// -- snapshot and recording ------------------------------------------------------------------
function snapshot() {
  const video = $("stylized");
  if (!video.videoWidth) return null;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  const url = canvas.toDataURL("image/png");
  const name = `stylestream-${new Date().toISOString().replace(/[:.]/g, "-")}.png`;
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  const img = document.createElement("img");
  img.src = url;
  img.alt = "snapshot";
  link.append(img, document.createTextNode(name));
  $("captures").prepend(link);
  studio.snapshots.push(name);
  return url;
}

async function toggleRecord(id = studio.connectionId) {
  if (!id) return;
  const on = !studio.recording;
  try {
    const reply = await api(`api/connections/${id}/record`, { method: "POST", json: { on } });
    studio.recording = reply.recording;
    studio.recordStarted = on ? performance.now() : null;
    $("record").classList.toggle("on", on);
    $("record").lastChild.textContent = on ? "Stop recording" : "Record";
    $("rec-badge").hidden = !on;
    if (!on && reply.saved) {
      const link = document.createElement("a");
      link.href = withToken(`api/recordings/${encodeURIComponent(reply.saved)}`);
      link.download = reply.saved;
      const file = document.createElement("span");
      file.className = "file";
      file.textContent = `▶ ${reply.saved} (${reply.frames} frames)`;
      link.append(file, document.createTextNode(`saved on the server: ${reply.path}`));
      $("captures").prepend(link);
    }
  } catch (err) {
    showError(`record: ${err.message}`);
  }
}

// -- stats -------------------------------------------------------------------------------------
const shownTimes = [];
function onFrame(now, metadata) {
  studio.framesShown += 1;
  shownTimes.push(now);
  while (shownTimes.length && now - shownTimes[0] > 2000) shownTimes.shift();
  if (studio.config && studio.config.stamp_markers) {
    const marker = readMarker($("stylized"));
    const sent = marker === null ? undefined : studio.bench.local.get(marker);
    if (sent !== undefined) {
      studio.bench.roundTrips.push(metadata.presentationTime - sent);
      studio.bench.local.delete(marker);
    }
  }
  $("stylized").requestVideoFrameCallback(onFrame);
}

function onLocalFrame(now, metadata) {
  if (studio.config && studio.config.stamp_markers) {
    const marker = readMarker($("local"));
    if (marker !== null) {
      studio.bench.local.delete(marker); // a looping clip shows each marker again: newest wins
      studio.bench.local.set(marker, metadata.presentationTime);
      studio.bench.seen += 1;
      if (studio.bench.local.size > 512) studio.bench.local.delete(studio.bench.local.keys().next().value);
    }
  }
  $("local").requestVideoFrameCallback(onLocalFrame);
}

// The frame marker of streamer/studio/markers.py: 12 blocks of side b = max(8, width / 20) in
// the top row, block i at x = b (i + 1); bits 0-10 the counter, bit 11 their parity.
function readMarker(video) {
  const width = video.videoWidth, height = video.videoHeight;
  if (!width) return null;
  const b = Math.max(8, Math.floor(width / 20));
  if (b * 13 > width || b > height) return null;
  const canvas = $("work");
  canvas.width = b * 13;
  canvas.height = b;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, b * 13, b, 0, 0, b * 13, b);
  const pixels = ctx.getImageData(0, 0, b * 13, b).data;
  const q = Math.floor(b / 4);
  const bits = [];
  for (let i = 0; i < 12; i++) {
    let sum = 0, count = 0;
    for (let y = q; y < b - q; y++) {
      for (let x = b * (i + 1) + q; x < b * (i + 2) - q; x++) {
        const o = (y * b * 13 + x) * 4;
        sum += (pixels[o] + pixels[o + 1] + pixels[o + 2]) / 3;
        count += 1;
      }
    }
    bits.push(sum / count >= 128 ? 1 : 0);
  }
  const parity = bits.slice(0, 11).reduce((a, v) => a + v, 0) & 1;
  if (parity !== bits[11]) return null;
  return bits.slice(0, 11).reduce((a, v, i) => a + (v << i), 0);
}

let lastInbound = null;
async function pollStats() {
  if (studio.connectionId) {
    try {
      const s = await api(`api/connections/${studio.connectionId}`);
      studio.serverStatus = s;
      studio.serverStyleId = s.link_style_id;
      let rtt = null, jitterMs = null, decodeMs = null, encodeMs = null, browserDrops = 0;
      if (studio.pc) {
        const report = await studio.pc.getStats();
        report.forEach((r) => {
          if (r.type === "remote-inbound-rtp" && r.kind === "video" && r.roundTripTime !== undefined) rtt = r.roundTripTime * 1000;
          if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime !== undefined && rtt === null) rtt = r.currentRoundTripTime * 1000;
          if (r.type === "inbound-rtp" && r.kind === "video") {
            if (lastInbound && r.jitterBufferEmittedCount > lastInbound.jitterBufferEmittedCount) {
              jitterMs = (1000 * (r.jitterBufferDelay - lastInbound.jitterBufferDelay)) / (r.jitterBufferEmittedCount - lastInbound.jitterBufferEmittedCount);
            }
            if (r.framesDecoded) decodeMs = (1000 * (r.totalDecodeTime || 0)) / r.framesDecoded;
            browserDrops = r.framesDropped || 0;
            lastInbound = r;
          }
          if (r.type === "outbound-rtp" && r.kind === "video" && r.framesEncoded) encodeMs = (1000 * (r.totalEncodeTime || 0)) / r.framesEncoded;
        });
      }
      const fps = shownTimes.length > 1 ? (1000 * (shownTimes.length - 1)) / (shownTimes[shownTimes.length - 1] - shownTimes[0]) : 0;
      // Estimated round trip: encode + network RTT + server (receive -> stylized) + jitter buffer + decode.
      const parts = [encodeMs, rtt, s.link_server_ms, jitterMs, decodeMs].filter((v) => v !== null && v !== undefined);
      studio.latencyEstimateMs = parts.length ? parts.reduce((a, v) => a + v, 0) : null;
      $("s-fps").textContent = fps.toFixed(1);
      $("s-latency").textContent = studio.latencyEstimateMs === null ? "–" : `${Math.round(studio.latencyEstimateMs)} ms`;
      $("s-server").textContent = s.link_server_ms === null ? "–" : `${Math.round(s.link_server_ms)} ms`;
      $("s-drops").textContent = String(s.dropped + browserDrops);
      $("s-style").textContent = `${s.link_style_id || "–"} · strength ${Math.round((s.alpha ?? 1) * 100)}%`;
      if (studio.recording && s.recording === null && s.record_error) {
        studio.recording = null;
        $("record").classList.remove("on");
        $("record").lastChild.textContent = "Record";
        $("rec-badge").hidden = true;
        showError(`recording stopped: ${s.record_error}`);
      }
      if (studio.recording && studio.recordStarted !== null) {
        const secs = Math.floor((performance.now() - studio.recordStarted) / 1000);
        $("rec-time").textContent = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
      }
    } catch (err) {
      if (studio.connectionId) showError(`status: ${err.message}`);
    }
  }
  setTimeout(pollStats, 500);
}

// -- wiring ------------------------------------------------------------------------------------
async function init() {
  try {
    studio.config = await api("api/config");
  } catch (err) {
    showError(`cannot reach the studio server: ${err.message}`);
    return;
  }
  const c = studio.config;
  $("untrained").hidden = !c.untrained;
  studio.style = c.default_style;
  $("alpha").value = Math.round(c.alpha * 100);
  $("alpha-value").textContent = `${Math.round(c.alpha * 100)}%`;
  $("upload-note").textContent = `JPEG, PNG, WebP or BMP, up to ${c.upload_mb} MB`;
  renderGallery(c.styles);
  if (!navigator.mediaDevices || !window.RTCPeerConnection) {
    showError("this page needs a secure context (https or localhost) and a browser with WebRTC");
    $("start").disabled = true;
    return;
  }
  $("start").addEventListener("click", () => (studio.connectionId ? stop() : start()));
  $("camera").addEventListener("change", switchCamera);
  $("alpha").addEventListener("input", () => { $("alpha-value").textContent = `${$("alpha").value}%`; });
  $("alpha").addEventListener("change", sendAlpha);
  $("snapshot").addEventListener("click", snapshot);
  $("record").addEventListener("click", () => toggleRecord());
  $("upload").addEventListener("change", (e) => e.target.files[0] && upload(e.target.files[0]));
  $("mix-on").addEventListener("change", () => {
    $("mix-style").disabled = $("mix").disabled = !$("mix-on").checked;
    markGallery();
    sendStyle();
  });
  $("mix-style").addEventListener("change", () => { markGallery(); sendStyle(); });
  $("mix").addEventListener("input", () => { $("mix-value").textContent = `${$("mix").value}%`; });
  $("mix").addEventListener("change", sendStyle);
  window.addEventListener("pagehide", () => {
    if (studio.connectionId) navigator.sendBeacon(withToken(`api/connections/${studio.connectionId}/close`));
  });
  $("stylized").requestVideoFrameCallback(onFrame);
  $("local").requestVideoFrameCallback(onLocalFrame);
  listCameras().catch(() => {});
  pollStats();
  if (new URLSearchParams(location.search).get("autostart") === "1") start();
}

init();
