"""LivePortrait in our own PyTorch: networks (one file each), keypoint maths, strict weight loading."""

from engine.liveportrait.core import LivePortrait, SourceEncoding

__all__ = ["LivePortrait", "SourceEncoding"]
