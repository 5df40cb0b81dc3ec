"""The local Ray runtime the ``ray``-marked tests share: started once per session (Ray takes
~10 s to start; starting a second one in the same process after a shutdown is not reliable)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_runtime():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
    yield ray
    if started:
        ray.shutdown()
