"""``stylestream studio``: the browser's camera, stylized by the server, back in real time over
WebRTC. Each browser connection is a push-fed stream of the serve engine
(:mod:`streamer.serve`), so every viewer is batched on the one model with its own style.

- :mod:`~streamer.studio.config`: the settings and the engine settings derived from them.
- :mod:`~streamer.studio.app`: the aiohttp application (page, JSON API, signalling, token check).
- :mod:`~streamer.studio.server`: running it (engine, HTTPS, URL with the token, signals).
- :mod:`~streamer.studio.connection`: one browser: peer connection, tracks, stream, recording.
- :mod:`~streamer.studio.styles`: the gallery and safe uploads.
- :mod:`~streamer.studio.tls`: a generated self-signed certificate, the access token.
- :mod:`~streamer.studio.markers`: frame counters drawn into pictures (round-trip latency).
- :mod:`~benchmarks.studio_latency`: ``bench studio`` (a real headless Chromium with a fake
  camera, driven with Playwright).

The page is ``streamer/web/studio.html`` (+ ``studio.js``, ``studio.css``), plain HTML/JS.
"""
