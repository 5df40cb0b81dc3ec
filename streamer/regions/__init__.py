"""Regions: different styles for different parts of a frame. Specs as the commands take them, the runtime switch of a running stream, and where masks come from."""
