"""The one timing helper of the benchmarks, on the CPU: which backend a sync waits for, how many
calls warm-up and repeats make, peak memory, and that a table prints what its JSON holds."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import timing
from benchmarks.timing import (
    Stopwatch,
    markdown_table,
    peak_memory_mib,
    synchronize,
    time_calls,
    time_interleaved,
)


@pytest.fixture
def syncs(monkeypatch) -> list[tuple[str, object]]:
    """Every backend sync call, recorded instead of run (no GPU needed)."""
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device=None: calls.append(("cuda", device))
    )
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append(("mps", None)))
    return calls


def test_cpu_sync_is_a_no_op(syncs) -> None:
    synchronize(torch.device("cpu"))
    synchronize("cpu")
    assert syncs == []


def test_cuda_sync_waits_for_the_device_in_use_not_the_default(syncs) -> None:
    synchronize("cuda:1")
    assert syncs == [("cuda", torch.device("cuda:1"))]


def test_mps_sync_goes_to_the_mps_backend(syncs) -> None:
    synchronize(torch.device("mps"))
    assert syncs == [("mps", None)]


def test_stopwatch_syncs_before_starting_and_before_stopping(syncs) -> None:
    ticks = iter([10.0, 10.25])
    with Stopwatch("cuda:1", clock=lambda: next(ticks)) as watch:
        syncs.append(("work", None))
    assert [kind for kind, _ in syncs] == ["cuda", "work", "cuda"]
    assert watch.seconds == pytest.approx(0.25) and watch.ms == pytest.approx(250.0)


def test_warmup_and_repeats_are_honoured() -> None:
    calls: list[str] = []
    times = time_calls(lambda: calls.append("x"), "cpu", repeats=4, warmup=2)
    assert len(calls) == 6  # 2 untimed + 4 timed
    assert len(times) == 4 and all(t >= 0.0 for t in times)


def test_interleaved_forms_take_turns_and_keep_only_the_timed_rounds() -> None:
    order: list[str] = []
    forms = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    ticks = iter(float(i) for i in range(100))  # each call "takes" one tick
    timings = time_interleaved(forms, "cpu", repeats=2, warmup=1, clock=lambda: next(ticks))
    assert order == ["a", "b"] * 3
    assert timings["a"].times_ms == [1000.0, 1000.0]
    assert timings["a"].best_ms == timings["a"].median_ms == 1000.0
    assert timings["b"].peak_allocated_mib is None  # CPU: no peak memory


def test_a_form_out_of_memory_is_dropped_and_the_others_go_on() -> None:
    def too_big() -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    calls: list[str] = []
    timings = time_interleaved(
        {"big": too_big, "small": lambda: calls.append("s")}, "cpu", repeats=3, warmup=0
    )
    assert timings["big"].out_of_memory and timings["big"].best_ms is None
    assert len(calls) == 3 and len(timings["small"].times_ms) == 3


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="repeats >= 1"):
        time_calls(lambda: None, "cpu", repeats=0)


def test_peak_memory_reports_reserved_next_to_allocated(monkeypatch) -> None:
    assert peak_memory_mib("cpu") == (None, None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 3 * timing.MIB)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device: 8 * timing.MIB)
    assert peak_memory_mib("cuda:0") == (3.0, 8.0)


def test_markdown_table_pads_columns_and_refuses_ragged_rows() -> None:
    text = markdown_table(["form", "ms"], [["plain", "1.5"], ["2 regions", "12.0"]])
    lines = text.splitlines()
    assert lines[0] == "| form      | ms   |"
    assert lines[1] == "|-----------|------|"
    assert len({len(line) for line in lines}) == 1  # aligned
    assert markdown_table(["a", "bb"], [[1, 2]], pad=False).splitlines()[1] == "|---|---|"
    with pytest.raises(ValueError, match="cells"):
        markdown_table(["a", "b"], [["only one"]])


@pytest.mark.usefixtures("one_torch_thread")
def test_region_bench_table_and_json_agree() -> None:
    """A real (tiny) benchmark: the numbers its table prints are those its JSON holds."""
    from benchmarks.region_cost import RegionBenchConfig, run_region_benchmark

    config = RegionBenchConfig(size=(32, 48), regions=2, style_size=32, repeats=1)
    result = run_region_benchmark(config)
    data = json.loads(json.dumps(result.to_dict()))
    table = result.table()
    assert f"| plain (1 style) | {data['plain_ms']:.1f} | 1.00x |" in table
    assert f"| 2 regions | {data['regions_ms']:.1f} | {data['ratio']:.2f}x |" in table
    assert data["ratio"] == pytest.approx(data["regions_ms"] / data["plain_ms"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_timed_work_is_waited_for_and_reserved_covers_allocated() -> None:
    device = torch.device("cuda", torch.cuda.device_count() - 1)  # not always the default
    x = torch.randn(4096, 4096, device=device)
    timings = time_interleaved({"matmul": lambda: x @ x}, device, repeats=2, warmup=1)
    timing = timings["matmul"]
    assert min(timing.times_ms) > 0.1  # the kernel, not only its launch (~10 us)
    assert timing.peak_allocated_mib is not None and timing.peak_reserved_mib is not None
    assert timing.peak_reserved_mib >= timing.peak_allocated_mib >= 64  # the 64 MiB result
