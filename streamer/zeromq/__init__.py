"""The ZeroMQ side of stylestream: the wire format, endpoints, CURVE keys, the publisher, the control plane, the subscriber and the viewer."""
