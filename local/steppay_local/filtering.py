"""Lambda event filtering (an event source mapping's ``FilterCriteria``), as the local pollers apply it.

Lambda documents its filter rules as the EventBridge pattern subset below (Lambda developer guide,
"Control which events Lambda sends to your function" / "Lambda event filtering", and its DynamoDB
and SQS pages). Up to five filters per mapping (ten on a quota increase), ORed; a pattern is a JSON
object of at most 4096 characters matched against the whole record as Lambda's event carries it:
fields ANDed, the values listed for a field ORed, a field the pattern names must be in the record.

Rules: exact values (string, number, true/false, null; ``""`` is the empty string), ``prefix``,
``suffix``, ``equals-ignore-case``, ``anything-but`` (values, or one ``prefix``/``suffix``/
``equals-ignore-case``), ``numeric`` (``=``, or one or two of ``<``/``<=``/``>``/``>=``), ``exists``.
Strings match character by character; numbers exactly by their JSON text (300 is not 300.0), except
under ``numeric``. An array in the record matches when one of its elements does. ``exists`` and the
value rules apply to leaves only (a DynamoDB attribute is ``{"S": ...}``: name the type).

SQS: a pattern whose ``body`` is an object matches only bodies that are JSON (parsed first); one
whose ``body`` is a list of rules matches only bodies that are not JSON; a pattern without ``body``
skips that check. DynamoDB: the ``dynamodb`` part must be an object.

The EventBridge-only operators (``wildcard``, ``cidr``, ``$or``) are not in Lambda's documented
syntax and are refused, like any malformed pattern, when the template is loaded. moto's own
EventBridge matcher is not used: it takes ``true`` for ``1`` and ``300.0`` for ``300``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

DEFAULT_MAX_FILTERS = 5  # Lambda's default quota per event source mapping (10 on request)
MAX_PATTERN_LENGTH = 4096
NUMERIC_OPERATORS = frozenset({"=", "<", "<=", ">", ">="})
STRING_OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case"})

Source = Literal["dynamodb", "sqs"]


class FilterPatternError(ValueError):
    """A ``FilterCriteria`` Lambda would refuse when the event source mapping is created."""


@dataclass(frozen=True)
class JsonNumber:
    """A JSON number, kept with its text: exact matching compares the text, ``numeric`` the value."""

    text: str

    @property
    def value(self) -> Decimal:
        return Decimal(self.text)


class _Missing:
    pass


MISSING = _Missing()


def _loads(text: str) -> Any:
    return json.loads(text, parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=_no_constant)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def as_json_value(value: Any) -> Any:
    """A Python record (as the pollers build it) in the matcher's terms: numbers as their JSON text."""
    return _loads(json.dumps(value))


# -- validation ----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, JsonNumber)


def _check_rule(rule: Any, where: str) -> None:
    if rule is None or isinstance(rule, str | bool) or _is_number(rule):
        return
    if not isinstance(rule, dict) or len(rule) != 1:
        raise FilterPatternError(f"{where}: a rule is a value or an object with one operator, not {rule!r}")
    [(operator, operand)] = rule.items()
    if operator in STRING_OPERATORS:
        if not isinstance(operand, str):
            raise FilterPatternError(f"{where}: {operator!r} takes a string")
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise FilterPatternError(f"{where}: 'exists' takes true or false")
    elif operator == "anything-but":
        values = operand if isinstance(operand, list) else [operand]
        if isinstance(operand, dict):
            if len(operand) != 1 or next(iter(operand)) not in STRING_OPERATORS:
                raise FilterPatternError(f"{where}: 'anything-but' takes values or one prefix/suffix rule")
            if not isinstance(next(iter(operand.values())), str):
                raise FilterPatternError(f"{where}: 'anything-but' {next(iter(operand))!r} takes a string")
        elif not values or not all(isinstance(v, str) or _is_number(v) for v in values):
            raise FilterPatternError(f"{where}: 'anything-but' takes strings or numbers")
    elif operator == "numeric":
        _check_numeric(operand, where)
    else:
        raise FilterPatternError(f"{where}: {operator!r} is not a Lambda filter rule")


