"""The sample data generator writes realistic, deterministic files that match the contract."""

from __future__ import annotations

import csv
import datetime as dt
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.contract import AIRPORTS, DAILY_FLIGHTS
from pipeline.sample import SampleFiles, SampleSpec, write_sample

# Two weeks of a smaller network: enough rows for the shares below to be stable.
SPEC = SampleSpec(days=14, flights_per_day=2000, start=dt.date(2024, 3, 4))


def read_rows(path: Path) -> list[list[str]]:
    """All rows of a CSV file, header first."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def flight_rows(files: SampleFiles) -> list[list[str]]:
    """The data rows of every daily file, headers dropped."""
    return [row for path in files.daily for row in read_rows(path)[1:]]


def all_bytes(files: SampleFiles) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (files.dimension, *files.daily)}


def dimension_ids(files: SampleFiles) -> list[int]:
    return [int(row[0]) for row in read_rows(files.dimension)[1:]]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    return write_sample(tmp_path_factory.mktemp("sample"), SPEC)


@pytest.fixture(scope="module")
def flights(sample: SampleFiles) -> list[list[str]]:
    return flight_rows(sample)


def test_daily_files_are_named_for_consecutive_dates_from_start(tmp_path: Path) -> None:
    spec = SampleSpec(days=4, flights_per_day=50, start=dt.date(2024, 2, 27))

    files = write_sample(tmp_path / "out", spec)

    expected = ["2024-02-27.csv", "2024-02-28.csv", "2024-02-29.csv", "2024-03-01.csv"]
    assert [p.name for p in files.daily] == expected
    assert all(p.parent == tmp_path / "out" for p in files.daily)
    assert files.dimension == tmp_path / "out" / "airport_codes.csv"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [*expected, "airport_codes.csv"]


def test_headers_equal_the_contract_headers(sample: SampleFiles) -> None:
    assert tuple(read_rows(sample.dimension)[0]) == AIRPORTS.headers
    for path in sample.daily:
        assert tuple(read_rows(path)[0]) == DAILY_FLIGHTS.headers


def test_rows_counts_the_data_rows_across_daily_files(
    sample: SampleFiles, flights: list[list[str]]
) -> None:
    assert sample.rows == len(flights)
    assert sample.rows > 0


def test_every_row_has_one_field_per_contract_column(
    sample: SampleFiles, flights: list[list[str]]
) -> None:
    assert {len(row) for row in flights} == {len(DAILY_FLIGHTS.headers)}
    assert {len(row) for row in read_rows(sample.dimension)} == {len(AIRPORTS.headers)}


def test_same_spec_writes_identical_bytes(tmp_path: Path) -> None:
    spec = SampleSpec(days=3, flights_per_day=500)

    first = write_sample(tmp_path / "a", spec)
    second = write_sample(tmp_path / "b", spec)

    assert all_bytes(first) == all_bytes(second)
    assert first.rows == second.rows


def test_different_seed_writes_different_files(tmp_path: Path) -> None:
    first = write_sample(tmp_path / "a", SampleSpec(days=2, flights_per_day=500, seed=1))
    second = write_sample(tmp_path / "b", SampleSpec(days=2, flights_per_day=500, seed=2))

    assert first.dimension.read_bytes() != second.dimension.read_bytes()
    for a, b in zip(first.daily, second.daily, strict=True):
        assert a.read_bytes() != b.read_bytes()


def test_adding_days_leaves_earlier_days_unchanged(tmp_path: Path) -> None:
    short = write_sample(tmp_path / "short", SampleSpec(days=2, flights_per_day=300))
    long = write_sample(tmp_path / "long", SampleSpec(days=5, flights_per_day=300))

    long_bytes = all_bytes(long)
    assert all(long_bytes[name] == data for name, data in all_bytes(short).items())


def test_files_are_utf8_with_lf_line_endings(sample: SampleFiles) -> None:
    for path in (sample.dimension, *sample.daily):
        data = path.read_bytes()
        assert b"\r" not in data
        assert data.endswith(b"\n")
        data.decode("utf-8")


def test_dimension_ids_are_unique_five_digit_dot_ids(sample: SampleFiles) -> None:
    ids = dimension_ids(sample)

    assert len(ids) == SPEC.airports
    assert len(set(ids)) == len(ids)
    assert all(10000 <= i <= 16999 for i in ids)


def test_dimension_rows_name_a_city_state_and_airport(sample: SampleFiles) -> None:
    rows = read_rows(sample.dimension)[1:]

    assert all(city and name for _, city, _, name in rows)
    assert all(len(state) == 2 and state.isupper() for _, _, state, _ in rows)
    assert len({city for _, city, _, _ in rows}) >= 60
    assert "Hartsfield-Jackson Atlanta International" in {name for *_, name in rows}


def test_more_airports_than_built_in_names_reuse_cities_with_other_names(tmp_path: Path) -> None:
    files = write_sample(tmp_path, SampleSpec(days=1, flights_per_day=10, airports=500))
    rows = read_rows(files.dimension)[1:]

    names = [name for *_, name in rows]
    assert len(rows) == 500
    assert len(set(names)) == 500
    assert any(name.endswith((" Regional", " Municipal")) for name in names)


def test_fields_with_commas_and_quotes_round_trip_through_csv_reader(sample: SampleFiles) -> None:
    raw = sample.dimension.read_text(encoding="utf-8")
    rows = read_rows(sample.dimension)[1:]
    cities = {city for _, city, _, _ in rows}
    names = {name for *_, name in rows}

    assert '"Washington, DC"' in raw
    assert '"Bob Hope ""Hollywood Burbank"""' in raw
    assert "Washington, DC" in cities
    assert any("," in name for name in names)
    assert 'Bob Hope "Hollywood Burbank"' in names


