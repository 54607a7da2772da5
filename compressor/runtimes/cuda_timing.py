"""What the GPU runtimes share: the device's name for reports, and one run timed with CUDA events
(deploy.md §6.3: events recorded on the stream around the work, one synchronize on the end event;
the sample is GPU time, not host time)."""

from __future__ import annotations

from collections.abc import Callable

CUDA_EVENTS = "CUDA events (GPU compute time)"


def cuda_device_name() -> str:
    """The first CUDA device's name, "" where PyTorch sees none (a description only: never fails)."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    except Exception:  # noqa: BLE001 - a description only
        return ""


def event_timer(work: Callable[[], object], before: Callable[[], object] | None = None) -> Callable[[], int]:
    """A call that runs `before` (untimed: e.g. checking the bound inputs), enqueues `work` between
    two CUDA events on the current stream, waits for the end event, and returns the GPU time
    between them in ns."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed() -> int:
        if before is not None:
            before()
        start.record()
        work()
        end.record()
        end.synchronize()
        return int(start.elapsed_time(end) * 1e6)  # elapsed_time is in ms

    return timed
