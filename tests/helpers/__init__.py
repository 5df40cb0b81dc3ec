"""Test helpers shared by the whole suite: media writers, published-layout state dicts, servers, CLI helpers."""
