"""Expectations of the gate that GX lacks or runs too slowly on million-row daily files.

GX's pandas implementation of ``expect_column_values_to_match_regex`` runs the regular
expression once per row in Python, and each of GX's own map expectations first copies the whole
batch without the column's missing rows, once for its condition and again for each unexpected
list it reports. A daily file has a million rows but only a few thousand distinct values per
column, so every expectation here decides each distinct value once and spreads the answer back
to the rows, on the batch as it is. Everything else is GX's own: the per-row counts and
unexpected values, the Data Docs rendering.

- ``ExpectColumnValuesToMatchRegexPerValue``: ``expect_column_values_to_match_regex`` (on
  Spark it is ``rlike``, as GX's).
- ``ExpectColumnValuesToBeBetweenPerValue`` and ``ExpectColumnValuesToBeInSetPerValue``:
  ``expect_column_values_to_be_between`` and ``expect_column_values_to_be_in_set``, each
  deciding a distinct value as GX's own condition decides a row.
- The warehouse's limits (``WarehouseLimit``), on the values as read, so that the gate refuses
  what the warehouse would refuse at load: ``ExpectColumnIntegersToBeBetween`` (exact, on the
  text: the float twin of a number past ~300 digits is NaN, which a range check passes),
  ``ExpectColumnValueBytesToBeAtMost`` (bytes of UTF-8, as Redshift counts a VARCHAR) and
  ``ExpectColumnValuesToLoadVerbatim``. The gate reads with pandas only, so these have no
  Spark spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine, SparkDFExecutionEngine
from great_expectations.expectations.expectation import ColumnMapExpectation
from great_expectations.expectations.metrics.column_map_metrics import ColumnValuesBetween
from great_expectations.expectations.metrics.map_metric_provider import (
    ColumnMapMetricProvider,
    column_condition_partial,
)
from great_expectations.render import LegacyRendererType, RenderedStringTemplateContent
from great_expectations.render.renderer.renderer import renderer
from great_expectations.render.renderer_configuration import (
    RendererConfiguration,
    RendererValueType,
)

if TYPE_CHECKING:
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )


def _per_value(column: pd.Series, decide: Callable[[pd.Series], Any]) -> pd.Series:
    """``decide`` (the distinct values in, text or numbers as the column holds them, one bool
    each out) spread back to the rows; a missing value (None, NaN) meets the expectation, as
    GX leaves it out of the rows a map expectation judges (the not-null expectations judge
    those)."""
    codes, distinct = pd.factorize(column)  # a missing value's code is -1
    decided = np.asarray(decide(pd.Series(np.asarray(distinct))), dtype=bool)
    return pd.Series(np.append(decided, True)[codes], index=column.index)


class _PerValueMetric(ColumnMapMetricProvider):
    """A condition decided per distinct value, missing values included (``_per_value``).

    GX would otherwise copy the whole frame without the column's missing rows for every
    expectation and metric (``filter_column_isnull``), which dominated the check of a large
    file.
    """

    filter_column_isnull = False


class ColumnValuesMatchRegexPerValue(_PerValueMetric):
    """Whether each row's value matches ``regex``, decided once per distinct value."""

    # GX turns the decorated methods into classmethods, hence `cls`.
    condition_metric_name = "column_values.match_regex_per_value"
    condition_value_keys = ("regex",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, regex: str, **kwargs: Any) -> pd.Series:  # noqa: N805
        return _per_value(column, lambda values: values.str.contains(regex))

    @column_condition_partial(engine=SparkDFExecutionEngine)
    def _spark(cls, column: Any, regex: str, **kwargs: Any) -> Any:  # noqa: N805
        return column.isNull() | column.rlike(regex)  # missing values meet it, as in pandas


class ExpectColumnValuesToMatchRegexPerValue(gxe.ExpectColumnValuesToMatchRegex):
    """``expect_column_values_to_match_regex``, evaluated once per distinct value."""

    map_metric = "column_values.match_regex_per_value"


