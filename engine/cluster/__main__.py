"""liveportrait-cluster: engine replicas on Ray behind one command address, and the HTTP bridge in front of it.

  liveportrait-cluster --replicas 2                      # a local Ray instance on 127.0.0.1, CPU replicas
  liveportrait-cluster --address 10.0.0.5:6379 --replicas 8 --gpus-per-replica 1 \\
      --command-addr tcp://0.0.0.0:5555 --frame-addr tcp://0.0.0.0:5556 --host 0.0.0.0   # join a Ray cluster

Arguments after ``--`` go to every replica's engine (``-- --renderer offline``); LP_* variables reach them too.
A CPU-only replica reserves half a CPU (``--cpus-per-replica``), one with a GPU a whole one; replicas that cannot
fit the Ray cluster are refused at once, in one line naming what was asked, what is there and the flag to change.
The bridge is the one of `make run` (python -m bridge), pointed at the cluster's command and frame addresses, so
the HTTP contract is the bridge's, byte for byte. SIGINT/SIGTERM stop the bridge, the replicas, then Ray.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from engine.cluster import capacity
from engine.cluster.ray_setup import connect_ray
from engine.cluster.service import ClusterConfig, ClusterService, ClusterStartError, local_addr

log = logging.getLogger("engine.cluster")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    argv = list(argv)
    engine_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="liveportrait-cluster", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--address", default=None, help="join this Ray cluster (host:port, or 'auto'); "
                                                    "default: start a local Ray instance on --node-ip-address")
    ap.add_argument("--replicas", type=int, default=1, help="engine replicas to run (default 1)")
    ap.add_argument("--gpus-per-replica", type=float, default=0.0,
                    help="GPUs each replica asks Ray for (0 on a CPU machine; 0.5 puts two on one GPU)")
    ap.add_argument("--cpus-per-replica", type=float, default=None,
                    help=f"CPUs each replica asks Ray for (default {capacity.CPU_ONLY_CPUS:g} without a GPU, "
                         f"{capacity.WITH_GPU_CPUS:g} with one)")
    ap.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    ap.add_argument("--num-gpus", type=int, default=None, help="GPUs of a local Ray instance (default: Ray's count)")
    ap.add_argument("--object-store-mb", type=int, default=200, help="object store of a local Ray instance")
    ap.add_argument("--node-ip-address", default="127.0.0.1",
                    help="the local Ray instance's address (default 127.0.0.1: nothing leaves the machine)")
    ap.add_argument("--command-addr", default="tcp://127.0.0.1:5555", help="the cluster's ZMQ command address")
    ap.add_argument("--frame-addr", default="tcp://127.0.0.1:5556",
                    help="a frame relay over every replica ('' for none: subscribe to each replica's frame_addr)")
    ap.add_argument("--host", default="127.0.0.1", help="HTTP listen address")
    ap.add_argument("--port", type=int, default=8081, help="HTTP port (0: no HTTP bridge)")
    ap.add_argument("--log-level", default="INFO")
    return ap.parse_args(argv), engine_args


def refuse(reason: str) -> int:
    print(f"liveportrait-cluster: {reason}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args, engine_args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.replicas < 1:
        return refuse("--replicas must be at least 1")
    if importlib.util.find_spec("ray") is None:
        return refuse('needs Ray, which the [cluster] extra installs: pip install "liveportrait-engine[cluster]"')
    config = ClusterConfig(command_addr=args.command_addr, frame_addr=args.frame_addr or None,
                           replicas=args.replicas, gpus_per_replica=args.gpus_per_replica,
                           cpus_per_replica=args.cpus_per_replica, engine_args=engine_args)
    ask = capacity.Ask(args.replicas, config.cpus, args.gpus_per_replica)
    if args.address is None and (args.gpus_per_replica == 0 or args.num_gpus is not None):
        reason = capacity.shortfall(ask, capacity.local_nodes(args.num_cpus, args.num_gpus))
        if reason is not None:  # known before Ray starts (which takes seconds): say it now
            return refuse(reason)
    ray = connect_ray(args.address, args.node_ip_address, args.num_cpus, args.num_gpus, args.object_store_mb)
    service = ClusterService(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bridge: subprocess.Popen[bytes] | None = None
    try:
        try:
            service.start()
        except (capacity.CapacityError, ClusterStartError) as exc:
            return refuse(str(exc))
        if args.port:
            bridge = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--host", args.host, "--port", str(args.port),
                 "--engine-addr", local_addr(args.command_addr),
                 "--frame-addr", local_addr(args.frame_addr or "tcp://127.0.0.1:5556")],
                start_new_session=True, env=dict(os.environ))
        print(f"liveportrait-cluster: {args.replicas} replica(s); commands on {args.command_addr}"
              + (f", HTTP on http://{args.host}:{args.port}" if args.port else "") + "; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            if bridge is not None and bridge.poll() is not None:
                log.error("the bridge exited with %s", bridge.returncode)
                return 1
            control = service.health()
            if not (control["router"] and control["reconcile"]):
                log.error("the cluster's control plane stopped: %s", control)
                return 1
        return 0
    finally:
        if bridge is not None and bridge.poll() is None:
            bridge.terminate()
            bridge.wait(timeout=15)
        service.stop()
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
