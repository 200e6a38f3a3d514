"""Client-side integrations with other frameworks, each installed by its own extra (e.g. ``[pipecat]``).

They talk to the engine through ``engine.client`` only (and the small shared modules: protocol constants, errors);
nothing here is imported by the engine or the bridge.
"""
