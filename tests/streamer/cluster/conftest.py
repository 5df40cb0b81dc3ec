"""The local Ray runtime of the ``ray``-marked tests: one per module (Ray takes ~10 s to start),
shut down after it, so a test that must find no runtime (an unreachable ``--ray HOST:PORT``)
finds none. Its environment is left as it is: changing ``RAY_AUTH_MODE`` between two runtimes
of one process makes the second one cancel its actors."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
    yield ray
    if started:
        ray.shutdown()
