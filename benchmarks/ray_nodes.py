"""Throughput of --engine ray on one node and on two, on one machine, full-size ResNet-50.

    python benchmarks/ray_nodes.py [--images 300] [--nodes 1 2] [--rounds 1] [--corpus DIR]

Starts a local Ray cluster of N nodes (``ray.cluster_utils.Cluster``: one CPU, one model
actor and 150 MB of object store each, as in tests/test_ray_engine.py) and classifies the same
ImageNet-size JPEGs with bench.py's random-weight ResNet-50 (built and cached in
benchmarks/_work/ on first use, as is bench.py's corpus, which needs scikit-image; --corpus
takes any folder of JPEGs). Each job is timed whole, actors starting and loading the model
included; for the steady rate, a job of one batch per actor, timed on the same cluster, is
taken off.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

OBJECT_STORE = 150 * 1024**2
BATCH = 8


def run_job(address: str, model: Path, images: list[Path], nodes: int) -> float:
    from resnet_cli import collect_inputs
    from resnet_cli.pipeline.ray_job import RayPlacement, classify_on_ray

    placement = RayPlacement(
        actors=nodes,
        actor_options={"num_cpus": 0.5, "resources": {"model_slot": 1}},
        decode_options={"num_cpus": 0.5},
    )
    with tempfile.TemporaryDirectory() as out:
        run = classify_on_ray(
            collect_inputs([str(p) for p in images]),
            out,
            model=str(model),
            model_options={"offline": True},
            batch_size=BATCH,
            address=address,
            placement=placement,
        )
    assert run.images == len(images) and run.failed == 0, run
    return run.seconds


def measure(nodes: int, model: Path, images: list[Path], rounds: int) -> tuple[float, float]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "resources": {"model_slot": 1},
            "object_store_memory": OBJECT_STORE,
            "include_dashboard": False,
        },
    )
    try:
        for _ in range(nodes - 1):
            cluster.add_node(
                num_cpus=1, resources={"model_slot": 1}, object_store_memory=OBJECT_STORE
            )
        cluster.wait_for_nodes()
        whole, startup = [], []
        for _ in range(rounds):
            startup.append(run_job(cluster.address, model, images[: BATCH * nodes], nodes))
            whole.append(run_job(cluster.address, model, images, nodes))
        return min(whole), min(startup)
    finally:
        cluster.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--model", type=Path, help="default: bench.py's random ResNet-50")
    parser.add_argument("--corpus", type=Path, help="a folder of JPEGs; default: bench.py's")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import bench

    model = args.model or bench.build_model(bench.MODEL_DIR)
    if args.corpus:
        corpus = sorted(args.corpus.glob("*.jpg"))
        if not corpus:
            sys.exit(f"no JPEGs in {args.corpus}")
        # Listed again where there are fewer files than images asked for.
        images = (corpus * (args.images // len(corpus) + 1))[: args.images]
    else:
        bench.require_scikit_image()
        images = bench.build_corpus(bench.IMAGENET, args.images)
    print(f"| nodes | {len(images)} images, whole job | rate | steady rate |")
    print("| ---: | ---: | ---: | ---: |")
    for nodes in args.nodes:
        started = time.perf_counter()
        whole, startup = measure(nodes, model, images, args.rounds)
        steady = (len(images) - BATCH * nodes) / max(whole - startup, 1e-9)
        took = time.perf_counter() - started
        print(
            f"| {nodes} | {whole:.1f} s | {len(images) / whole:.2f} img/s | {steady:.2f} img/s |"
            f"  (cluster and all rounds: {took:.0f} s)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
