"""liveportrait-engine: one portrait photo in, a live expressive face out, over ZeroMQ."""

__version__ = "0.1.0"