def _check_numeric(operand: Any, where: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise FilterPatternError(f"{where}: 'numeric' takes one or two [operator, number] pairs")
    operators = operand[0::2]
    for operator, number in zip(operators, operand[1::2], strict=True):
        if operator not in NUMERIC_OPERATORS or not _is_number(number):
            raise FilterPatternError(f"{where}: 'numeric' pairs are an operator (= < <= > >=) and a number")
    if len(operators) == 2 and ("=" in operators or {operators[0][0], operators[1][0]} != {"<", ">"}):
        raise FilterPatternError(f"{where}: a 'numeric' range is one lower and one upper bound")


def _check_node(node: Any, where: str) -> None:
    if not isinstance(node, dict):
        raise FilterPatternError(f"{where}: a pattern is a JSON object")
    for key, value in node.items():
        path = f"{where}.{key}"
        if key.startswith("$"):
            raise FilterPatternError(f"{path}: {key!r} is not in Lambda's filter syntax")
        if isinstance(value, dict):
            _check_node(value, path)
        elif isinstance(value, list):
            if not value:
                raise FilterPatternError(f"{path}: empty rule lists are not allowed")
            for rule in value:
                _check_rule(rule, path)
        else:
            raise FilterPatternError(f"{path}: must be an object or a list of rules")


@dataclass(frozen=True)
class EventFilter:
    """A mapping's parsed ``FilterCriteria``: a record passes when one of its patterns matches."""

    source: Source
    patterns: tuple[dict[str, Any], ...]

    def matches(self, record: Mapping[str, Any]) -> bool:
        value = as_json_value(record)
        return any(_matches_record(pattern, value, self.source) for pattern in self.patterns)

    def split(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int]]:
        """Indexes of the records that pass and of those filtered out, each in order."""
        passed: list[int] = []
        dropped: list[int] = []
        for index, record in enumerate(records):
            (passed if self.matches(record) else dropped).append(index)
        return passed, dropped


def parse_filter_criteria(
    criteria: Any, source: Source, *, where: str, max_filters: int = DEFAULT_MAX_FILTERS
) -> EventFilter | None:
    """Validate an event's ``FilterCriteria`` as Lambda does at mapping creation; None when it has none."""
    if criteria is None or criteria == {}:
        return None
    if not isinstance(criteria, dict) or set(criteria) - {"Filters"}:
        raise FilterPatternError(f"{where}: FilterCriteria is {{'Filters': [{{'Pattern': '...'}}]}}")
    filters = criteria.get("Filters")
    if filters is None or filters == []:
        return None
    if not isinstance(filters, list):
        raise FilterPatternError(f"{where}: FilterCriteria.Filters is a list")
    if len(filters) > max_filters:
        raise FilterPatternError(
            f"{where}: {len(filters)} filters; Lambda allows {max_filters} per event source mapping"
        )
    patterns: list[dict[str, Any]] = []
    for index, entry in enumerate(filters):
        at = f"{where}.Filters[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"Pattern"}:
            raise FilterPatternError(f"{at}: a filter is {{'Pattern': '<JSON string>'}}")
        text = entry.get("Pattern")
        if not isinstance(text, str):
            raise FilterPatternError(f"{at}.Pattern: must be a string holding a JSON object")
        if len(text) > MAX_PATTERN_LENGTH:
            raise FilterPatternError(f"{at}.Pattern: longer than {MAX_PATTERN_LENGTH} characters")
        try:
            pattern = _loads(text)
        except ValueError as exc:
            raise FilterPatternError(f"{at}.Pattern: not JSON ({exc})") from exc
        _check_node(pattern, f"{at}.Pattern")
        if source == "dynamodb" and "dynamodb" in pattern and not isinstance(pattern["dynamodb"], dict):
            raise FilterPatternError(f"{at}.Pattern: the 'dynamodb' data must be filtered with a JSON object")
        patterns.append(pattern)
    return EventFilter(source, tuple(patterns))


