"""--engine ray against a real two-node Ray cluster started on this machine: the same records
as the local engine (bad files included) with both nodes classifying, and a run killed midway
then resumed gives every input exactly once.

The cluster is small (one CPU and 150 MB of object store per node, no dashboard, no usage
stats) and every test has a time limit, so a hung cluster cannot hang CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.dataset
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install '.[ray]'")

from conftest import scene
from resnet_cli import Source, classify, collect_inputs, load_classifier
from resnet_cli.output.shards import read_folder_meta, read_ray_output, shard_paths
from resnet_cli.output.writers import read_records, record_schema
from resnet_cli.pipeline.ray_job import RayPlacement, classify_on_ray
from resnet_cli.results import Record

pytestmark = pytest.mark.timeout(900, method="thread")

OBJECT_STORE = 150 * 1024**2
# Each node offers one model slot and each model actor takes one, so the two actors land on
# different nodes; fractional CPUs leave room beside them for the decode and write tasks.
ONE_ACTOR_PER_NODE = RayPlacement(
    actors=2,
    actor_options={"num_cpus": 0.5, "resources": {"model_slot": 1}},
    decode_options={"num_cpus": 0.5},
)


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, as separate raylets on this machine."""
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        # One auth mode for the cluster and every driver (subprocesses inherit it).
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.delenv("RAY_ADDRESS", raising=False)
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "resources": {"head": 1, "model_slot": 1},
                "object_store_memory": OBJECT_STORE,
                "include_dashboard": False,
            },
        )
        try:
            cluster.add_node(
                num_cpus=1,
                resources={"worker": 1, "model_slot": 1},
                object_store_memory=OBJECT_STORE,
            )
            cluster.wait_for_nodes()
            yield cluster
        finally:
            cluster.shutdown()


