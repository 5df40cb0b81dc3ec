"""stylestream's outside world: sources, sinks, pipeline, wire format and command line."""
