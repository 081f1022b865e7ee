"""The pure rules: A/B assignment, frequency cap, quiet hours (DST included)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

from lifecycle.contracts.policy import EmailVariant
from lifecycle.email.rules import (
    assign_variant,
    cap_free_at,
    in_quiet_hours,
    marketing_timing,
    quiet_hours_end,
)
from tests.support.email import utc

NY = ZoneInfo("America/New_York")
NINE, SIX_PM = dt.time(9), dt.time(18)
VARIANTS = [EmailVariant("a", "welcome", 1), EmailVariant("b", "welcome_short", 3)]


def test_variant_assignment_is_stable_and_follows_weights_and_holdout() -> None:
    ids = [f"cus_{i}" for i in range(4000)]
    first = [assign_variant(c, "onboarding", "welcome", VARIANTS, 0.2) for c in ids]
    again = [assign_variant(c, "onboarding", "welcome", VARIANTS, 0.2) for c in ids]
    assert first == again  # same customer and step: same arm, every time
    counts = Counter(first)
    assert set(counts) == {"holdout", "a", "b"}
    assert 0.17 < counts["holdout"] / 4000 < 0.23
    assert 2.5 < counts["b"] / counts["a"] < 3.5
    # another step reshuffles: assignment is per customer *and* step
    other = [assign_variant(c, "onboarding", "tip_api", VARIANTS, 0.2) for c in ids]
    assert other != first
    assert assign_variant("cus_1", "onboarding", "welcome", [], 0.0) is None


def test_cap_allows_one_per_window_and_says_when_the_next_may_go() -> None:
    now = utc(2026, 3, 2, 12)
    day = dt.timedelta(hours=24)
    assert cap_free_at([], now, 1, day) is None
    sent = now - dt.timedelta(hours=5)
    assert cap_free_at([sent], now, 1, day) == sent + day
    assert cap_free_at([now - dt.timedelta(hours=25)], now, 1, day) is None
    assert cap_free_at([sent], now, 2, day) is None
    assert cap_free_at([sent], now, 0, day) is None


def test_quiet_hours_wait_for_the_morning_in_the_customers_zone() -> None:
    # 23:30 UTC on 2 March = 18:30 in New York: quiet until 09:00 New York = 14:00 UTC
    now = utc(2026, 3, 2, 23, 30)
    assert in_quiet_hours(now, NY, SIX_PM, NINE)
    assert quiet_hours_end(now, NY, SIX_PM, NINE) == utc(2026, 3, 3, 14, 0)
    # 15:00 UTC is 10:00 in New York: send now
    assert quiet_hours_end(utc(2026, 3, 3, 15), NY, SIX_PM, NINE) == utc(2026, 3, 3, 15)


def test_quiet_hours_are_dst_safe() -> None:
    # After spring-forward (8 March 2026) 09:00 New York is 13:00 UTC, not 14:00.
    assert quiet_hours_end(utc(2026, 3, 8, 3), NY, SIX_PM, NINE) == utc(2026, 3, 8, 13)
    # A window opening at 02:30, which does not exist on that day, still opens once: 03:30 EDT.
    start, end = dt.time(20), dt.time(2, 30)
    opens = quiet_hours_end(utc(2026, 3, 8, 4), NY, start, end)  # 23:00 EST on 7 March
    assert opens == utc(2026, 3, 8, 7, 30)
    assert opens.astimezone(NY).strftime("%H:%M") == "03:30"
    assert not in_quiet_hours(opens, NY, start, end)


def test_timing_combines_cap_and_quiet_hours_with_reasons() -> None:
    now = utc(2026, 3, 3, 15)  # 10:00 New York
    sent = utc(2026, 3, 3, 14, 30)
    t = marketing_timing(
        now, recent=[sent], cap=1, cap_window=dt.timedelta(hours=24), zone_name="America/New_York",
        quiet_start=SIX_PM, quiet_end=NINE,
    )
    # cap frees at 14:30 UTC next day = 09:30 New York, inside the window
    assert t.at == utc(2026, 3, 4, 14, 30) and not t.now
    assert "frequency cap" in t.reasons[0] and len(t.reasons) == 1
    late = marketing_timing(
        utc(2026, 3, 3, 23), recent=[], cap=1, cap_window=dt.timedelta(hours=24),
        zone_name="Nowhere/Unknown", quiet_start=SIX_PM, quiet_end=NINE,
    )
    assert late.at == utc(2026, 3, 4, 9) and "unknown time zone" in late.reasons[0]