@pytest.fixture
def inputs(tmp_path: Path) -> list[str | Source]:
    """JPEGs and PNGs of assorted sizes (one big enough for DCT-downscaled decoding), a
    corrupt file, an empty file, a missing one, and an image given as encoded bytes (as
    dataset rows are)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, (w, h) in enumerate([(320, 240), (300, 400), (500, 375), (256, 256), (1200, 900)]):
        scene(w, h, seed=i).save(photos / f"{i:02d}.{'png' if i == 3 else 'jpg'}")
    for i in range(5, 12):
        scene(160 + 8 * i, 120, seed=i).save(photos / f"{i:02d}.jpg")
    # Last, so the first shard (a block of 8 inputs) has no failure: its error column is null.
    (photos / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (photos / "zz-empty.png").write_bytes(b"")
    encoded = Source(name="<row 7>", data=(photos / "02.jpg").read_bytes())
    return [str(photos), str(tmp_path / "missing.jpg"), encoded]


def on_both_nodes(cluster: Any, sources: Any, out: Path, model: Path, batch_size: int) -> Any:
    """``classify_on_ray`` at top 3, offline, one model actor on each node."""
    return classify_on_ray(
        sources,
        out,
        model=str(model),
        model_options={"offline": True},
        top_k=3,
        batch_size=batch_size,
        address=cluster.address,
        placement=ONE_ACTOR_PER_NODE,
    )


def assert_same_records(got: list[Record], want: list[Record]) -> None:
    assert [r.input for r in got] == [r.input for r in want]
    for ray_record, local in zip(got, want, strict=True):
        assert ray_record.error == local.error, ray_record.input
        assert [p.label for p in ray_record.predictions] == [p.label for p in local.predictions]
        assert [p.class_id for p in ray_record.predictions] == [
            p.class_id for p in local.predictions
        ]
        for ours, theirs in zip(ray_record.predictions, local.predictions, strict=True):
            assert ours.score == pytest.approx(theirs.score, abs=1e-4)


def test_ray_gives_the_local_records_with_both_nodes_classifying(
    cluster, tiny_model: Path, inputs: list[str | Source], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    *paths, encoded = inputs
    run = on_both_nodes(cluster, [*collect_inputs(paths), encoded], out, tiny_model, 2)
    local = list(classify(load_classifier(str(tiny_model), device="cpu"), inputs, top_k=3))
    assert_same_records(read_ray_output(out), local)
    assert sum(not r.ok for r in local) == 3  # the corrupt, the empty and the missing file
    assert (run.images, run.failed, run.nodes) == (len(local), 3, 2)
    # Ray wrote every shard with the one schema: those without a failure (error all null)
    # read back as one table with the others.
    shards = shard_paths(out)
    assert len(shards) > 1 and all(p.endswith(".parquet") for p in shards)
    assert any(
        pq.read_table(p).column("error").null_count == pq.read_metadata(p).num_rows for p in shards
    )
    table = pyarrow.dataset.dataset(shards, format="parquet").to_table()
    assert table.schema.remove_metadata() == record_schema(indexed=True)
    assert sorted(table.column("index").to_pylist()) == list(range(len(local)))


def _ray_command(
    model: Path, folder: Path, out: Path, address: str, *extra: str, batch: str = "1"
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "resnet_cli",
        "--engine",
        "ray",
        "--ray-address",
        address,
        "-m",
        str(model),
        "--offline",
        "-q",
        "-k",
        "2",
        "-b",
        batch,
        "-f",
        "jsonl",
        str(folder),
        "-o",
        str(out),
        *extra,
    ]


def test_a_killed_run_resumed_gives_every_input_once(
    cluster, tiny_model: Path, tmp_path: Path
) -> None:
    photos = tmp_path / "many"
    photos.mkdir()
    for i in range(40):
        scene(120 + i, 90, seed=i).save(photos / f"{i:03d}.jpg")
    (photos / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    # A name that is not UTF-8 reaches the decode task, and the merged file, unchanged.
    (photos / os.fsdecode(b"\xff-odd.jpg")).write_bytes((photos / "000.jpg").read_bytes())
    expected = sorted(str(p) for p in photos.iterdir())
    out = tmp_path / "results"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    driver = subprocess.Popen(
        _ray_command(tiny_model, photos, out, cluster.address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 600
    while not any(os.path.getsize(p) for p in shard_paths(out)):
        if driver.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {driver.stderr.read()!r}")
        if time.monotonic() > deadline:
            driver.kill()
            pytest.fail("no shard was written within 600 s")
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    # A shard cut short, as a kill during a write leaves one.
    torn = Path(shard_paths(out)[0]).with_name("torn_000099.jsonl")
    torn.write_text('{"index": 3, "input": "' + expected[3] + '", "predictions": [{"ra')

    resumed = subprocess.run(
        _ray_command(tiny_model, photos, out, cluster.address, "--resume"),
        capture_output=True,
        timeout=600,
        env=env,
    )
    assert resumed.returncode == 1, resumed.stderr  # the broken file, retried and failed again
    assert b"Traceback" not in resumed.stderr
    # Nor Ray's C++ note on its log level ("logging.cc:303] Set ray log level ..."): with -q,
    # nothing at all.
    assert resumed.stderr == b"", resumed.stderr

    merged = tmp_path / "merged.jsonl"
    merge = subprocess.run(
        [sys.executable, "-m", "resnet_cli.ray_engine", "merge", str(out), "-o", str(merged)],
        capture_output=True,
        timeout=120,
    )
    assert merge.returncode == 0, merge.stderr
    records = read_records(merged.read_text(), "jsonl")
    assert [r.input for r in records] == expected  # every input once, in input order
    assert [r.input for r in records if not r.ok] == [str(photos / "zz-broken.jpg")]
    assert all(len(r.predictions) == 2 for r in records if r.ok)


def test_the_folder_records_the_plan_its_actors_ran(
    cluster, tiny_model: Path, tmp_path: Path
) -> None:
    """-b reaches the one chooser's plan, the plan the actors ran is in the folder's metadata,
    and ``resnet-classify env`` with the same flags shows the same plan."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        scene(120, 90, seed=i).save(photos / f"{i}.jpg")
    out = tmp_path / "results"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = _ray_command(tiny_model, photos, out, cluster.address, batch="8")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    meta = read_folder_meta(out)
    assert meta is not None
    plan = meta["plan"]
    assert plan["batch_size"] == {"value": 8, "why": "as asked"}
    assert plan["device"]["value"] == "cpu"  # the test cluster has no GPUs
    assert plan["actors"]["value"] == 1  # 2 CPUs in all
    assert plan["actor_options"]["value"] == {"num_cpus": 1}
    assert all(choice["why"] for choice in plan.values())
    assert "workers" not in plan and "device_decode" not in plan  # Ray decodes in its tasks
    assert meta["model"] == str(tiny_model.resolve()) and meta["top_k"] == 2
    assert len(read_ray_output(out)) == 3

    shown = subprocess.run(
        [sys.executable, "-m", "resnet_cli", "env", "-m", str(tiny_model), "-f", "json", "-b", "8"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    env_plan = json.loads(shown.stdout)["plan"]
    # The same choices as env shows (less the local engine's decoding), but for the threads:
    # an actor computes on the CPUs its placement gives it, not on the whole machine's.
    shared = sorted((set(env_plan) & set(plan)) - {"intra_op_threads"})
    assert {k: env_plan[k]["value"] for k in shared} == {k: plan[k]["value"] for k in shared}
    cpus = plan["actor_options"]["value"]["num_cpus"]
    assert plan["intra_op_threads"]["value"] == cpus <= env_plan["intra_op_threads"]["value"]
    assert set(env_plan) - set(plan) == {"workers", "device_decode"}


def test_an_unreachable_cluster_is_one_line_and_exit_3(tiny_model: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.jpg"
    scene(64, 48, seed=1).save(image)
    started = time.monotonic()
    result = subprocess.run(
        _ray_command(tiny_model, image, tmp_path / "out", "127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 3
    assert result.stderr.startswith("Error: could not reach a Ray cluster at 127.0.0.1:9: ")
    assert result.stderr.count("\n") == 1
    assert time.monotonic() - started < 120  # not ray.init's minutes of retries


# A driver whose own path has the package connects with the job's runtime env. Its task
# hides every copy of resnet_cli on the worker's path (the source tree, site-packages) but
# the one Ray unpacked, as on a node where it is not installed, then imports the models.
_SHIPPED_PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import ray
from resnet_cli.pipeline.ray_job import runtime_env
installed = sorted({p for p in sys.path if os.path.isdir(os.path.join(p or ".", "resnet_cli"))})
ray.init(address=sys.argv[2], runtime_env=runtime_env(), log_to_driver=False)

@ray.remote(num_cpus=0.5)
def imported(installed):
    from importlib.machinery import PathFinder

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name != "resnet_cli":
                return None
            spec = PathFinder.find_spec(name, [p for p in sys.path if p not in installed])
            if spec is None:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return spec

    sys.meta_path.insert(0, NotInstalled())
    for name in [n for n in sys.modules if n.split(".")[0] == "resnet_cli"]:
        del sys.modules[name]
    import resnet_cli.models
    return resnet_cli.models.__file__

print(json.dumps({"installed": installed, "models": ray.get(imported.remote(installed))}))
"""


def test_workers_without_the_package_import_it_from_the_job(cluster, tmp_path: Path) -> None:
    import resnet_cli

    src = str(Path(resnet_cli.__file__).parent.parent)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", _SHIPPED_PROBE, src, cluster.address],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert src in found["installed"]
    assert not any(found["models"].startswith(p + os.sep) for p in found["installed"]), found


def test_ray_is_right_on_the_real_model(cluster, real_model: Path, tmp_path: Path) -> None:
    # A trained model, so a wrong answer shows: a cat first, espresso first, on every input.
    examples = Path(__file__).resolve().parent.parent / "examples" / "images"
    photos = [examples / f"{name}.jpg" for name in ("chelsea", "coffee") for _ in range(6)]
    out = tmp_path / "results"
    on_both_nodes(cluster, collect_inputs([str(p) for p in photos]), out, real_model, 4)
    records = read_ray_output(out)
    assert len(records) == len(photos)
    for record in records:
        top = record.predictions[0].class_id
        assert top in range(281, 286) if "chelsea" in record.input else top == 967, record
