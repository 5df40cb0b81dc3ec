"""``stylestream serve``: many live streams, one model, one publisher.

::

    stream "door" --[reader: newest frames]--+                         +--> writer "door": PUB topic door (+ MP4)
    stream "lobby" --[reader]----------------+--> scheduler: one model +--> writer "lobby": PUB topic lobby
    ...                                      |    call per size group  |
                                 control: add/remove-stream, set-style/alpha, list, status

- :mod:`~streamer.serve.config`: the YAML / ``add-stream`` settings (:class:`ServeConfig`,
  :class:`StreamSpec`).
- :mod:`~streamer.serve.stream`: one stream's source, reader and writer threads and stats.
- :mod:`~streamer.serve.scheduler`: the one stylizing loop (fair, per-frame styles in a batch).
- :mod:`~streamer.serve.stream_requests`: the control commands (``live``'s table, extended).
- :mod:`~streamer.serve.server`: assembles them, the control endpoint, the status line.
"""
