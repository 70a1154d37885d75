"""Which free start times a customer is shown (the "exposure"). Pure: no I/O, no global random.

The server lists every possible start (a `Candidate` per stylist and start); `choose` picks the
2 to 5 start times one customer sees. Everything random comes from `random.Random(seed)`, the
seed made by `seed_for` from the customer, location, service, stylist, date, rotation epoch and
variant: the same customer gets the same answer, different customers different ones, so offers
spread and every free time is shown to someone.

How `choose` picks, when there are more than five distinct start times:

- k: 2 (10%), 3 (60%), 4 (15%), 5 (15%), E[k] = 3.35. The seed design's 3 with 15% each of 4
  and 5, with a tenth of the 3s moved to 2 because the issue says 2 to 5. Never fewer than the
  day parts that have times: a 2 becomes a 3 on a day with times in all three parts.
- Day parts: one time from each part that has times (the issue: each represented when each
  has times). The rest of k is drawn from all times not yet picked.
- Gap preference: each candidate scores +1 per side touching a booking or the edge of the
  stylist's hours (gap 0) and -1 per side leaving a hole shorter than the shortest service;
  weight = base ** score, score in -2..2. "balanced" base sqrt(2): weights 0.5..2; "compact"
  base 2: 0.25..4; "uniform" base 1: no preference. A start time weighs as its best stylist.
  The band is narrow on purpose: a weight only tilts the draw, so a time leaving a hole is still
  shown, about half as often as an ordinary one (fairness, see the tests' simulations).
- Sampling is weighted without replacement (Efraimidis-Spirakis keys u ** (1 / w)) over the
  candidates in canonical order, so the order they arrive in never matters.

Fairness bound: the day-part rule wins over the spread. A part holding one time of many puts that
time in nearly every exposure (it is then shown about n / E[k] times the mean); the "3x the mean"
bound holds while each part present holds at least about a tenth of the day's times.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import operator
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TypeVar

__all__ = [
    "DAY_PARTS",
    "K_WEIGHTS",
    "VARIANTS",
    "Candidate",
    "CandidateRow",
    "FreeDay",
    "StartTime",
    "choose",
    "day_part",
    "group",
    "replace_taken",
    "row_of",
    "seed_for",
    "top_up",
]

VARIANTS = ("balanced", "uniform", "compact")
DAY_PARTS = ("morning", "afternoon", "evening")
# Relative chances of k = 2, 3, 4, 5 when there are more than five distinct times.
K_WEIGHTS: dict[int, int] = {2: 10, 3: 60, 4: 15, 5: 15}
SHOW_ALL_UP_TO = 5

# Weight per point of gap score (see the module docstring): the square gives the band's ends.
_BASES: dict[str, float] = {"balanced": math.sqrt(2.0), "uniform": 1.0, "compact": 2.0}
# Per variant, the weight of each gap score (-2..2): base ** score, computed once.
_WEIGHTS: dict[str, dict[int, float]] = {
    variant: {score: float(base**score) for score in range(-2, 3)}
    for variant, base in _BASES.items()
}
# The same as the exponent a weighted draw raises its uniform number to (1 / weight), so the
# draws need no division nor function call per candidate.
_EXPONENTS: dict[str, dict[int, float]] = {
    variant: {score: 1.0 / weight for score, weight in weights.items()}
    for variant, weights in _WEIGHTS.items()
}
_KS = list(K_WEIGHTS)
_K_CHANCES = list(K_WEIGHTS.values())
_ZERO = timedelta(0)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Candidate:
    """One stylist able to start the service at one instant."""

    # Unique per (stylist, start), e.g. f"{stylist_id}@{start_at:%Y%m%dT%H%M%SZ}".
    key: str
    stylist_id: uuid.UUID
    slot_id: uuid.UUID
    # UTC aware.
    start_at: datetime
    # UTC aware: start + duration + buffer, what a booking would occupy.
    end_at: datetime
    # Aware, in the location's zone: day parts go by the wall clock there.
    local_start: datetime
    # Free time from the start of the stylist's free stretch (a booking's end or the edge of
    # working hours) to start_at; 0 = adjacent.
    gap_before: timedelta
    # Free time from end_at to the end of that free stretch; 0 = adjacent.
    gap_after: timedelta

    def __post_init__(self) -> None:
        # Naive datetimes would compare wrongly against the aware ones from the database.
        for name in ("start_at", "end_at", "local_start"):
            if getattr(self, name).utcoffset() is None:
                raise ValueError(f"Candidate.{name} must be timezone-aware")
        if self.gap_before < _ZERO or self.gap_after < _ZERO:
            raise ValueError("Candidate gaps must not be negative")


# A start time's options: every stylist able to start then, in canonical order.
StartTime = tuple[Candidate, ...]


def day_part(local_start: datetime) -> str:
    """The day part by the wall clock: morning before 12:00, afternoon to 16:59, then evening."""
    if local_start.hour < 12:
        return "morning"
    if local_start.hour < 17:
        return "afternoon"
    return "evening"


def seed_for(*parts: str) -> int:
    """A stable 64-bit seed from sha256 of the parts (Python's `hash` is salted per process).

    Each part is length-prefixed, so ("ab", "c") and ("a", "bc") give different seeds.
    """
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return int.from_bytes(digest.digest()[:8], "big")


def choose(
    candidates: Sequence[Candidate],
    *,
    seed: int,
    shortest_service: timedelta,
    variant: str = "balanced",
) -> list[Candidate]:
    """The start times one customer is shown, one candidate per time, sorted by start."""
    return FreeDay.of(candidates, shortest_service).choose(seed=seed, variant=variant)


# A candidate as plain values: (key, stylist id hex, slot id hex, start_at, end_at, local_start,
# gap_before, gap_after). A kept day is tuples of these, which the garbage collector stops
# tracking after one pass; as Candidate objects (two UUIDs each) a process's kept days were
# ~150,000 tracked objects, and every full collection walked them: 50-150 ms pauses.
CandidateRow = tuple[str, str, str, datetime, datetime, datetime, timedelta, timedelta]


_ROW_ORDER = operator.itemgetter(3, 1, 0)


def row_of(c: Candidate) -> CandidateRow:
    return (
        c.key,
        c.stylist_id.hex,
        c.slot_id.hex,
        c.start_at,
        c.end_at,
        c.local_start,
        c.gap_before,
        c.gap_after,
    )


def _candidate(r: CandidateRow) -> Candidate:
    return Candidate(
        key=r[0],
        stylist_id=uuid.UUID(hex=r[1]),
        slot_id=uuid.UUID(hex=r[2]),
        start_at=r[3],
        end_at=r[4],
        local_start=r[5],
        gap_before=r[6],
        gap_after=r[7],
    )


@dataclass(frozen=True)
class FreeDay:
    """A day's candidates grouped by start time once, each time with its day part and best
    gap score, so that many customers can choose among them: the server keeps one per
    location, service and day. `FreeDay.of(cs, s).choose(...)` is `choose(cs, s, ...)`.

    Candidates are kept as plain rows and built only when returned (see `CandidateRow`)."""

    rows: tuple[tuple[CandidateRow, ...], ...]  # per start time, its candidates in order
    shortest_service: timedelta
    parts: tuple[str, ...]
    scores: tuple[int, ...]  # per time: the best of its candidates' gap scores
    row_scores: tuple[tuple[int, ...], ...]  # per time, each candidate's gap score
    starts: tuple[datetime, ...]  # per time, its start (`between` bisects it)

    @classmethod
    def of(cls, candidates: Sequence[Candidate], shortest_service: timedelta) -> FreeDay:
        return cls.of_rows([row_of(c) for c in candidates], shortest_service)

    @classmethod
    def of_rows(cls, rows: Sequence[CandidateRow], shortest_service: timedelta) -> FreeDay:
        """`of` for candidates given as rows (aware datetimes, gaps not negative)."""
        if shortest_service < _ZERO:
            raise ValueError("shortest_service must not be negative")
        # Canonical order (start, stylist, key; hex ids order as the UUIDs do), one per key.
        unique: dict[str, CandidateRow] = {}
        for r in sorted(rows, key=_ROW_ORDER):
            unique.setdefault(r[0], r)
        times = _by_start(unique.values(), operator.itemgetter(3))
        row_scores = tuple(
            tuple(_gaps_score(r[6], r[7], shortest_service) for r in t) for t in times
        )
        return cls(
            tuple(times),
            shortest_service,
            tuple(day_part(t[0][5]) for t in times),
            tuple(map(max, row_scores)),
            row_scores,
            tuple(t[0][3] for t in times),
        )

    @property
    def count(self) -> int:
        """How many distinct start times."""
        return len(self.rows)

    @property
    def times(self) -> tuple[StartTime, ...]:
        return tuple(tuple(_candidate(r) for r in t) for t in self.rows)

    def between(self, earliest: datetime, latest: datetime) -> FreeDay:
        """The start times from `earliest` to `latest`, inclusive."""
        lo = bisect.bisect_left(self.starts, earliest)
        hi = bisect.bisect_right(self.starts, latest)
        if lo == 0 and hi == len(self.rows):
            return self
        return FreeDay(
            self.rows[lo:hi],
            self.shortest_service,
            self.parts[lo:hi],
            self.scores[lo:hi],
            self.row_scores[lo:hi],
            self.starts[lo:hi],
        )

    def candidates(self) -> list[Candidate]:
        return [_candidate(r) for t in self.rows for r in t]

    def choose(self, *, seed: int, variant: str = "balanced") -> list[Candidate]:
        return [_candidate(r) for r in self.choose_rows(seed=seed, variant=variant)]

    def choose_rows(self, *, seed: int, variant: str = "balanced") -> list[CandidateRow]:
        """`choose` as rows (what a server turns into its answer without building objects)."""
        exponent_of = _EXPONENTS[_checked(variant, self.shortest_service)]
        rng = random.Random(seed)
        if len(self.rows) <= SHOW_ALL_UP_TO:
            picked = list(range(len(self.rows)))
        else:
            # Drawn first whatever the day holds, so a day's parts do not shift the draws.
            k = max(rng.choices(_KS, weights=_K_CHANCES)[0], self._parts_with_times)
            picked = self._pick_times(k, rng, exponent_of)
        # Stylists are drawn in start order so the draws do not depend on the order of the picks;
        # one time per pick, so start order is the canonical order.
        chosen = []
        for i in sorted(picked):
            options = self.rows[i]
            if len(options) == 1:
                chosen.append(options[0])
            else:
                scores = self.row_scores[i]
                chosen.append(options[_top(rng, [exponent_of[s] for s in scores], 1)[0]])
        return chosen

    def _pick_times(self, k: int, rng: random.Random, exponent_of: dict[int, float]) -> list[int]:
        # A time weighs as its best stylist: base ** max(score) (every base is >= 1).
        by_part = self._by_part
        parts = [part for part in DAY_PARTS if by_part[part]]  # k is at least as many
        scores = self.scores
        picked = []
        for part in parts:
            indices = by_part[part]
            picked.append(indices[_top(rng, [exponent_of[scores[i]] for i in indices], 1)[0]])
        taken = set(picked)
        rest = [i for i in range(len(self.rows)) if i not in taken]
        best = _top(rng, [exponent_of[scores[i]] for i in rest], k - len(picked))
        return picked + [rest[j] for j in best]

    @cached_property
    def _parts_with_times(self) -> int:
        return sum(1 for indices in self._by_part.values() if indices)

    @cached_property
    def _by_part(self) -> dict[str, list[int]]:
        by_part: dict[str, list[int]] = {part: [] for part in DAY_PARTS}
        for i, part in enumerate(self.parts):
            by_part[part].append(i)
        return by_part


def replace_taken(
    shown: Sequence[Candidate],
    live: Sequence[Candidate],
    *,
    seed: int,
    shortest_service: timedelta,
    variant: str = "balanced",
) -> list[Candidate]:
    """Keep what is still live, replace each taken candidate by one new live time (or none).

    A replacement is a live candidate whose start time was not shown at all (the taken times
    included: the customer asked for fresh times, not the same time with another stylist),
    from the taken one's day part when that part has any left, drawn with the gap preference.
    """
    weigh = _weigher(shortest_service, variant)
    live_keys = {c.key for c in live}
    taken = sorted((c for c in shown if c.key not in live_keys), key=_order)
    if not taken:
        return list(shown)
    result = [c for c in shown if c.key in live_keys]
    used = {c.start_at for c in shown}
    shown_keys = {c.key for c in shown}
    pool = [c for c in _canonical(live) if c.key not in shown_keys]
    rng = random.Random(seed)
    for gone in taken:
        times = group([c for c in pool if c.start_at not in used])
        if not times:
            break
        part = day_part(gone.local_start)
        same_part = [t for t in times if day_part(t[0].local_start) == part]
        options = _sample(same_part or times, 1, rng, lambda t: max(map(weigh, t)))[0]
        choice = _pick_one(options, rng, weigh)
        used.add(choice.start_at)
        result.append(choice)
    return sorted(result, key=_order)


def top_up(
    kept: Sequence[Candidate], fresh: Sequence[Candidate], *, avoid: Iterable[datetime] = ()
) -> list[Candidate]:
    """`kept` grown to as many times as `fresh` (a new choice for the same customer) shows,
    with times of `fresh` neither kept nor in `avoid` (times shown before and taken: as in
    `replace_taken`, not offered again with another stylist); sorted by start.

    Each addition comes from the day part with the fewest times so far (a part missing first),
    and while a part fresh shows is missing, more are added (up to five): the grown exposure
    keeps the parts a new one would show. Among equals, fresh's order. For an exposure that
    lost times it could not replace, or showed few because few were free, once more are free
    again: it shows what a new one would, keeping what it showed."""
    result = list(kept)
    used = {c.start_at for c in kept} | set(avoid)
    pool = [c for c in fresh if c.start_at not in used]
    parts = {day_part(c.local_start) for c in fresh}
    while pool and len(result) < SHOW_ALL_UP_TO:
        shown_per_part = dict.fromkeys(DAY_PARTS, 0)
        for c in result:
            shown_per_part[day_part(c.local_start)] += 1
        missing = any(shown_per_part[part] == 0 for part in parts)
        if len(result) >= len(fresh) and not missing:
            break
        best = min(pool, key=lambda c: shown_per_part[day_part(c.local_start)])
        pool.remove(best)
        result.append(best)
    return sorted(result, key=_order)


def _order(c: Candidate) -> tuple[datetime, uuid.UUID, str]:
    return (c.start_at, c.stylist_id, c.key)


def _canonical(candidates: Sequence[Candidate]) -> list[Candidate]:
    # One per key (the first in canonical order), so duplicates or shuffles change nothing.
    unique: dict[str, Candidate] = {}
    for c in sorted(candidates, key=_order):
        unique.setdefault(c.key, c)
    return list(unique.values())


def group(candidates: Sequence[Candidate]) -> list[StartTime]:
    """The distinct start times in order, each with its candidates in canonical order."""
    return _by_start(_canonical(candidates), operator.attrgetter("start_at"))


def _by_start(ordered: Iterable[_T], start: Callable[[_T], datetime]) -> list[tuple[_T, ...]]:
    """Candidates (objects or rows) in canonical order, grouped by their start time."""
    by_start: dict[datetime, list[_T]] = {}
    for c in ordered:
        by_start.setdefault(start(c), []).append(c)
    return [tuple(options) for options in by_start.values()]


def _gap_score(c: Candidate, shortest_service: timedelta) -> int:
    return _gaps_score(c.gap_before, c.gap_after, shortest_service)


def _gaps_score(gap_before: timedelta, gap_after: timedelta, shortest_service: timedelta) -> int:
    score = 0
    for gap in (gap_before, gap_after):
        if gap == _ZERO:
            score += 1
        elif gap < shortest_service:
            score -= 1
    return score


def _checked(variant: str, shortest_service: timedelta) -> str:
    if variant not in _BASES:
        raise ValueError(f"unknown exposure variant {variant!r}; expected one of {VARIANTS}")
    if shortest_service < _ZERO:
        raise ValueError("shortest_service must not be negative")
    return variant


def _weigher(shortest_service: timedelta, variant: str) -> Callable[[Candidate], float]:
    base = _BASES[_checked(variant, shortest_service)]

    def weigh(c: Candidate) -> float:
        return float(base ** _gap_score(c, shortest_service))

    return weigh


def _sample(
    items: Sequence[_T], count: int, rng: random.Random, weight: Callable[[_T], float]
) -> list[_T]:
    """`count` items drawn weighted, without replacement; one draw per item, in item order."""
    return [items[i] for i in _top(rng, [1.0 / weight(item) for item in items], count)]


def _top(rng: random.Random, exponents: Sequence[float], count: int) -> list[int]:
    """The positions of `count` items drawn weighted without replacement, given each item's
    1 / weight (Efraimidis-Spirakis keys u ** (1 / w)); the first of equal keys wins."""
    keys = [rng.random() ** exponent for exponent in exponents]
    if count == 1 and keys:
        return [keys.index(max(keys))]  # the item the sort below would put first
    # Stable, also reversed: equal keys keep their order.
    return sorted(range(len(keys)), key=keys.__getitem__, reverse=True)[:count]


def _pick_one(options: Sequence[_T], rng: random.Random, weigh: Callable[[_T], float]) -> _T:
    if len(options) == 1:
        return options[0]
    return _sample(options, 1, rng, weigh)[0]
