"""A sweep on a two-node Ray cluster on this machine (ray.cluster_utils): the shared-storage probe
runs on both nodes and passes (they share the disk), the sweep runs, the probe leaves no file.
Its own module: it starts its own Ray, which cannot share a process with test_sweep_ray's instance."""

import sys

import pytest
import ray
import ray.cloudpickle

from ganlearn.sweep import Experiment, run_sweep

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _run(params):
    return {"y": params["x"] ** 2 + params["seed"]}


@pytest.mark.slow
def test_the_storage_probe_passes_on_a_two_node_cluster_sharing_a_disk(tmp_path):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        exp = Experiment(name="toy", doc="", base={}, grid={"x": [1, 2, 3]}, seeds=2, run=_run)
        stats = run_sweep(exp, tmp_path, backend="ray", workers=2, progress=False, log=lambda s: None)
        assert stats["finished"] == 6 and len([n for n in ray.nodes() if n["Alive"]]) == 2
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".storage-probe")] == []
    finally:
        ray.shutdown()
        cluster.shutdown()