# -- matching ------------------------------------------------------------------------------------


def _matches_record(pattern: dict[str, Any], record: Any, source: Source) -> bool:
    if source == "sqs" and "body" in pattern and isinstance(record, dict):
        body = record.get("body")
        parsed: Any = MISSING
        if isinstance(body, str):
            try:
                parsed = _loads(body)
            except ValueError:
                parsed = MISSING
        body_rule = pattern["body"]
        if isinstance(body_rule, dict):
            if parsed is MISSING:
                return False  # a JSON pattern never matches a plain-string body
            record = {**record, "body": parsed}
        elif parsed is not MISSING:
            return False  # plain-string rules never match a JSON body
    return _matches_node(pattern, record)


def _matches_node(pattern: dict[str, Any], value: Any) -> bool:
    if isinstance(value, list):
        # Array consistency: the fields of one pattern match within one element.
        return any(_matches_node(pattern, element) for element in value)
    for key, rules in pattern.items():
        child = value.get(key, MISSING) if isinstance(value, dict) else MISSING
        if isinstance(rules, dict):
            if child is MISSING or not isinstance(child, dict | list):
                if not _matches_absent(rules):
                    return False
            elif not _matches_node(rules, child):
                return False
        elif not _matches_leaf(rules, child):
            return False
    return True


def _matches_absent(pattern: dict[str, Any]) -> bool:
    """A nested pattern against a part the record lacks: only ``exists: false`` rules can hold."""
    for rules in pattern.values():
        if isinstance(rules, dict):
            if not _matches_absent(rules):
                return False
        elif not any(isinstance(r, dict) and r.get("exists") is False for r in rules):
            return False
    return True


def _leaves(value: Any) -> list[Any]:
    if value is MISSING or isinstance(value, dict):
        return []  # rules apply to leaves only
    if isinstance(value, list):
        return [v for v in value if not isinstance(v, dict | list)]
    return [value]


def _matches_leaf(rules: list[Any], value: Any) -> bool:
    leaves = _leaves(value)
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if bool(leaves) is rule["exists"]:
                return True
        elif any(_matches_rule(rule, leaf) for leaf in leaves):
            return True
    return False


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python; JSON's true is not 1.
    return type(a) is type(b) and a == b


def _matches_string_rule(operator: str, operand: str, leaf: Any) -> bool:
    if not isinstance(leaf, str):
        return False
    if operator == "prefix":
        return leaf.startswith(operand)
    if operator == "suffix":
        return leaf.endswith(operand)
    return leaf.casefold() == operand.casefold()  # equals-ignore-case


def _matches_rule(rule: Any, leaf: Any) -> bool:
    if not isinstance(rule, dict):
        return _same(rule, leaf)
    [(operator, operand)] = rule.items()
    if operator in STRING_OPERATORS:
        return _matches_string_rule(operator, operand, leaf)
    if operator == "anything-but":
        if isinstance(operand, dict):
            [(inner, text)] = operand.items()
            return isinstance(leaf, str) and not _matches_string_rule(inner, text, leaf)
        excluded = operand if isinstance(operand, list) else [operand]
        return not any(_same(leaf, v) for v in excluded)
    if operator == "numeric":
        if not isinstance(leaf, JsonNumber):
            return False
        try:
            number = leaf.value
        except InvalidOperation:
            return False
        return all(
            _compare(number, op, bound.value) for op, bound in zip(operand[0::2], operand[1::2], strict=True)
        )
    return False


def _compare(number: Decimal, operator: str, bound: Decimal) -> bool:
    if operator == "=":
        return number == bound
    if operator == "<":
        return number < bound
    if operator == "<=":
        return number <= bound
    if operator == ">":
        return number > bound
    return number >= bound
