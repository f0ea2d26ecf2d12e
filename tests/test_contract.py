import datetime as dt

import pytest

from pipeline.core.contract import (
    AIRPORT_DETAILS,
    AIRPORTS,
    DAILY_FLIGHTS,
    FLIGHT_LOAD_AUDIT,
    FLIGHT_PROCESSED,
    LOADED_AT,
    WAREHOUSE_TABLES,
    Column,
    ColumnType,
    Dialect,
    NotADailyFileError,
    Table,
    create_table_sql,
    flight_date_of,
    header_names,
)


def test_daily_file_headers_are_the_documented_ones() -> None:
    assert DAILY_FLIGHTS.headers == (
        "Carrier",
        "OriginAirportID",
        "DestAirportID",
        "DepDelay",
        "ArrDelay",
    )
    assert AIRPORTS.headers == ("airport_id", "city", "state", "name")


@pytest.mark.parametrize("header", ["depdelay", "DEPDELAY", " DepDelay "])
def test_headers_match_case_insensitively(header: str) -> None:
    column = DAILY_FLIGHTS.column_for_header(header)
    assert column is not None
    assert column.name == "dep_delay"


def test_unknown_header_is_an_extra_column() -> None:
    assert DAILY_FLIGHTS.column_for_header("TailNumber") is None


def test_flight_processed_has_origin_and_destination_details_from_the_dimension() -> None:
    assert FLIGHT_PROCESSED.column_names == (
        "flight_date", "carrier",
        "origin_airport_id", "origin_city", "origin_state", "origin_name",
        "dest_airport_id", "dest_city", "dest_state", "dest_name",
        "dep_delay", "arr_delay", "source_file", "loaded_at",
    )  # fmt: skip


def test_postgres_ddl_types_and_commit_timestamp() -> None:
    ddl = create_table_sql(FLIGHT_PROCESSED, Dialect.POSTGRES)
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS flight_processed (")
    assert "flight_date DATE NOT NULL" in ddl
    assert "dep_delay INTEGER," in ddl
    assert "loaded_at TIMESTAMPTZ DEFAULT now() NOT NULL" in ddl
    assert "SORTKEY" not in ddl


def test_redshift_ddl_sorts_by_flight_date() -> None:
    ddl = create_table_sql(FLIGHT_PROCESSED, Dialect.REDSHIFT)
    assert ddl.endswith("SORTKEY (flight_date)")
    audit = create_table_sql(FLIGHT_LOAD_AUDIT, Dialect.REDSHIFT)
    assert "sha256 VARCHAR(256) NOT NULL" in audit


@pytest.mark.parametrize(
    ("dialect", "now"), [(Dialect.REDSHIFT, "SYSDATE"), (Dialect.POSTGRES, "now()")]
)
def test_every_loaded_at_is_the_transactions_timestamp(dialect: Dialect, now: str) -> None:
    """Redshift's GETDATE() is each statement's start, so a load's COPY and its audit INSERT
    would differ; SYSDATE, like PostgreSQL's now(), is the transaction's."""
    stamped = [table for table in WAREHOUSE_TABLES if LOADED_AT in table.column_names]
    assert {table.name for table in stamped} == {t.name for t in WAREHOUSE_TABLES}
    for table in stamped:
        ddl = create_table_sql(table, dialect)
        assert f"loaded_at TIMESTAMPTZ DEFAULT {now} NOT NULL" in ddl, table.name
        assert "GETDATE" not in ddl.upper(), table.name


@pytest.mark.parametrize("dialect", list(Dialect))
def test_each_text_column_renders_its_own_width(dialect: Dialect) -> None:
    table = Table(
        "t", (Column("remark", ColumnType.STRING, width=1000), Column("note", ColumnType.STRING))
    )
    ddl = create_table_sql(table, dialect)
    assert "remark VARCHAR(1000)," in ddl
    assert "note VARCHAR(256)\n" in ddl


def test_only_text_columns_have_a_width_and_integers_are_32_bit() -> None:
    with pytest.raises(ValueError, match="only a text column has a width"):
        Column("n", ColumnType.INTEGER, width=4)
    assert ColumnType.INTEGER.bounds == (-2147483648, 2147483647)
    assert ColumnType.STRING.bounds is None


def test_warehouse_columns_fed_from_a_file_keep_its_type_width_and_nullability() -> None:
    by_name = {c.name: c for c in FLIGHT_PROCESSED.columns}
    for column in DAILY_FLIGHTS.columns:
        fed = by_name[column.name]
        assert (fed.type, fed.width, fed.nullable) == (column.type, column.width, column.nullable)
    airports = {c.name: c for c in AIRPORTS.columns}
    for detail in AIRPORT_DETAILS:
        for role in ("origin", "dest"):
            fed = by_name[f"{role}_{detail}"]
            assert (fed.type, fed.width) == (airports[detail].type, airports[detail].width)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("2024-01-31.csv", dt.date(2024, 1, 31)), ("raw/2023-12-01.csv", dt.date(2023, 12, 1))],
)
def test_flight_date_comes_from_the_file_name(name: str, expected: dt.date) -> None:
    assert flight_date_of(name) == expected


@pytest.mark.parametrize(
    "name", ["flights.csv", "2024-01-31.txt", "2024-02-30.csv", "x2024-01-01.csv"]
)
def test_names_without_a_real_date_are_refused(name: str) -> None:
    with pytest.raises(NotADailyFileError, match=r"YYYY-MM-DD|no real date"):
        flight_date_of(name)


def test_header_names_honour_quotes_and_drop_a_byte_order_mark_and_blanks() -> None:
    line = '\ufeffCarrier, "Origin,AirportID" ,DestAirportID\r\n'
    assert header_names(line) == ("Carrier", "Origin,AirportID", "DestAirportID")
    assert header_names("") == ()
