"""Deterministic, realistic sample data: the airport dimension and daily flight files.

Standard library only. The headers come from ``pipeline.core.contract``; the values imitate the US
DOT on-time data the pipeline is built for: 5-digit airport ids, real carrier codes with an
uneven market share, busy hubs, a long right tail of delays, cancelled flights with both delays
empty, and a few airport ids that the dimension does not know.

Every file is a function of the spec alone: the dimension draws from a ``random.Random`` seeded
with ``"<seed>:airports"`` and each day from one seeded with ``"<seed>:<date>"``, so the same
spec writes byte-identical files, and adding days leaves the earlier days' files unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Final

from pipeline.core.contract import AIRPORTS, DAILY_FLIGHTS

FIRST_AIRPORT_ID: Final = 10000
LAST_AIRPORT_ID: Final = 16999
DIMENSION_FILE: Final = "airport_codes.csv"
MAX_DELAY: Final = 2400
"""No delay, departure or arrival, exceeds this many minutes."""
UNKNOWN_AIRPORT_SHARE: Final = 0.005
"""Share of a day's flights with one end at an airport missing from the dimension."""

# (city, state, name) of real airports, roughly busiest first: the i-th airport of a sample
# takes the i-th entry and the i-th largest traffic weight. Some values need CSV quoting: a
# comma in "Washington, DC" and in the Minneapolis name, double quotes in the Burbank name.
_AIRPORTS: Final[tuple[tuple[str, str, str], ...]] = (
    ("Atlanta", "GA", "Hartsfield-Jackson Atlanta International"),
    ("Dallas/Fort Worth", "TX", "Dallas/Fort Worth International"),
    ("Denver", "CO", "Denver International"),
    ("Chicago", "IL", "Chicago O'Hare International"),
    ("Los Angeles", "CA", "Los Angeles International"),
    ("Charlotte", "NC", "Charlotte Douglas International"),
    ("Las Vegas", "NV", "Harry Reid International"),
    ("Phoenix", "AZ", "Phoenix Sky Harbor International"),
    ("Orlando", "FL", "Orlando International"),
    ("Seattle", "WA", "Seattle/Tacoma International"),
    ("Houston", "TX", "George Bush Intercontinental/Houston"),
    ("New York", "NY", "John F. Kennedy International"),
    ("Newark", "NJ", "Newark Liberty International"),
    ("San Francisco", "CA", "San Francisco International"),
    ("Boston", "MA", "Logan International"),
    ("Minneapolis", "MN", "Minneapolis-St Paul International, Wold-Chamberlain Field"),
    ("Detroit", "MI", "Detroit Metro Wayne County"),
    ("Miami", "FL", "Miami International"),
    ("Washington, DC", "VA", "Ronald Reagan Washington National"),
    ("New York", "NY", "LaGuardia"),
    ("Salt Lake City", "UT", "Salt Lake City International"),
    ("Fort Lauderdale", "FL", "Fort Lauderdale-Hollywood International"),
    ("Philadelphia", "PA", "Philadelphia International"),
    ("Baltimore", "MD", "Baltimore/Washington International Thurgood Marshall"),
    ("Washington, DC", "VA", "Washington Dulles International"),
    ("San Diego", "CA", "San Diego International"),
    ("Burbank", "CA", 'Bob Hope "Hollywood Burbank"'),
    ("Tampa", "FL", "Tampa International"),
    ("Nashville", "TN", "Nashville International"),
    ("Chicago", "IL", "Chicago Midway International"),
    ("Austin", "TX", "Austin - Bergstrom International"),
    ("Dallas", "TX", "Dallas Love Field"),
    ("Houston", "TX", "William P Hobby"),
    ("Portland", "OR", "Portland International"),
    ("St. Louis", "MO", "St Louis Lambert International"),
    ("Honolulu", "HI", "Daniel K Inouye International"),
    ("Raleigh/Durham", "NC", "Raleigh-Durham International"),
    ("Sacramento", "CA", "Sacramento International"),
    ("San Jose", "CA", "Norman Y. Mineta San Jose International"),
    ("Oakland", "CA", "Oakland International"),
    ("New Orleans", "LA", "Louis Armstrong New Orleans International"),
    ("Kansas City", "MO", "Kansas City International"),
    ("Cleveland", "OH", "Cleveland-Hopkins International"),
    ("Indianapolis", "IN", "Indianapolis International"),
    ("Pittsburgh", "PA", "Pittsburgh International"),
    ("San Antonio", "TX", "San Antonio International"),
    ("Columbus", "OH", "John Glenn Columbus International"),
    ("Cincinnati", "OH", "Cincinnati/Northern Kentucky International"),
    ("Fort Myers", "FL", "Southwest Florida International"),
    ("Santa Ana", "CA", "John Wayne Airport-Orange County"),
    ("Kahului", "HI", "Kahului Airport"),
    ("Jacksonville", "FL", "Jacksonville International"),
    ("West Palm Beach", "FL", "Palm Beach International"),
    ("Milwaukee", "WI", "General Mitchell International"),
    ("Ontario", "CA", "Ontario International"),
    ("Albuquerque", "NM", "Albuquerque International Sunport"),
    ("Omaha", "NE", "Eppley Airfield"),
    ("Memphis", "TN", "Memphis International"),
    ("Charleston", "SC", "Charleston AFB/International"),
    ("Buffalo", "NY", "Buffalo Niagara International"),
    ("Boise", "ID", "Boise Air Terminal"),
    ("Anchorage", "AK", "Ted Stevens Anchorage International"),
    ("Reno", "NV", "Reno/Tahoe International"),
    ("Oklahoma City", "OK", "Will Rogers World"),
    ("Richmond", "VA", "Richmond International"),
    ("Tulsa", "OK", "Tulsa International"),
    ("Louisville", "KY", "Louisville Muhammad Ali International"),
    ("Spokane", "WA", "Spokane International"),
    ("Hartford", "CT", "Bradley International"),
    ("Savannah", "GA", "Savannah/Hilton Head International"),
    ("El Paso", "TX", "El Paso International"),
    ("Birmingham", "AL", "Birmingham-Shuttlesworth International"),
    ("Des Moines", "IA", "Des Moines International"),
    ("Tucson", "AZ", "Tucson International"),
    ("Providence", "RI", "Rhode Island T F Green International"),
    ("Grand Rapids", "MI", "Gerald R. Ford International"),
    ("Greer", "SC", "Greenville-Spartanburg International"),
    ("Madison", "WI", "Dane County Regional-Truax Field"),
    ("Little Rock", "AR", "Bill and Hillary Clinton National/Adams Field"),
    ("Syracuse", "NY", "Syracuse Hancock International"),
    ("Kona", "HI", "Ellison Onizuka Kona International at Keahole"),
    ("Bozeman", "MT", "Bozeman Yellowstone International"),
    ("Key West", "FL", "Key West International"),
    ("Jackson", "WY", "Jackson Hole"),
)