class ColumnValuesBetweenPerValue(_PerValueMetric):
    """Whether each row's value is within min_value..max_value, decided once per distinct value
    by GX's own condition."""

    condition_metric_name = "column_values.between_per_value"
    condition_value_keys = ColumnValuesBetween.condition_value_keys

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,  # noqa: N805
        column: pd.Series,
        min_value: Any = None,
        max_value: Any = None,
        strict_min: bool = False,
        strict_max: bool = False,
        **kwargs: Any,
    ) -> pd.Series:
        return _per_value(
            column,
            lambda values: ColumnValuesBetween._pandas_vectorized(
                values, min_value, max_value, strict_min, strict_max
            ),
        )


class ExpectColumnValuesToBeBetweenPerValue(gxe.ExpectColumnValuesToBeBetween):
    """``expect_column_values_to_be_between`` on numbers, evaluated once per distinct value."""

    map_metric = "column_values.between_per_value"


class ColumnValuesInSetPerValue(_PerValueMetric):
    """Whether each row's value is one of ``value_set``, decided once per distinct value."""

    condition_metric_name = "column_values.in_set_per_value"
    condition_value_keys = ("value_set",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, value_set: Any, **kwargs: Any) -> pd.Series:  # noqa: N805
        return _per_value(column, lambda values: values.isin(value_set))  # as GX's condition


class ExpectColumnValuesToBeInSetPerValue(gxe.ExpectColumnValuesToBeInSet):
    """``expect_column_values_to_be_in_set``, evaluated once per distinct value."""

    map_metric = "column_values.in_set_per_value"


class _InPlainWords(ColumnMapExpectation):
    """A column map expectation whose Data Docs line is the sentence of its
    ``_prescriptive_template`` (GX renders a bare ``expect_...(**kwargs)`` otherwise)."""

    @classmethod
    @renderer(renderer_type=LegacyRendererType.PRESCRIPTIVE)
    def _prescriptive_renderer(
        cls,
        configuration: ExpectationConfiguration | None = None,
        result: Any = None,
        runtime_configuration: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[RenderedStringTemplateContent]:
        rendered = cls._prescriptive_template(
            RendererConfiguration(
                configuration=configuration,
                result=result,
                runtime_configuration=runtime_configuration,
            )
        )
        params = {name: param["value"] for name, param in rendered.params.dict().items()}
        template = {"template": rendered.template_str, "params": params}
        return [
            RenderedStringTemplateContent(
                content_block_type="string_template", string_template=template
            )
        ]


class WarehouseLimit:
    """An expectation that stands for a limit of the warehouse: it says in plain words why a
    value breaks it, for findings and alerts."""

    def refusal(self, value: str) -> str:
        """Why ``value`` cannot load, naming the limit: ``99999999999 is outside ...``."""
        raise NotImplementedError


def _cut(value: str, most: int = 40) -> str:
    """A value short enough for a message: a 10 MB value is shown by its start."""
    return value if len(value) <= most else value[:most] + "…"


# --- integers within the warehouse's range ---------------------------------------------------

_INTEGER_TEXT = re.compile(r"-?[0-9]+")


def _integer_within(text: str, low: int, high: int) -> bool:
    """Whether integer text is within low..high; other text is the type check's to refuse."""
    if not _INTEGER_TEXT.fullmatch(text):
        return True
    # int() refuses more than 4,300 digits, and any number longer than the bounds is outside.
    digits = text.lstrip("-").lstrip("0")
    return len(digits) <= max(len(str(low)), len(str(high))) and low <= int(text) <= high


class ColumnIntegersBetween(_PerValueMetric):
    """Whether each row's integer text is within min_value..max_value, exactly."""

    condition_metric_name = "column_values.integer_text_between"
    condition_value_keys = ("min_value", "max_value")

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(
        cls,  # noqa: N805
        column: pd.Series,
        min_value: int,
        max_value: int,
        **kwargs: Any,
    ) -> pd.Series:
        return _per_value(
            column, lambda values: values.map(lambda v: _integer_within(v, min_value, max_value))
        )


class ExpectColumnIntegersToBeBetween(WarehouseLimit, gxe.ExpectColumnValuesToBeBetween):
    """``expect_column_values_to_be_between`` on integer text, decided exactly per value."""

    # Integers, not GX's floats: exact bounds, and shown as the warehouse states them.
    min_value: int
    max_value: int

    map_metric = "column_values.integer_text_between"

    def refusal(self, value: str) -> str:
        return f"{_cut(value)} is outside {self.min_value}..{self.max_value}"


# --- text within the column's width, in bytes --------------------------------------------------


class ColumnValueBytesAtMost(_PerValueMetric):
    """Whether each row's value takes at most ``max_bytes`` bytes of UTF-8."""

    condition_metric_name = "column_values.utf8_bytes_at_most"
    condition_value_keys = ("max_bytes",)

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, max_bytes: int, **kwargs: Any) -> pd.Series:  # noqa: N805
        return _per_value(column, lambda values: values.str.encode("utf-8").str.len() <= max_bytes)


