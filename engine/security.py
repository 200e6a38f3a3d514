"""Optional CURVE authentication and encryption for the engine's ZMQ sockets (pyzmq's own: zmq.auth, libzmq CURVE).

Off by default: on loopback nobody else can connect. Turn it on wherever the sockets bind beyond loopback (the
container binds 0.0.0.0):

- the engine: ``--curve-keys-dir DIR`` (``LP_CURVE_KEYS_DIR``). ``DIR/server.key_secret`` is the engine's keypair
  (or give the z85 secret in ``LP_CURVE_SECRET_KEY``); ``DIR/clients/*.key`` are the public keys of the clients
  allowed in (a ZAP handler checks each connection). Without a ``clients`` folder any client that knows the
  server's public key may connect (encrypted, not authenticated).
- a client (the bridge, the orchestrator, MediaBridge): ``load_public_key`` for the server's public key
  (``DIR/server.key`` or ``LP_CURVE_SERVER_KEY``), ``load_curve_keys`` for its own keypair
  (``DIR/clients/<name>.key_secret`` or ``LP_CURVE_CLIENT_SECRET_KEY``), then ``curve_client(sock, ...)``.

``python -m engine.security generate DIR [client ...]`` writes a server keypair and one keypair per client
(default: ``bridge``) in zmq's certificate format.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from engine.errors import ConfigError

SERVER_SECRET_ENV = "LP_CURVE_SECRET_KEY"
SERVER_PUBLIC_ENV = "LP_CURVE_SERVER_KEY"
CLIENT_SECRET_ENV = "LP_CURVE_CLIENT_SECRET_KEY"
SERVER_CERT = "server"
CLIENTS_DIR = "clients"


@dataclass(frozen=True)
class CurveKeys:
    """A CURVE keypair, z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes


def load_curve_keys(path: Path | None = None, env: Mapping[str, str] | None = None,
                    var: str = SERVER_SECRET_ENV) -> CurveKeys | None:
    """A keypair from ``env[var]`` (a z85 secret; the public half is derived) or else a ``*.key_secret`` file.

    None when neither is given; ConfigError when one is given and unusable."""
    text = (env or {}).get(var)
    if text:
        secret = text.strip().encode()
        try:
            return CurveKeys(zmq.curve_public(secret), secret)
        except (zmq.ZMQError, ValueError) as exc:
            raise ConfigError(f"{var} is not a z85 CURVE secret key (40 characters): {exc}") from None
    if path is None:
        return None
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CURVE key file {path}: {exc}") from None
    if secret is None:
        raise ConfigError(f"{path} holds no secret key (use the .key_secret file)")
    return CurveKeys(public, secret)


def load_public_key(path: Path | None = None, env: Mapping[str, str] | None = None,
                    var: str = SERVER_PUBLIC_ENV) -> bytes | None:
    """A peer's public key from ``env[var]`` (z85) or a ``*.key`` file; None when neither is given."""
    text = (env or {}).get(var)
    if text:
        return text.strip().encode()
    if path is None:
        return None
    try:
        return zmq.auth.load_certificate(path)[0]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the CURVE public key file {path}: {exc}") from None


def engine_keys(keys_dir: Path | None, env: Mapping[str, str]) -> CurveKeys | None:
    """The engine's keypair: LP_CURVE_SECRET_KEY, else DIR/server.key_secret; None: CURVE off."""
    path = keys_dir / f"{SERVER_CERT}.key_secret" if keys_dir is not None else None
    return load_curve_keys(path, env, SERVER_SECRET_ENV)


def curve_server(sock: zmq.Socket, keys: CurveKeys) -> None:
    """Make a socket a CURVE server (before bind)."""
    sock.curve_server = True
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public


def curve_client(sock: zmq.Socket, server_public: bytes, keys: CurveKeys) -> None:
    """Make a socket a CURVE client of a server whose public key is known (before connect)."""
    sock.curve_serverkey = server_public
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret


def start_authenticator(ctx: zmq.Context, keys_dir: Path | None) -> ThreadAuthenticator:
    """pyzmq's ZAP handler (its own thread): only the public keys in DIR/clients get in, or any without it."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    clients = keys_dir / CLIENTS_DIR if keys_dir is not None else None
    if clients is not None and clients.is_dir():
        auth.configure_curve(domain="*", location=str(clients))
    else:
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
    return auth


def generate(keys_dir: Path, clients: Sequence[str] = ("bridge",)) -> None:
    """A server keypair in DIR and one per client in DIR/clients (public .key and .key_secret each)."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(keys_dir, SERVER_CERT)
    for name in clients:
        (keys_dir / CLIENTS_DIR).mkdir(exist_ok=True)
        zmq.auth.create_certificates(keys_dir / CLIENTS_DIR, name)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "generate":
        print("usage: python -m engine.security generate DIR [client ...]", file=sys.stderr)
        sys.exit(2)
    generate(Path(sys.argv[2]), sys.argv[3:] or ("bridge",))
