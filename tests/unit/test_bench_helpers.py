"""The bench's own pure helpers: what its figures rest on."""

import datetime as dt
import random
from collections import Counter

from bench.data import Place, Salon, slots_mix
from bench.harness import lua_str


def test_lua_literals_escape_everything_but_plain_ascii():
    assert lua_str('a"b\\c\né') == '"a\\034b\\092c\\010\\195\\169"'


def test_slots_mix_repeats_come_after_their_ask_and_each_visitor_has_one_address():
    place = Place("loc", "Europe/London", "svc", ("s1",))
    salon = Salon("biz", [place], [dt.date(2030, 1, 1) + dt.timedelta(days=i) for i in range(60)])
    mix = slots_mix(salon, 5000, random.Random(1))
    first: dict[tuple[str, str], int] = {}
    repeats = 0
    address: dict[str, set[str]] = {}
    for pos, req in enumerate(mix):
        headers = dict(req.headers)
        session = headers["X-Session-Id"]
        address.setdefault(session, set()).add(headers["X-Forwarded-For"])
        ask = (session, req.path)
        if ask in first:
            repeats += 1
            # 16 connections walk the mix in order: an answer is back before its repeat.
            assert pos - first[ask] >= 64
        else:
            first[ask] = pos
    assert 0.7 < repeats / len(mix) < 0.85
    assert all(len(a) == 1 for a in address.values())
    # Visitors are many: none reaches the default limit (600 a minute) in a whole mix.
    assert max(Counter(dict(r.headers)["X-Forwarded-For"] for r in mix).values()) < 600
