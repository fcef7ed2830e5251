"""Range planner: property-based (hypothesis) and exact edge cases."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets_pkg.logs.planner import (
    HIT,
    MISS,
    PARTIAL,
    InvalidWindowError,
    day_window,
    merge_ranges,
    parse_time_ms,
    plan_coverage,
    split_at_horizon,
    validate_window,
)

ms = st.integers(min_value=-1_000, max_value=1_000)


@st.composite
def window(draw):
    a = draw(ms)
    b = draw(st.integers(min_value=a + 1, max_value=a + 1_500))
    return a, b


def covered_points(ranges, lo, hi):
    return {t for s, e in ranges for t in range(max(s, lo), min(e, hi))}


@settings(max_examples=300, deadline=None)
@given(req=window(), cached=st.lists(window(), max_size=8))
def test_missing_plus_cached_is_the_request_exactly(req, cached):
    start, end = req
    plan = plan_coverage(start, end, cached)
    missing_pts = covered_points(plan.missing, start, end)
    cached_pts = covered_points(plan.cached, start, end)
    request = set(range(start, end))
    # exact cover, no overlap, and cached is exactly what the segments give inside the request
    assert missing_pts | cached_pts == request
    assert not (missing_pts & cached_pts)
    assert cached_pts == covered_points(cached, start, end)
    for ranges in (plan.missing, plan.cached):
        for s, e in ranges:
            assert start <= s < e <= end  # clamped, non-empty, half-open
        for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
            assert e1 < s2  # sorted, disjoint, and adjacent ones merged (no e1 == s2)
    expected = HIT if not missing_pts else (MISS if not cached_pts else PARTIAL)
    assert plan.decision == expected


@settings(max_examples=200, deadline=None)
@given(ranges=st.lists(window(), max_size=10))
def test_merge_is_sorted_disjoint_and_preserves_points(ranges):
    merged = merge_ranges(ranges)
    assert covered_points(merged, -10_000, 10_000) == covered_points(ranges, -10_000, 10_000)
    assert all(e1 < s2 for (_, e1), (s2, _) in zip(merged, merged[1:]))


@settings(max_examples=200, deadline=None)
@given(req=window(), cached=st.lists(window(), max_size=6), horizon=ms)
def test_horizon_split_partitions_missing(req, cached, horizon):
    plan = plan_coverage(req[0], req[1], cached)
    cacheable, fresh = split_at_horizon(plan.missing, horizon)
    assert covered_points(cacheable, -5000, 5000) | covered_points(fresh, -5000, 5000) == covered_points(plan.missing, -5000, 5000)
    assert all(e <= horizon for _, e in cacheable)
    assert all(s >= horizon for s, _ in fresh)


def test_half_open_edges():
    # [0,10) cached, request [10,20): touching is not overlapping -> miss
    assert plan_coverage(10, 20, [(0, 10)]).decision == MISS
    assert plan_coverage(10, 20, [(0, 10)]).missing == [(10, 20)]
    # [0,11) covers point 10 -> partial, gap starts at 11
    p = plan_coverage(10, 20, [(0, 11)])
    assert (p.decision, p.missing, p.cached) == (PARTIAL, [(11, 20)], [(10, 11)])
    # adjacent cached segments merge; the request is a hit
    p = plan_coverage(0, 30, [(10, 20), (0, 10), (20, 30)])
    assert (p.decision, p.cached, p.missing) == (HIT, [(0, 30)], [])
    # several gaps are reported separately, sorted
    p = plan_coverage(0, 100, [(10, 20), (50, 60)])
    assert p.missing == [(0, 10), (20, 50), (60, 100)]


@pytest.mark.parametrize(
    "start,end",
    [(10, 5), (5, 5), (1.0, 5), (0, 5.5), ("0", 5), (None, 5), (True, 5), (0, False)],
)
def test_invalid_windows_raise(start, end):
    with pytest.raises(InvalidWindowError):
        validate_window(start, end)
    with pytest.raises(InvalidWindowError):
        plan_coverage(start, end, [])


def test_invalid_window_messages_say_what_is_wrong():
    with pytest.raises(InvalidWindowError, match="reversed"):
        validate_window(10, 5)
    with pytest.raises(InvalidWindowError, match="empty"):
        validate_window(5, 5)
    with pytest.raises(InvalidWindowError, match="not an integer"):
        validate_window(1.5, 5)


def test_time_parsing():
    assert parse_time_ms("1970-01-01T00:00:01Z") == 1000
    assert parse_time_ms("2024-01-02") == day_window("2024-01-02")[0]
    assert parse_time_ms("1700000000000") == 1_700_000_000_000
    assert day_window("2024-01-02")[1] - day_window("2024-01-02")[0] == 86_400_000
    with pytest.raises(InvalidWindowError):
        parse_time_ms("yesterday")
