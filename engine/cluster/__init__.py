"""Engine replicas on Ray, avatars pinned to the replica that holds them (docs/scaling.md).

placement.py: which avatar lives where; router.py (+ backends.py, routing.py, relay.py): the one command address
and the frame relay; replica.py + engine_proc.py: the Ray actor that owns an engine process; reconcile.py: the one
loop that starts, counts, replaces and stops replicas; mover.py: avatars moved after a death or off a draining
replica; capacity.py: do the replicas fit; service.py: all of it together; __main__.py: liveportrait-cluster;
front.py + serve_app.py: the RayService's control plane. Needs the ``[cluster]`` extra (ray); nothing outside this
package imports it.
"""
