"""Send a control request to a running ``live`` / ``serve`` and return its reply.

:func:`send_request` sends a request object (:mod:`~streamer.zeromq.control.protocol`: checked
when it was built, so a mistake never leaves this machine); :func:`send_command` sends a JSON
object as it is (the server checks it again). Style and region paths are read by the SERVER:
:meth:`SetStyle.from_paths <streamer.zeromq.control.protocol.SetStyle.from_paths>` and
:meth:`SetRegions.from_specs <streamer.zeromq.control.protocol.SetRegions.from_specs>` make
them absolute first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import zmq

from streamer.zeromq.control.protocol import ControlError, Json
from streamer.zeromq.endpoints import check_endpoint


class Request(Protocol):
    """A request object: a ControlRequest, or a ForStream aimed at a serve stream."""

    def to_json(self) -> Json: ...


def send_request(
    endpoint: str,
    request: Request,
    *,
    timeout_s: float = 10.0,
    curve_keys_dir: str | Path | None = None,
) -> Json:
    """Send one request object; the reply, or :class:`ControlError` (no reply, or refused)."""
    return send_command(
        endpoint, request.to_json(), timeout_s=timeout_s, curve_keys_dir=curve_keys_dir
    )


def send_command(
    endpoint: str,
    request: Mapping[str, Any],
    *,
    timeout_s: float = 10.0,
    curve_keys_dir: str | Path | None = None,
) -> Json:
    """Send one JSON object and return the reply; :class:`ControlError` on no reply within
    ``timeout_s`` or an error reply.

    A fresh REQ socket per request: a lost reply never leaves a socket stuck in REQ's
    send/receive lockstep.
    """
    check_endpoint(endpoint)
    context = zmq.Context()
    socket = context.socket(zmq.REQ)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
        socket.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))
        if curve_keys_dir is not None:
            from streamer.zeromq.curve import configure_curve_client

            configure_curve_client(socket, curve_keys_dir)
        socket.connect(endpoint)
        try:
            socket.send(json.dumps(dict(request)).encode())
            reply_bytes = socket.recv()
        except zmq.Again as err:
            raise ControlError(
                f"no reply from {endpoint} within {timeout_s:.1f} s: is `stylestream live` "
                "running with this --control endpoint?"
            ) from err
    finally:
        socket.close(linger=0)
        context.term()
    return _reply(endpoint, reply_bytes)


def _reply(endpoint: str, data: bytes) -> Json:
    try:
        reply = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ControlError(f"{endpoint} answered with something that is not JSON") from err
    if not isinstance(reply, dict):
        raise ControlError(f"{endpoint} answered with {type(reply).__name__}, not an object")
    if not reply.get("ok"):
        raise ControlError(f"{endpoint} refused: {reply.get('error', 'no reason given')}")
    return reply
