"""Joining Ray: an existing cluster when there is one, a local one otherwise."""

from __future__ import annotations

import os
from typing import Any


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
