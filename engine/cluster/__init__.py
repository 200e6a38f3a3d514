"""Engine replicas on Ray, avatars pinned to the replica that holds them (docs/scaling.md).

placement.py: which avatar lives where; router.py: the one command address; replica.py: the Ray actor that owns an
engine process; service.py: replicas + router + the supervisor (faults, scaling); __main__.py: liveportrait-cluster.
Needs the ``[cluster]`` extra (ray); nothing outside this package imports it.
"""
