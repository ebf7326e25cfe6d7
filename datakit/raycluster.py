"""Connecting to a Ray cluster, for the stages that can spread over one (sample, filter).

`address` is what `ray.init` takes: "auto" (the cluster this node belongs to, as started by
`ray start`), "HOST:PORT" of its head, or "local" (a one-machine cluster started here). Every node needs
datakit installed and the stage's output folder on storage all nodes see (NFS, Lustre, ...).
"""

from __future__ import annotations

from datakit.errors import DatakitError


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` once per process (a second call is a no-op)."""
    try:
        import ray
    except ImportError as e:
        raise DatakitError("ray_address is set but Ray is not installed: pip install 'datakit[ray]'") from e
    if ray.is_initialized():
        return
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False, logging_level="warning")
    except ConnectionError as e:
        raise DatakitError(f"cannot reach the Ray cluster at {address!r} ({e}); start it with `ray start --head`, or use ray_address: local") from e
