"""Renderers behind one interface (base.Renderer): liveportrait (the network) and offline (CPU warp)."""