def test_unknown_airports_appear_in_flights_but_not_in_dimension(
    sample: SampleFiles, flights: list[list[str]]
) -> None:
    known = set(dimension_ids(sample))
    unknown_flights = [r for r in flights if int(r[1]) not in known or int(r[2]) not in known]
    unknown = {int(i) for r in unknown_flights for i in r[1:3]} - known

    assert len(unknown) == SPEC.unknown_airports
    assert all(10000 <= i <= 16999 for i in unknown)
    assert 0.003 <= len(unknown_flights) / len(flights) <= 0.01


def test_spec_without_unknown_airports_uses_only_dimension_ids(tmp_path: Path) -> None:
    files = write_sample(tmp_path, SampleSpec(days=2, flights_per_day=500, unknown_airports=0))

    known = set(dimension_ids(files))
    assert {int(i) for r in flight_rows(files) for i in r[1:3]} <= known


def test_origin_differs_from_destination(flights: list[list[str]]) -> None:
    assert all(row[1] != row[2] for row in flights)


def test_hubs_carry_far_more_flights_than_typical_airports(flights: list[list[str]]) -> None:
    departures = Counter(row[1] for row in flights)
    counts = sorted(departures.values(), reverse=True)

    assert counts[0] > 10 * statistics.median(counts)


def test_carriers_are_real_codes_with_uneven_shares(flights: list[list[str]]) -> None:
    real = {"AA", "DL", "UA", "WN", "B6", "AS", "NK", "F9", "G4", "HA", "9E", "OO", "YX", "MQ"}
    real.add("OH")
    carriers = Counter(row[0] for row in flights)

    assert set(carriers) <= real
    assert len(carriers) >= 12
    most, least = carriers.most_common()[0][1], carriers.most_common()[-1][1]
    assert most > 5 * least


def test_cancelled_share_roughly_matches_spec(flights: list[list[str]]) -> None:
    cancelled = [row for row in flights if row[3] == ""]

    assert abs(len(cancelled) / len(flights) - SPEC.cancelled_share) < 0.005


def test_larger_cancelled_share_cancels_more_flights(tmp_path: Path) -> None:
    files = write_sample(tmp_path, SampleSpec(days=3, flights_per_day=2000, cancelled_share=0.2))
    rows = flight_rows(files)

    share = sum(row[3] == "" for row in rows) / len(rows)
    assert abs(share - 0.2) < 0.02


def test_cancelled_rows_have_both_delays_empty(flights: list[list[str]]) -> None:
    with_an_empty_delay = [row for row in flights if "" in (row[3], row[4])]

    assert with_an_empty_delay
    assert all(row[3] == row[4] == "" for row in with_an_empty_delay)


def test_delays_are_integer_minutes_within_bounds(flights: list[list[str]]) -> None:
    delays = [int(d) for row in flights for d in row[3:5] if d != ""]

    assert delays
    assert all(-120 <= d <= 2400 for d in delays)


def test_most_flights_are_on_time_with_a_long_right_tail(tmp_path: Path) -> None:
    files = write_sample(tmp_path, SampleSpec(days=30, flights_per_day=2000))
    departures = [int(row[3]) for row in flight_rows(files) if row[3] != ""]

    on_time = sum(-15 <= d <= 15 for d in departures) / len(departures)
    assert on_time > 0.75
    assert 0.01 < sum(60 <= d <= 600 for d in departures) / len(departures) < 0.1
    assert sum(d > 1000 for d in departures) / len(departures) < 0.001
    assert max(departures) > 600


def test_arrival_delay_follows_departure_delay(flights: list[list[str]]) -> None:
    flown = [(int(row[3]), int(row[4])) for row in flights if row[3] != ""]

    correlation = statistics.correlation([d for d, _ in flown], [a for _, a in flown])
    assert correlation > 0.8


def test_daily_counts_vary_around_flights_per_day_with_lower_weekends(
    sample: SampleFiles,
) -> None:
    counts = {dt.date.fromisoformat(p.stem): len(read_rows(p)) - 1 for p in sample.daily}
    weekday = [n for day, n in counts.items() if day.weekday() < 5]
    weekend = [n for day, n in counts.items() if day.weekday() >= 5]

    low, high = 0.85 * SPEC.flights_per_day, 1.15 * SPEC.flights_per_day
    assert all(low <= n <= high for n in counts.values())
    assert len(set(counts.values())) > 1
    assert statistics.mean(weekend) < statistics.mean(weekday)


@pytest.mark.parametrize(
    "spec_args",
    [
        {"days": 0},
        {"days": 1, "flights_per_day": -1},
        {"days": 1, "airports": 1},
        {"days": 1, "unknown_airports": -1},
        {"days": 1, "airports": 6999, "unknown_airports": 2},
        {"days": 1, "cancelled_share": 1.5},
    ],
)
def test_specs_that_cannot_be_generated_are_rejected(spec_args: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        SampleSpec(**spec_args)
