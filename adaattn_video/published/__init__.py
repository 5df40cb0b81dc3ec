"""The published AdaAttN weights: finding, safely loading, checking, importing, downloading.

Modules, each with one job:

* :mod:`~adaattn_video.published.catalog`: file names, Google Drive ids, real sizes and limits.
* :mod:`~adaattn_video.published.archives`: zip/tar members listed and size-checked from their
  headers, read in memory (never extracted).
* :mod:`~adaattn_video.published.files`: finding the files by name in directories and archives.
* :mod:`~adaattn_video.published.safe_load`: ``torch.load(weights_only=True)`` and the
  state-dict shape of the result.
* :mod:`~adaattn_video.published.layouts`: published key names -> model key names, per file.
* :mod:`~adaattn_video.published.importer`: one model from the files -> one safetensors file.
* :mod:`~adaattn_video.published.downloads`: Google Drive downloads (atomic), then import.
* :mod:`~adaattn_video.published.encoders`: frozen VGG weights for the training loss encoder.

:mod:`adaattn_video.weights` re-exports the public names callers use.
"""
