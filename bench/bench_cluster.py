"""The cluster's figures: frames per second and late ticks summed over 1, 2 and 3 replicas, the routing overhead per
command (cluster router vs the engine directly), the time from a replica's death to its avatars' first frames
elsewhere, and (for the Serve-or-Core decision in docs/scaling.md) a Ray actor call and a Ray Serve handle call.

    python bench/bench_cluster.py                     # local Ray on 127.0.0.1, CPU replicas (offline renderer)
    python bench/bench_cluster.py --seconds 10 --avatars-per-replica 3 --fps 25 --no-serve

Every replica runs the offline renderer here (no GPU): it measures the cluster's own costs and how the work spreads,
not LivePortrait's speed (bench/gpu_check.py does that). On a 2-core machine the sum over replicas cannot pass
what two cores draw: the per-core figure (fps / min(replicas, cores)) is printed beside it.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.client import ClusterFrameSubscriber, EngineClient  # noqa: E402
from engine.cluster.ray_setup import connect_ray  # noqa: E402
from engine.cluster.service import ClusterConfig, ClusterService  # noqa: E402
from tests.service.conftest import free_port  # noqa: E402


def portraits(count: int, start: int) -> list[bytes]:
    """The astronaut re-encoded at distinct JPEG qualities: one face, distinct hashes (distinct avatars)."""
    from PIL import Image

    image = Image.open(ROOT / "tests" / "data" / "astronaut.jpg").convert("RGB")
    out = []
    for i in range(start, start + count):
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=40 + i)
        out.append(buf.getvalue())
    return out


def replica_streams(service: ClusterService) -> dict[str, tuple[int, int]]:
    """avatar -> (seq, late) read from every replica directly (not the reconcile loop's cached copy)."""
    out: dict[str, tuple[int, int]] = {}
    for replica in service.status()["replicas"]:
        with EngineClient(replica["command_addr"], timeout_ms=10_000, retries=0) as c:
            for aid, s in c.health().streams.items():
                out[aid] = (int(s["seq"]), int(s["late"]))
    return out


def throughput(service: ClusterService, client: EngineClient, replicas: int, per_replica: int, fps: float,
               seconds: float, used: int) -> tuple[float, int, int]:
    """Stream per_replica avatars on each replica at fps for seconds; (frames/s, late ticks, photos used)."""
    for aid in list(service.placement.avatars):
        client.drop_source(aid)
    ids = [client.set_source(p).avatar for p in portraits(replicas * per_replica, used)]
    for aid in ids:
        client.stream(aid, fps)
    time.sleep(2.0)  # every stream running
    before, t0 = replica_streams(service), time.monotonic()
    time.sleep(seconds)
    after, t1 = replica_streams(service), time.monotonic()
    frames = sum(after[a][0] - before[a][0] for a in ids if a in after and a in before)
    late = sum(after[a][1] - before[a][1] for a in ids if a in after and a in before)
    for aid in ids:
        client.stream(aid, 0)
    return frames / (t1 - t0), late, used + len(ids)


def routing_overhead(service: ClusterService, rounds: int, per_round: int) -> tuple[list[float], list[float]]:
    """Microseconds per set_expression round trip, through the router and to the same replica directly,
    interleaved round by round."""
    aid, home = next(iter(service.placement.avatars.items()))
    direct_addr = service.placement.replicas[home.replica].command_addr
    routed, direct = [], []
    with EngineClient(service.config.command_addr, retries=0) as via, EngineClient(direct_addr, retries=0) as to:
        for _ in range(rounds):
            for client, out in ((via, routed), (to, direct)):
                started = time.perf_counter()
                for _ in range(per_round):
                    client.set_expression(aid, "happy")
                out.append((time.perf_counter() - started) / per_round * 1e6)
    return routed, direct


def failover(service: ClusterService, client: EngineClient, fps: float, used: int) -> tuple[float, float, int]:
    """Kill the replica holding the most streaming avatars; (s to the last moved avatar's first frame, s the
    mover took, avatars moved)."""
    for aid in list(service.placement.avatars):
        client.drop_source(aid)
    ids = [client.set_source(p).avatar for p in portraits(len(service.placement.live()) * 2, used)]
    for aid in ids:
        client.stream(aid, fps)
    time.sleep(1.0)
    victim = max(service.status()["replicas"], key=lambda r: len(r["avatars"]))
    lost = set(victim["avatars"]) & set(ids)
    seen: set[str] = set()
    with ClusterFrameSubscriber(service.config.command_addr, refresh_s=0.5) as sub:
        killed = time.monotonic()
        os.kill(victim["actor_pid"], signal.SIGKILL)
        while lost - seen and time.monotonic() - killed < 60:
            frame = sub.recv(timeout_ms=500)
            if frame is not None and frame.avatar in lost and frame.epoch >= 1:
                seen.add(frame.avatar)
        took = time.monotonic() - killed
    mover = service.failovers[-1]["seconds"] if service.failovers else float("nan")
    return took if seen == lost else float("inf"), mover, len(lost)


def ray_call_us(ray: ModuleType, calls: int) -> list[float]:
    @ray.remote(num_cpus=0)
    class Echo:
        def echo(self, x: int) -> int:
            return x

    actor = Echo.remote()
    ray.get(actor.echo.remote(0))
    out = []
    for _ in range(5):
        started = time.perf_counter()
        for i in range(calls):
            ray.get(actor.echo.remote(i))
        out.append((time.perf_counter() - started) / calls * 1e6)
    ray.kill(actor)
    return out


def serve_call_us(calls: int) -> list[float]:
    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class EchoDeployment:
        def __call__(self, x: int) -> int:
            return x

    serve.start(http_options={"location": "NoServer"})
    handle = serve.run(EchoDeployment.bind(), name="bench-echo", route_prefix=None)
    handle.remote(0).result()
    out = []
    for _ in range(5):
        started = time.perf_counter()
        for i in range(calls):
            handle.remote(i).result()
        out.append((time.perf_counter() - started) / calls * 1e6)
    serve.shutdown()
    return out


def fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):8.0f}  min {min(values):8.0f}  max {max(values):8.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-replicas", type=int, default=3)
    ap.add_argument("--avatars-per-replica", type=int, default=3)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-serve", action="store_true", help="skip the Ray Serve handle measurement")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    ray = connect_ray(None, "127.0.0.1", num_cpus=args.max_replicas + 1, object_store_mb=100)
    models = Path(tempfile.mkdtemp()) / "models"
    models.mkdir()
    service = ClusterService(ClusterConfig(
        command_addr=f"tcp://127.0.0.1:{free_port()}", frame_addr=None, replicas=1, cpus_per_replica=1.0,
        engine_env={"LP_MODELS_DIR": str(models), "LP_LOG_LEVEL": "WARNING"}, replace_dead=False))
    print(f"machine: {cores} cores (shared: loadavg {os.getloadavg()[0]:.1f}); ray {ray.__version__}; "
          f"offline renderer; {args.avatars_per_replica} avatars per replica at {args.fps:g} fps, "
          f"{args.seconds:g} s per point", flush=True)
    try:
        service.start()
        used = 0
        with EngineClient(service.config.command_addr, timeout_ms=120_000, retries=0) as client:
            print("replicas  frames/s (sum)  late ticks  offered/s  frames/s per busy core")
            for k in range(1, args.max_replicas + 1):
                while len(service.placement.live()) < k:
                    service.add_replica()
                fps, late, used = throughput(service, client, k, args.avatars_per_replica, args.fps, args.seconds,
                                             used)
                offered = k * args.avatars_per_replica * args.fps
                print(f"{k:8d}  {fps:14.1f}  {late:10d}  {offered:9.0f}  {fps / min(k, cores):10.1f}", flush=True)
            routed, direct = routing_overhead(service, rounds=7, per_round=100)
            print(f"set_expression round trip, us: via the cluster router {fmt(routed)}")
            print(f"                               direct to the replica  {fmt(direct)}")
            print(f"routing overhead per command: {statistics.median(routed) - statistics.median(direct):.0f} us "
                  "(median minus median)")
            took, mover, moved = failover(service, client, args.fps, used)
            print(f"replica killed (SIGKILL) -> its {moved} avatar(s)' first frames elsewhere: {took:.2f} s "
                  f"(mover: death noticed to avatars placed again {mover:.2f} s)")
        actor = ray_call_us(ray, 300)
        print(f"Ray actor method call round trip, us:   {fmt(actor)}")
        if not args.no_serve:
            try:
                serve_us = serve_call_us(300)
                print(f"Ray Serve handle call round trip, us:   {fmt(serve_us)}")
            except Exception as exc:  # Serve is the decision's comparison only; the cluster does not need it
                print(f"Ray Serve handle call: not measured ({type(exc).__name__}: {exc})")
    finally:
        service.stop()
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