# Airports beyond the list above are smaller fields in the same cities: "<City> <suffix>".
_SUFFIXES: Final = ("Regional", "Municipal", "International", "County", "Executive", "Metropolitan")

# Real carrier codes, weighted roughly by their share of US domestic flights.
_CARRIER_SHARES: Final = (
    ("WN", 17.0), ("DL", 13.5), ("AA", 13.0), ("OO", 10.0), ("UA", 9.5), ("YX", 4.5),
    ("B6", 4.0), ("NK", 4.0), ("9E", 3.5), ("MQ", 3.5), ("AS", 3.5), ("OH", 2.5),
    ("F9", 2.5), ("G4", 1.5), ("HA", 1.2),
)  # fmt: skip
_CARRIERS: Final = tuple(code for code, _ in _CARRIER_SHARES)
_CARRIER_CUM: Final = tuple(accumulate(share for _, share in _CARRIER_SHARES))


def _bell(low: int, high: int, mean: float, sd: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Whole minutes low..high and the cumulative weights of a normal curve over them."""
    minutes = tuple(range(low, high + 1))
    return minutes, tuple(accumulate(math.exp(-(((m - mean) / sd) ** 2) / 2) for m in minutes))


# An on-time departure: a few minutes early to a few late. Arrival minus departure: airlines
# pad their schedules, so most flights make up a few minutes in the air.
_DEP_MINUTES, _DEP_CUM = _bell(-30, 20, -4.0, 5.0)
_PAD_MINUTES, _PAD_CUM = _bell(-45, 40, -5.0, 9.0)

# Monday .. Sunday: weekends fly less.
_WEEKDAY_TRAFFIC: Final = (1.02, 1.0, 1.0, 1.02, 1.04, 0.9, 0.95)


@dataclass(frozen=True)
class SampleSpec:
    """What to generate: consecutive days from ``start``, each about ``flights_per_day`` flights.

    ``unknown_airports`` ids appear in flights but not in the dimension; ``cancelled_share`` is
    the expected share of flights with both delays empty (cancelled or diverted). Raises
    ValueError for a spec that cannot be generated (e.g. fewer than 2 airports).
    """

    days: int
    flights_per_day: int = 3000
    airports: int = 300
    unknown_airports: int = 3
    cancelled_share: float = 0.02
    start: dt.date = dt.date(2024, 1, 1)
    seed: int = 7

    def __post_init__(self) -> None:
        id_space = LAST_AIRPORT_ID - FIRST_AIRPORT_ID + 1
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.flights_per_day < 0:
            raise ValueError(f"flights_per_day must not be negative, got {self.flights_per_day}")
        if self.airports < 2:
            raise ValueError(f"airports must be at least 2 (origin != dest), got {self.airports}")
        if self.unknown_airports < 0:
            raise ValueError(f"unknown_airports must not be negative, got {self.unknown_airports}")
        if self.airports + self.unknown_airports > id_space:
            raise ValueError(
                f"airports + unknown_airports must fit the {id_space} ids "
                f"{FIRST_AIRPORT_ID}..{LAST_AIRPORT_ID}"
            )
        if not 0.0 <= self.cancelled_share <= 1.0:
            raise ValueError(f"cancelled_share must be in 0..1, got {self.cancelled_share}")


@dataclass(frozen=True)
class SampleFiles:
    """What ``write_sample`` wrote."""

    dimension: Path
    daily: tuple[Path, ...]
    rows: int


def write_sample(out_dir: Path, spec: SampleSpec) -> SampleFiles:
    """Write ``airport_codes.csv`` and one ``YYYY-MM-DD.csv`` per day into ``out_dir``.

    Creates ``out_dir`` if needed and overwrites files of the same names. Files are UTF-8 with
    LF line endings; the same spec always writes the same bytes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    id_rng = random.Random(f"{spec.seed}:airports")
    ids = id_rng.sample(range(FIRST_AIRPORT_ID, LAST_AIRPORT_ID + 1), spec.airports)
    known = set(ids)
    unknown = [i for i in range(FIRST_AIRPORT_ID, LAST_AIRPORT_ID + 1) if i not in known]
    unknown_ids = id_rng.sample(unknown, spec.unknown_airports)

    dimension = out_dir / DIMENSION_FILE
    write_dimension(dimension, ids, id_rng)

    # Zipf-like traffic: the i-th airport (the i-th busiest identity) gets weight 1 / (i + 6).
    airport_cum = list(accumulate(1.0 / (rank + 6) for rank in range(len(ids))))
    daily: list[Path] = []
    rows = 0
    for index in range(spec.days):
        day = spec.start + dt.timedelta(days=index)
        path = out_dir / f"{day.isoformat()}.csv"
        rows += _write_day(
            path,
            day=day,
            index=index,
            spec=spec,
            airport_ids=ids,
            airport_cum=airport_cum,
            unknown_ids=unknown_ids,
        )
        daily.append(path)
    return SampleFiles(dimension=dimension, daily=tuple(daily), rows=rows)


def write_dimension(path: Path, airport_ids: Sequence[int], rng: random.Random) -> None:
    """Write the airport dimension for ``airport_ids``, one row each, sorted by id.

    Identities are assigned by position: the i-th id gets the i-th entry of the built-in list of
    real airports (busiest first), so callers weighting traffic by position get busy hubs with
    hub names. Ids past the list become smaller airports in the same cities ("Denver Regional"),
    chosen with ``rng``; names repeat only when more airports are asked for than can be named.
    """
    identities = list(_AIRPORTS[: len(airport_ids)])
    extra = len(airport_ids) - len(identities)
    if extra > 0:
        taken = {name for _, _, name in _AIRPORTS}
        places = list(dict.fromkeys((city, state) for city, state, _ in _AIRPORTS))
        smaller: list[tuple[str, str, str]] = []
        for suffix in _SUFFIXES:
            for city, state in places:
                name = f"{city.split(',')[0]} {suffix}"
                if name not in taken:
                    taken.add(name)
                    smaller.append((city, state, name))
        rng.shuffle(smaller)
        identities += [smaller[i % len(smaller)] for i in range(extra)]
    rows = sorted(
        (airport_id, city, state, name)
        for airport_id, (city, state, name) in zip(airport_ids, identities, strict=True)
    )
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(AIRPORTS.headers)
        writer.writerows(rows)


def _write_day(
    path: Path,
    *,
    day: dt.date,
    index: int,
    spec: SampleSpec,
    airport_ids: Sequence[int],
    airport_cum: Sequence[float],
    unknown_ids: Sequence[int],
) -> int:
    """Write one day's flights and return how many rows were written."""
    rng = random.Random(f"{spec.seed}:{day.isoformat()}")
    count = round(spec.flights_per_day * _WEEKDAY_TRAFFIC[day.weekday()] * rng.uniform(0.94, 1.06))

    carriers = rng.choices(_CARRIERS, cum_weights=_CARRIER_CUM, k=count)
    origins = rng.choices(airport_ids, cum_weights=airport_cum, k=count)
    dests = rng.choices(airport_ids, cum_weights=airport_cum, k=count)
    for i in range(count):
        while dests[i] == origins[i]:
            dests[i] = rng.choices(airport_ids, cum_weights=airport_cum)[0]

    # Unknown airports: a fixed small share of flights, cycling through the ids from a
    # day-dependent offset so every unknown id shows up once enough flights are written.
    if unknown_ids and count:
        unknown_count = max(1, round(count * UNKNOWN_AIRPORT_SHARE))
        for j, position in enumerate(rng.sample(range(count), unknown_count)):
            unknown_id = unknown_ids[(index + j) % len(unknown_ids)]
            if rng.random() < 0.5:
                origins[position] = unknown_id
            else:
                dests[position] = unknown_id

    # Delays: most flights leave a few minutes early or on time; a day-dependent share (weather)
    # is delayed by a log-normal amount, which gives the long right tail; arrival follows
    # departure, give or take the padding in the schedule. The common small offsets are drawn
    # in bulk from tables; only delayed flights cost a call each.
    deps = rng.choices(_DEP_MINUTES, cum_weights=_DEP_CUM, k=count)
    pads = rng.choices(_PAD_MINUTES, cum_weights=_PAD_CUM, k=count)
    cancelled_below = spec.cancelled_share
    delayed_below = cancelled_below + 0.18 * rng.uniform(0.6, 1.6)
    uniform = rng.random
    lognormal = rng.lognormvariate
    rows: list[tuple[str, int, int, int | str, int | str]] = []
    append = rows.append
    for carrier, origin, dest, dep, pad in zip(carriers, origins, dests, deps, pads, strict=True):
        u = uniform()
        if u < cancelled_below:
            append((carrier, origin, dest, "", ""))
        elif u < delayed_below:
            late = min(MAX_DELAY, (dep if dep > 0 else 0) + int(lognormal(3.0, 1.15)))
            append((carrier, origin, dest, late, min(MAX_DELAY, late + pad)))
        else:
            append((carrier, origin, dest, dep, dep + pad))

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DAILY_FLIGHTS.headers)
        writer.writerows(rows)
    return count
