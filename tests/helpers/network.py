"""Loopback addresses for tests that open servers."""

from __future__ import annotations

# A ZeroMQ endpoint on loopback with a free port chosen by the kernel at bind time (read it back
# from the bound socket, e.g. ``Publisher.endpoint``): no race with other tests for a port.
ANY_PORT = "tcp://127.0.0.1:*"
