"""Change a running stream without restarting it: a ZeroMQ REQ/REP control endpoint.

Requests and replies are single-part UTF-8 JSON objects (never pickle)::

    {"command": "set-style", "styles": ["/abs/a.jpg"], "weights": null}
    -> {"ok": true, "style_id": "a", "encode_ms": 41.0}   or   {"ok": false, "error": "..."}

- :mod:`~streamer.zeromq.control.protocol`: one frozen request type per command (checked at
  construction, ``from_json`` / ``to_json``), the command table, the limits and errors.
- :mod:`~streamer.zeromq.control.server`: :class:`ControlServer` (the REP socket in a thread)
  dispatching through :class:`Handlers` (command -> request type + handler).
- :mod:`~streamer.zeromq.control.targets`: ``live``'s handlers on a :class:`StyleTarget`.
- :mod:`~streamer.zeromq.control.client`: :func:`send_request` / :func:`send_command`.
"""

from streamer.zeromq.control.client import (
    send_command,
    send_request,
)
from streamer.zeromq.control.protocol import (
    COMMANDS,
    DEFAULT_CONTROL_ENDPOINT,
    MAX_REQUEST_BYTES,
    MAX_STYLES_PER_REQUEST,
    ClearRegions,
    ControlError,
    ControlRequest,
    ControlRequestError,
    ForStream,
    GetStatus,
    SetAlpha,
    SetRegions,
    SetStyle,
    parse_request,
)
from streamer.zeromq.control.server import ControlServer, Handlers, Route
from streamer.zeromq.control.targets import StyleTarget, live_handlers

__all__ = [
    "COMMANDS",
    "DEFAULT_CONTROL_ENDPOINT",
    "MAX_REQUEST_BYTES",
    "MAX_STYLES_PER_REQUEST",
    "ClearRegions",
    "ControlError",
    "ControlRequest",
    "ControlRequestError",
    "ControlServer",
    "ForStream",
    "GetStatus",
    "Handlers",
    "Route",
    "SetAlpha",
    "SetRegions",
    "SetStyle",
    "StyleTarget",
    "live_handlers",
    "parse_request",
    "send_command",
    "send_request",
]