class ExpectColumnValueBytesToBeAtMost(WarehouseLimit, _InPlainWords):
    """Every value fits ``max_bytes`` bytes of UTF-8: a Redshift ``VARCHAR(max_bytes)``.

    Redshift counts a VARCHAR's width in bytes, PostgreSQL in characters; a value within the
    bytes fits both, and a multibyte one that fits in characters alone is refused.
    """

    max_bytes: int

    map_metric = "column_values.utf8_bytes_at_most"
    success_keys = ("max_bytes", "mostly")
    args_keys = ("column", "max_bytes")

    @classmethod
    def _prescriptive_template(
        cls, renderer_configuration: RendererConfiguration[Any]
    ) -> RendererConfiguration[Any]:
        renderer_configuration.add_param(name="column", param_type=RendererValueType.STRING)
        renderer_configuration.add_param(name="max_bytes", param_type=RendererValueType.NUMBER)
        renderer_configuration.template_str = "$column values must take at most $max_bytes bytes."
        return renderer_configuration

    def refusal(self, value: str) -> str:
        size = len(value.encode("utf-8"))
        return (
            f"{_cut(value)!r} is {size:,} bytes of UTF-8 ({len(value):,} characters), "
            f"over the column's {self.max_bytes} bytes"
        )


# --- text the warehouse loads as it is -------------------------------------------------------

# The validated copy is CSV that the load reads one row per line (Spark without multiLine, and
# the twin proves row counts from line counts), so a value may hold no line feed or carriage
# return. NUL, which neither PostgreSQL's text nor Redshift's VARCHAR can hold, never gets
# this far: the gate refuses a file with a NUL byte as binary (``quality.gate.decode``). Every
# other character is carried: the staged format escapes backslash and tab, and the gate's text
# is valid Unicode (Python's strict UTF-8 decoder refuses surrogates and overlong forms;
# Latin-1 maps every byte), so it re-encodes as valid UTF-8 of at most 4 bytes a character,
# which Redshift's VARCHAR takes. A value of exactly `\N` is Redshift's COPY NULL marker: it
# would load as NULL there (and as `\N` on PostgreSQL).
_UNCARRIED: dict[str, str] = {"\n": "a line feed", "\r": "a carriage return"}
NULL_MARKER = "\\N"
_NOT_VERBATIM = f"[{''.join(_UNCARRIED)}]|^{re.escape(NULL_MARKER)}$"


class ColumnValuesLoadVerbatim(_PerValueMetric):
    """Whether each row's value loads into the warehouse exactly as it is."""

    condition_metric_name = "column_values.load_verbatim"

    @column_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column: pd.Series, **kwargs: Any) -> pd.Series:  # noqa: N805
        return _per_value(column, lambda values: ~values.str.contains(_NOT_VERBATIM))


class ExpectColumnValuesToLoadVerbatim(WarehouseLimit, _InPlainWords):
    """No value holds a character the validated copy or the COPY cannot carry, nor is the
    COPY's NULL marker."""

    map_metric = "column_values.load_verbatim"
    success_keys = ("mostly",)
    args_keys = ("column",)

    @classmethod
    def _prescriptive_template(
        cls, renderer_configuration: RendererConfiguration[Any]
    ) -> RendererConfiguration[Any]:
        renderer_configuration.add_param(name="column", param_type=RendererValueType.STRING)
        renderer_configuration.template_str = (
            "$column values must hold no line feed or carriage return, and must not be \\N."
        )
        return renderer_configuration

    def refusal(self, value: str) -> str:
        if value == NULL_MARKER:
            return f"{NULL_MARKER} would load as NULL on Redshift (its COPY's NULL marker)"
        held = " and ".join(name for char, name in _UNCARRIED.items() if char in value)
        return f"{_cut(value)!r} holds {held}, which the warehouse load cannot carry"
