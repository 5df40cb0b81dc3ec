"""CURVE keys for encrypted, authenticated ZeroMQ streams (pyzmq's ZPL certificate files).

One directory holds everything a publisher and its viewers need::

    DIR/server.key              publisher's public key      -> give to every subscriber
    DIR/server.key_secret       publisher's secret key      -> stays with the publisher
    DIR/client.key              a subscriber's public key
    DIR/client.key_secret       a subscriber's secret key   -> give to that subscriber only
    DIR/authorized_clients/     public keys the publisher accepts (one ``NAME.key`` each)

The publisher (``--curve-keys DIR``) encrypts with its secret key and accepts only subscribers
whose public key is in ``authorized_clients/``; a subscriber (``--curve-keys DIR``) needs
``server.key`` and its own ``client.key_secret``. A subscriber without them receives nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from adaattn_video.errors import StylestreamError

log = logging.getLogger(__name__)

SERVER_NAME = "server"
CLIENT_NAME = "client"
AUTHORIZED_DIR = "authorized_clients"
# every file generate_keys writes, relative to its folder
KEY_FILES = (
    *(f"{name}.key{suffix}" for name in (SERVER_NAME, CLIENT_NAME) for suffix in ("", "_secret")),
    f"{AUTHORIZED_DIR}/{CLIENT_NAME}.key",
)


class CurveKeyError(StylestreamError, FileNotFoundError):
    """CURVE key files are missing or unreadable."""


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    authorized_dir: Path


@dataclass(frozen=True)
class ClientKeys:
    server_public: bytes
    public: bytes
    secret: bytes


def _require_curve() -> None:
    if not zmq.has("curve"):
        raise CurveKeyError(
            "this libzmq was built without CURVE support; install a pyzmq wheel (it bundles "
            "libsodium-backed CURVE)"
        )


def generate_keys(directory: str | Path, *, overwrite: bool = False) -> Path:
    """Create a server key pair and one client key pair in ``directory`` (see module doc).

    Refuses to overwrite existing keys unless ``overwrite``; secret files are made 0600.
    """
    _require_curve()
    directory = Path(directory)
    existing = [
        directory / f"{name}.key{suffix}"
        for name in (SERVER_NAME, CLIENT_NAME)
        for suffix in ("", "_secret")
        if (directory / f"{name}.key{suffix}").exists()
    ]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists; pass --overwrite to replace the keys in {directory}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    authorized = directory / AUTHORIZED_DIR
    authorized.mkdir(exist_ok=True)
    for name in (SERVER_NAME, CLIENT_NAME):
        _public, secret = zmq.auth.create_certificates(directory, name)
        os.chmod(secret, 0o600)
    shutil.copyfile(directory / f"{CLIENT_NAME}.key", authorized / f"{CLIENT_NAME}.key")
    return directory


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise CurveKeyError(
            f"CURVE key file {path} does not exist; create keys with `stylestream keys generate DIR`"
        )
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise CurveKeyError(f"{path} is not a readable ZeroMQ certificate: {err}") from err
    if secret and secret_key is None:
        raise CurveKeyError(f"{path} holds no secret key")
    return public, secret_key


def load_server_keys(directory: str | Path) -> ServerKeys:
    _require_curve()
    directory = Path(directory)
    public, secret = _load(directory / f"{SERVER_NAME}.key_secret", secret=True)
    authorized = directory / AUTHORIZED_DIR
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise CurveKeyError(
            f"{authorized} holds no client public keys (*.key): no subscriber could connect; "
            "copy each subscriber's public key there"
        )
    assert secret is not None
    return ServerKeys(public=public, secret=secret, authorized_dir=authorized)


def load_client_keys(directory: str | Path) -> ClientKeys:
    _require_curve()
    directory = Path(directory)
    server_public, _ = _load(directory / f"{SERVER_NAME}.key", secret=False)
    public, secret = _load(directory / f"{CLIENT_NAME}.key_secret", secret=True)
    assert secret is not None
    return ClientKeys(server_public=server_public, public=public, secret=secret)


def configure_curve_server(
    socket: zmq.Socket, context: zmq.Context, directory: str | Path
) -> ThreadAuthenticator:
    """Make ``socket`` (before bind) a CURVE server that accepts only authorized clients.

    Returns the running authenticator; stop it after closing the socket. It handles every
    socket of ``context`` that uses CURVE, so give the server its own context.
    """
    keys = load_server_keys(directory)
    authenticator = ThreadAuthenticator(context, log=log.getChild("auth"))
    authenticator.start()
    authenticator.configure_curve(domain="*", location=str(keys.authorized_dir))
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_server = True
    return authenticator


def configure_curve_client(socket: zmq.Socket, directory: str | Path) -> None:
    """Make ``socket`` (before connect) a CURVE client of the server whose key is in ``directory``."""
    keys = load_client_keys(directory)
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    socket.curve_serverkey = keys.server_public
