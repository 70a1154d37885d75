"""How many distinct start times each local date offers: the count `/v1/dates` shows. Pure.

Input: free runs (consecutive free slots of one length, `scheduler.free_runs`), each already
cut by the database to the starts whose service fits inside its stretch of free time, as
instants in epoch seconds: the first start, the last possible one, the step; and the live
holds of each stylist, widened to the slots they touch. A start is counted when it lies in the
bookable window and no hold of its stylist overlaps [start, start + need). Several stylists
free at one instant count once.

Counted with arithmetic, never a start at a time: each run is an interval on its lattice (its
step and phase), the window and the holds cut pieces out of it, and a date whose runs all lie
on one lattice (the usual case: one granularity) counts the union of its intervals after
sorting them. Only a date mixing lattices lists its starts to count the distinct ones.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

# (local date, stylist key, first start, last start, step, need): epoch seconds but the date.
# "last" is the latest start whose need still ends inside the stretch (it may be off-lattice).
Run = tuple[date, int, int, int, int, int]
Piece = tuple[int, int]  # first and last start of an interval, both on its lattice


def count_starts(
    runs: Iterable[Run],
    holds: Mapping[int, Sequence[tuple[int, int]]],
    earliest: int,
    latest: int,
) -> dict[date, int]:
    """Distinct starts per local date (dates without any are left out). `holds`: per stylist,
    [from, until) in epoch seconds; `earliest`..`latest`: the bookable window, inclusive."""
    # A calendar is ~750 runs: this loop is most of its Python (docs/performance.md).
    near = {stylist: _Holds(hs) for stylist, hs in holds.items() if hs}
    days: dict[date, dict[tuple[int, int], list[Piece]]] = {}
    for day, stylist, first, last, step, need in runs:
        if first < earliest:
            first += -(-(earliest - first) // step) * step
        if last > latest:
            last = latest
        last = first + (last - first) // step * step
        if first > last:
            continue
        lattices = days.get(day)
        if lattices is None:
            lattices = days[day] = {}
        lattice = (step, first % step)
        pieces = lattices.get(lattice)
        if pieces is None:
            pieces = lattices[lattice] = []
        near_holds = near.get(stylist)
        if near_holds is not None:
            # A hold overlapping [first, last + need) starts before last + need and, being
            # at most `longest` long, after first - longest.
            to = bisect.bisect_left(near_holds.starts, last + need)
            since = bisect.bisect_right(near_holds.starts, first - near_holds.longest, 0, to)
            if since < to:
                pieces.extend(near_holds.cut(first, last, step, need, since, to))
                continue
        pieces.append((first, last))
    counts = {}
    for day, lattices in days.items():
        if len(lattices) == 1:
            (((step, _), pieces),) = lattices.items()
            n = _union_size(pieces, step)
        else:
            n = len(
                {
                    t
                    for (step, _), ps in lattices.items()
                    for a, b in ps
                    for t in range(a, b + 1, step)
                }
            )
        if n:
            counts[day] = n
    return counts


class _Holds:
    """One stylist's holds sorted by start, to find those near a run without walking all."""

    def __init__(self, holds: Sequence[tuple[int, int]]) -> None:
        self.holds = sorted(holds)
        self.starts = [lo for lo, _ in self.holds]
        self.longest = max(hi - lo for lo, hi in self.holds)

    def cut(self, first: int, last: int, step: int, need: int, since: int, to: int) -> list[Piece]:
        """The starts first..last (on the lattice of `step`) that none of the holds
        since..to overlaps."""
        pieces = [(first, last)]
        for lo, hi in self.holds[since:to]:
            if hi > first:
                # Starts t with lo < t + need and t < hi are taken off.
                pieces = [p for piece in pieces for p in _without(piece, lo - need, hi, step)]
        return pieces


def _without(piece: Piece, after: int, before: int, step: int) -> list[Piece]:
    """`piece` less its starts t with after < t < before."""
    a, b = piece
    out = []
    if after >= a:  # the starts up to `after`
        out.append((a, min(b, a + (after - a) // step * step)))
    if before <= b:  # the starts from `before`
        first = max(a, a + -(-(before - a) // step) * step)
        if first <= b:
            out.append((first, b))
    return out


def _union_size(pieces: list[Piece], step: int) -> int:
    """How many lattice points the pieces (all on one lattice) cover together."""
    n = 0
    start = end = None
    for a, b in sorted(pieces):
        if end is not None and a <= end:
            end = max(end, b)
            continue
        if start is not None and end is not None:
            n += (end - start) // step + 1
        start, end = a, b
    if start is not None and end is not None:
        n += (end - start) // step + 1
    return n
