"""What the vendor mappers share: times, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stockguard.state.vendors.common import MappingError, iso_ms, stable_id, text

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_iso_times_are_exact_to_the_millisecond() -> None:
    # A float timestamp loses the last millisecond for some of these; the mapper must not.
    for ts in range(1_764_547_200_000, 1_764_547_200_000 + 50_000, 7):
        assert iso_ms((EPOCH + timedelta(milliseconds=ts)).isoformat(timespec="milliseconds"), "t") == ts


def test_offsets_count_and_a_time_without_one_is_utc() -> None:
    assert iso_ms("2025-06-10T10:15:42+02:00", "t") == iso_ms("2025-06-10T08:15:42Z", "t") == 1749543342000
    assert iso_ms("2025-06-10T08:15:42", "t") == 1749543342000


@pytest.mark.parametrize("bad", ["yesterday", 1749543342, "1970-01-01T00:00:00Z", None])
def test_a_bad_time_is_a_mapping_error(bad: object) -> None:
    with pytest.raises(MappingError):
        iso_ms(bad, "created_at")


def test_ids() -> None:
    assert text(820982911946154508) == "820982911946154508"
    with pytest.raises(MappingError):
        text(True)
    assert stable_id("ga4", "a", 1) == stable_id("ga4", "a", 1) != stable_id("ga4", "a", 2)
