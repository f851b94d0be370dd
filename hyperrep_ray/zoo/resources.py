"""Can this Ray cluster ever run a task of the size we are about to ask for?

Ray queues a task no node can hold and waits for the autoscaler to add one; on a fixed cluster
(``ray start`` by hand, a local ``ray.init``) nobody ever adds it and the job hangs without a word.
So before submitting, the request is checked against the nodes that are alive: a fixed cluster that
cannot fit it is an error saying which flag to change; an autoscaling cluster (the autoscaler
publishes its node types, or ``HYPERREP_WAIT_FOR_RESOURCES=1``) gets a line saying what it waits for.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from hyperrep_ray.config import ConfigError

log = logging.getLogger(__name__)

#: Set to 1 to wait for resources the cluster does not have now (an autoscaler Ray cannot see).
WAIT_ENV = "HYPERREP_WAIT_FOR_RESOURCES"


class UnsatisfiableResourcesError(ConfigError):
    """A task asks for more CPUs or GPUs than any node of a fixed cluster has."""


@dataclass(frozen=True)
class TaskRequest:
    """One task's CPUs and GPUs, and the flags that set them (named in the error)."""

    cpus: float
    gpus: float
    what: str = "each task"
    cpu_flag: str = "num_cpus_per_task (in the zoo config)"
    gpu_flag: str = "--gpus-per-task"

    def fits(self, resources: dict[str, Any]) -> bool:
        return resources.get("CPU", 0) >= self.cpus and resources.get("GPU", 0) >= self.gpus

    def describe(self) -> str:
        return f"{self.cpus:g} CPU" + (f" and {self.gpus:g} GPU" if self.gpus else "")


def alive_node_resources() -> list[dict[str, Any]]:
    """Total resources of every node that is alive."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def autoscaling_node_types() -> list[dict[str, Any]] | None:
    """Resources of the node types the autoscaler may still add, or None when no autoscaler has
    published its configuration (a fixed cluster, as far as Ray can tell)."""
    try:
        import ray._private.state as ray_state  # Ray Data and Ray Train read the same record

        config = ray_state.state.get_cluster_config()
    except Exception:  # not available in this Ray, or not connected: assume a fixed cluster
        return None
    if not config or not config.node_group_configs:
        return None
    groups = [
        dict(g.resources) for g in config.node_group_configs if g.max_count == -1 or g.max_count > g.min_count
    ]
    return groups or None


def advice(request: TaskRequest, nodes: list[dict[str, Any]]) -> str:
    """What to change so that ``request`` fits a node of this cluster."""
    most_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    most_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    if request.gpus and not most_gpus:
        return f"this Ray cluster has no GPU; pass {request.gpu_flag} 0 to train on CPUs"
    if request.gpus > most_gpus:
        return f"its largest node has {most_gpus:g} GPU; pass {request.gpu_flag} {most_gpus:g} or less"
    return f"its largest node has {most_cpus:g} CPU; set {request.cpu_flag} to {most_cpus:g} or less"


def check_task_fits(request: TaskRequest) -> None:
    """Fail now if no node of a fixed cluster can run ``request``; on an autoscaling cluster say what
    the tasks wait for. Call with Ray initialised, before submitting."""
    nodes = alive_node_resources()
    if any(request.fits(n) for n in nodes):
        return
    node_types = autoscaling_node_types()
    waiting = f"{request.what} asks for {request.describe()}, which no node of this Ray cluster has now"
    if os.environ.get(WAIT_ENV) == "1" or (node_types and any(request.fits(t) for t in node_types)):
        log.warning("%s: waiting for the autoscaler to add a node with %s", waiting, request.describe())
        return
    kind = "no node type this autoscaler can add has it either" if node_types else "nothing will add one"
    raise UnsatisfiableResourcesError(
        f"{waiting} and {kind}, so the tasks would wait forever: {advice(request, nodes)} "
        f"(or set {WAIT_ENV}=1 to wait for nodes that something else adds)"
    )
