"""Where memory growth comes from, if it is Python objects at all (``--tracemalloc``)."""

from __future__ import annotations

from typing import Any

__all__ = ["AllocationTracer"]


class AllocationTracer:
    """``--tracemalloc``: snapshots at the middle and the end of the run; ``report`` lists
    the source lines whose live allocations grew most in between (where RSS growth comes
    from, if it is Python objects at all)."""

    def __init__(self) -> None:
        import tracemalloc

        self._tm = tracemalloc
        tracemalloc.start(10)
        self._snaps: list[Any] = []

    def due(self, t: float, duration: float) -> bool:
        return (len(self._snaps) == 0 and t >= duration / 2) or (
            len(self._snaps) == 1 and t >= duration
        )

    def snapshot(self) -> None:
        self._snaps.append(self._tm.take_snapshot())

    def report(self, top: int = 15) -> list[dict[str, Any]] | None:
        self._tm.stop()
        if len(self._snaps) < 2:
            return None
        stats = self._snaps[1].compare_to(self._snaps[0], "traceback")
        out = []
        for stat in stats[:top]:
            frames = [f"{f.filename.rsplit('/', 3)[-1]}:{f.lineno}" for f in stat.traceback]
            out.append(
                {
                    "size_diff_kb": round(stat.size_diff / 1024, 1),
                    "count_diff": stat.count_diff,
                    "traceback": frames[-6:],
                }
            )
        return out
