"""The client's tests run against a real engine process (the service fixtures), plus tiny ZMQ peers for the
failure modes a real engine does not produce on demand (a silent peer, a CURVE server)."""

from tests.service.conftest import engine, peer_factory, portrait  # noqa: F401  (fixtures shared with the service tests)
