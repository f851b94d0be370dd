"""Joining Ray: an existing cluster when there is one, a local one otherwise; and the Ray Train
settings the package runs with.

Ray Train V2's defaults suit a large cluster with a dashboard. On one machine without a dashboard
(the local instance :func:`ensure_ray` starts) several of its helpers cost CPU and console lines for
nothing: the preemption watcher polls drain state every 5 s, the metrics callbacks export to a
Prometheus nobody scrapes, the worker's print patch sends every ``print`` to the console twice.
:func:`apply_train_settings` switches those off through Ray's own environment variables (a value the
user set wins); ``HYPERREP_RAY_DEFAULTS=1`` leaves every Ray default as it is (benchmarks compare).
:func:`apply_data_settings` does the same for Ray Data's console when it is a log, not a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Set to 1 to run with Ray's own defaults (no settings of ours).
DEFAULTS_ENV = "HYPERREP_RAY_DEFAULTS"
#: Ray Train settings everywhere: print() in a Train worker goes to stdout once, not through
#: Train's logger as well.
TRAIN_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
#: ...and on a single-node cluster: no preemption watcher actor, no Prometheus metrics callbacks,
#: no state-actor polling of the State API (which needs the dashboard).
SINGLE_NODE_TRAIN_ENV = {
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_STATE_ACTOR_RECONCILIATION": "0",
}


def ray_defaults_wanted() -> bool:
    return os.environ.get(DEFAULTS_ENV, "") == "1"


def ensure_ray(address: str | None = None, num_cpus: int | None = None, **kwargs: Any) -> None:
    """``ray.init`` once per process. With ``RAY_ADDRESS`` set (as ``ray job submit`` does) or an
    explicit address it joins that cluster; otherwise it starts a local instance."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    init_kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True, **kwargs}
    if address:
        ray.init(address=address, **init_kwargs)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **init_kwargs)


def cluster_has_gpus() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def single_node() -> bool:
    """Whether the Ray cluster this process joined has one live node."""
    import ray

    return sum(1 for n in ray.nodes() if n.get("Alive")) <= 1


def apply_train_settings() -> dict[str, str]:
    """Put the package's Ray Train settings into this process's environment, where Ray Train reads
    them (the driver, and from there the controller and workers); returns what it set. Call it after
    joining Ray and before building a trainer."""
    if ray_defaults_wanted():
        return {}
    wanted = {**TRAIN_ENV, **(SINGLE_NODE_TRAIN_ENV if single_node() else {})}
    set_now = {k: v for k, v in wanted.items() if k not in os.environ}
    os.environ.update(set_now)
    return set_now


def apply_data_settings() -> bool:
    """When stdout is a log rather than a terminal (``ray job logs``, a redirected run), Ray Data writes a
    ten-line progress block every 10 s and two start-up lines per dataset: hundreds of lines in the
    experiments stage, which prints one progress line per population itself. Switch both off in this
    process's ``DataContext`` (each dataset built afterwards copies it); True when it did. A terminal
    keeps Ray Data's progress bars; ``HYPERREP_RAY_DEFAULTS=1`` keeps everything."""
    if ray_defaults_wanted() or sys.stdout.isatty():
        return False
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return True
