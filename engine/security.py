"""Optional CURVE authentication and encryption for the engine's ZMQ sockets (pyzmq's own: zmq.auth, libzmq CURVE).

Off by default: on loopback nobody else can connect. Turn it on wherever the sockets bind beyond loopback (the
container binds 0.0.0.0):

- the engine: ``--curve-keys-dir DIR`` (``LP_CURVE_KEYS_DIR``). ``DIR/server.key_secret`` is the engine's keypair
  (or give the z85 secret in ``LP_CURVE_SECRET_KEY``); ``DIR/clients/*.key`` are the public keys of the clients
  allowed in (a ZAP handler checks each connection). Without a ``clients`` folder any client that knows the
  server's public key may connect (encrypted, not authenticated).
- a client (the bridge, the orchestrator, MediaBridge, engine/client/): ``CurveClientKeys`` = the server's
  public key + the client's own keypair, each given either as a z85 key or as a zmq.auth certificate file:

  | what | z85 key (env) | certificate file (env) |
  |---|---|---|
  | engine's public key | ``LP_CURVE_SERVER_KEY`` | ``LP_CURVE_SERVER_KEY_FILE`` (``DIR/server.key``) |
  | client's keypair | ``LP_CURVE_CLIENT_SECRET_KEY`` | ``LP_CURVE_CLIENT_SECRET_FILE`` (``clients/NAME.key_secret``) |

  A key wins over a file; neither: CURVE off; one half without the other: ConfigError.

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
SERVER_PUBLIC_FILE_ENV = "LP_CURVE_SERVER_KEY_FILE"
CLIENT_SECRET_ENV = "LP_CURVE_CLIENT_SECRET_KEY"
CLIENT_SECRET_FILE_ENV = "LP_CURVE_CLIENT_SECRET_FILE"
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


@dataclass(frozen=True)
class CurveClientKeys:
    """What a client socket needs for CURVE: the engine's public key and the client's own keypair (z85)."""

    server_public: bytes
    keys: CurveKeys

    @classmethod
    def generate(cls, server_public: bytes) -> CurveClientKeys:
        """A fresh client keypair (the engine must then accept any client, or be given this public key)."""
        public, secret = zmq.curve_keypair()
        return cls(server_public, CurveKeys(public, secret))

    @classmethod
    def from_files(cls, server_key_file: str | Path, client_secret_file: str | Path) -> CurveClientKeys:
        """From zmq.auth certificate files: the engine's ``server.key`` and the client's ``.key_secret``."""
        found = client_keys(server_key_file=server_key_file, client_secret_file=client_secret_file)
        assert found is not None  # both given
        return found

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CurveClientKeys | None:
        """From the LP_CURVE_* variables in the module docstring's table; None when none is set."""
        return client_keys(env.get(SERVER_PUBLIC_ENV, ""), env.get(SERVER_PUBLIC_FILE_ENV, ""),
                           env.get(CLIENT_SECRET_ENV, ""), env.get(CLIENT_SECRET_FILE_ENV, ""))

    def apply(self, sock: zmq.Socket) -> None:
        """Make ``sock`` a CURVE client (before connect)."""
        curve_client(sock, self.server_public, self.keys)


def client_keys(server_key: str = "", server_key_file: str | Path = "", client_secret_key: str = "",
                client_secret_file: str | Path = "") -> CurveClientKeys | None:
    """A client's CURVE keys from z85 keys or certificate files (a key wins); None when nothing is given.

    Half a configuration is refused (ConfigError) rather than silently connecting without CURVE."""
    env = {SERVER_PUBLIC_ENV: server_key, CLIENT_SECRET_ENV: client_secret_key}
    server = load_public_key(Path(server_key_file) if server_key_file else None, env)
    keys = load_curve_keys(Path(client_secret_file) if client_secret_file else None, env, CLIENT_SECRET_ENV)
    if server is None and keys is None:
        return None
    if server is None or keys is None:
        missing = "the engine's public key" if server is None else "the client's secret key"
        raise ConfigError(f"CURVE half configured: {missing} is missing ({SERVER_PUBLIC_ENV} / "
                          f"{SERVER_PUBLIC_FILE_ENV} and {CLIENT_SECRET_ENV} / {CLIENT_SECRET_FILE_ENV})")
    return CurveClientKeys(server, keys)


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
