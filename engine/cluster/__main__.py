"""liveportrait-cluster: engine replicas on Ray behind one command address, and the HTTP bridge in front of it.

  liveportrait-cluster --replicas 2                      # a local Ray instance on 127.0.0.1, CPU replicas
  liveportrait-cluster --address 10.0.0.5:6379 --replicas 8 --gpus-per-replica 1 \\
      --command-addr tcp://0.0.0.0:5555 --frame-addr tcp://0.0.0.0:5556 --host 0.0.0.0   # join a Ray cluster

Arguments after ``--`` go to every replica's engine (``-- --renderer offline``); LP_* variables reach them too.
The bridge is the one of `make run` (python -m bridge), pointed at the cluster's command and frame addresses, so
the HTTP contract is the bridge's, byte for byte. SIGINT/SIGTERM stop the bridge, the replicas, then Ray.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence

from engine.cluster.ray_setup import connect_ray
from engine.cluster.service import ClusterConfig, ClusterService

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
    ap.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs each replica asks Ray for")
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


def main(argv: Sequence[str] | None = None) -> int:
    args, engine_args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.replicas < 1:
        print("liveportrait-cluster: --replicas must be at least 1", file=sys.stderr)
        return 2
    ray = connect_ray(args.address, args.node_ip_address, args.num_cpus, args.num_gpus, args.object_store_mb)
    service = ClusterService(ClusterConfig(args.command_addr, args.frame_addr or None, args.replicas,
                                           args.gpus_per_replica, args.cpus_per_replica, engine_args))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bridge: subprocess.Popen[bytes] | None = None
    try:
        service.start()
        if args.port:
            bridge = subprocess.Popen(
                [sys.executable, "-m", "bridge", "--host", args.host, "--port", str(args.port),
                 "--engine-addr", args.command_addr.replace("0.0.0.0", "127.0.0.1"),
                 "--frame-addr", (args.frame_addr or "tcp://127.0.0.1:5556").replace("0.0.0.0", "127.0.0.1")],
                start_new_session=True, env=dict(os.environ))
        print(f"liveportrait-cluster: {args.replicas} replica(s); commands on {args.command_addr}"
              + (f", HTTP on http://{args.host}:{args.port}" if args.port else "") + "; Ctrl-C stops", flush=True)
        while not stop.wait(0.5):
            if bridge is not None and bridge.poll() is not None:
                log.error("the bridge exited with %s", bridge.returncode)
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
