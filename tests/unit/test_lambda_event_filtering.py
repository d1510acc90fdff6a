"""The local pollers' Lambda event filtering, against the examples of Lambda's documentation.

Sources: the Lambda developer guide's "Lambda event filtering" page (filter rule syntax table,
multi-level DynamoDB example, the SQS body-format table, five filters per mapping) and its
DynamoDB and SQS filtering pages.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from steppay_local.filtering import EventFilter, FilterPatternError, Source, parse_filter_criteria
from steppay_local.template import DynamoDBEvent, SqsEvent, Template, TemplateError


def criteria(*patterns: Any, source: Source = "dynamodb", max_filters: int = 5) -> EventFilter:
    parsed = parse_filter_criteria(
        {"Filters": [{"Pattern": p if isinstance(p, str) else json.dumps(p)} for p in patterns]},
        source,
        where="Fn.Events.E.FilterCriteria",
        max_filters=max_filters,
    )
    assert parsed is not None
    return parsed


def passes(pattern: dict[str, Any], record: dict[str, Any], source: Source = "dynamodb") -> bool:
    return criteria(pattern, source=source).matches(record)


# -- the rule syntax table ----------------------------------------------------------------------


def test_null_and_empty_are_different_values() -> None:
    null = {"UserID": [None]}
    assert passes(null, {"UserID": None})
    assert not passes(null, {"UserID": ""})
    assert not passes(null, {})  # a missing field is not null
    empty = {"LastName": [""]}
    assert passes(empty, {"LastName": ""})
    assert not passes(empty, {"LastName": None})
    assert not passes(empty, {"LastName": "Doe"})


def test_equals_and_or() -> None:
    rule = {"Location": ["New York"], "Day": ["Monday"]}
    assert passes(rule, {"Location": "New York", "Day": "Monday", "other": 1})
    assert not passes(rule, {"Location": "New York", "Day": "Tuesday"})
    assert not passes(rule, {"Location": "New York"})  # every field the pattern names must be there
    either = {"PaymentType": ["Credit", "Debit"]}
    assert passes(either, {"PaymentType": "Debit"})
    assert not passes(either, {"PaymentType": "credit"})  # no case folding


def test_anything_but_needs_the_field() -> None:
    rule = {"Weather": [{"anything-but": ["Raining"]}]}
    assert passes(rule, {"Weather": "Sunny"})
    assert not passes(rule, {"Weather": "Raining"})
    assert not passes(rule, {})
    prefix = {"Weather": [{"anything-but": {"prefix": "Rain"}}]}
    assert passes(prefix, {"Weather": "Snow"}) and not passes(prefix, {"Weather": "Rainy"})


def test_numeric_equals_and_range() -> None:
    equals = {"Price": [{"numeric": ["=", 100]}]}
    assert passes(equals, {"Price": 100}) and passes(equals, {"Price": 100.0})
    assert not passes(equals, {"Price": "100"})  # a string is not a number
    assert not passes(equals, {"Price": True})
    rng = {"Price": [{"numeric": [">", 10, "<=", 20]}]}
    assert [passes(rng, {"Price": p}) for p in (10, 10.5, 20, 21)] == [False, True, True, False]


def test_exact_numbers_and_booleans_are_matched_by_their_json_text() -> None:
    assert passes({"n": [300]}, {"n": 300})
    assert not passes({"n": [300]}, {"n": 300.0})  # 300, 300.0 and 3.0e2 are not equal
    assert not passes({"n": [1]}, {"n": True})  # moto's matcher says they are
    assert passes({"flag": [True]}, {"flag": True}) and not passes({"flag": [True]}, {"flag": 1})


def test_exists_and_does_not_exist_apply_to_leaves() -> None:
    assert passes({"ProductName": [{"exists": True}]}, {"ProductName": "x"})
    assert not passes({"ProductName": [{"exists": True}]}, {})
    assert passes({"ProductName": [{"exists": False}]}, {})
    assert not passes({"ProductName": [{"exists": False}]}, {"ProductName": None})
    # An object is not a leaf: a DynamoDB attribute exists through its type.
    image = {"dynamodb": {"NewImage": {"a": {"S": "v"}}}}
    assert not passes({"dynamodb": {"NewImage": {"a": [{"exists": True}]}}}, image)
    assert passes({"dynamodb": {"NewImage": {"a": {"S": [{"exists": True}]}}}}, image)
    assert passes({"dynamodb": {"NewImage": {"b": {"S": [{"exists": False}]}}}}, image)
    assert passes({"dynamodb": {"OldImage": {"b": {"S": [{"exists": False}]}}}}, image)


def test_prefix_suffix_and_equals_ignore_case() -> None:
    assert passes({"Region": [{"prefix": "us-"}]}, {"Region": "us-east-1"})
    assert not passes({"Region": [{"prefix": "us-"}]}, {"Region": "eu-west-1"})
    assert passes({"File": [{"suffix": ".png"}]}, {"File": "a.png"})
    assert not passes({"File": [{"suffix": ".png"}]}, {"File": "a.PNG"})
    assert passes({"Name": [{"equals-ignore-case": "alice"}]}, {"Name": "ALICE"})
    assert not passes({"Region": [{"prefix": "1"}]}, {"Region": 12})  # strings only


def test_arrays_in_the_record_match_by_element() -> None:
    assert passes({"tags": ["b"]}, {"tags": ["a", "b"]})
    assert not passes({"tags": ["c"]}, {"tags": ["a", "b"]})
    assert passes({"items": {"sku": ["x"], "n": [2]}}, {"items": [{"sku": "x", "n": 2}]})
    # The fields of one pattern match within one element.
    assert not passes(
        {"items": {"sku": ["x"], "n": [2]}}, {"items": [{"sku": "x", "n": 1}, {"sku": "y", "n": 2}]}
    )


def test_filters_are_ored() -> None:
    either = criteria({"a": ["1"]}, {"b": ["2"]})
    assert either.matches({"a": "1"}) and either.matches({"b": "2"})
    assert not either.matches({"a": "2", "b": "1"})
    assert either.split([{"a": "1"}, {"c": 0}, {"b": "2"}]) == ([0, 2], [1])


# -- DynamoDB records -----------------------------------------------------------------------------


def ddb_record(event_name: str, keys: dict[str, Any], new: dict[str, Any] | None) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {"Keys": keys, "SequenceNumber": "111", "SizeBytes": 26}
    if new is not None:
        dynamodb["NewImage"] = new
    return {"eventID": "1", "eventName": event_name, "eventSource": "aws:dynamodb", "dynamodb": dynamodb}


def test_dynamodb_documented_examples() -> None:
    customer = ddb_record(
        "INSERT",
        {"CustomerName": {"S": "AnyCompany Industries"}},
        {"AccountManager": {"S": "Pat Candella"}, "PaymentTerms": {"S": "60 days"}},
    )
    assert passes({"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}, customer)
    managers = {"dynamodb": {"NewImage": {"AccountManager": {"S": ["Pat Candella", "Shirley Rodriguez"]}}}}
    assert passes(managers, customer)
    assert not passes({"dynamodb": {"NewImage": {"AccountManager": {"S": ["Shirley Rodriguez"]}}}}, customer)
    # Multi-level: a number attribute is its DynamoDB JSON string.
    item = ddb_record("INSERT", {"Id": {"N": "101"}}, {"Id": {"N": "101"}})
    assert passes({"dynamodb": {"Keys": {"Id": {"N": ["101"]}}}}, item)
    assert not passes({"dynamodb": {"Keys": {"Id": {"N": [101]}}}}, item)
    # A REMOVE record has no NewImage: a NewImage pattern never matches it.
    removed = ddb_record("REMOVE", {"Id": {"N": "101"}}, None)
    assert not passes({"dynamodb": {"NewImage": {"Id": {"N": ["101"]}}}}, removed)
    assert passes({"eventName": ["REMOVE"]}, removed)


# -- SQS bodies ---------------------------------------------------------------------------------


def sqs_record(body: str) -> dict[str, Any]:
    return {"messageId": "m", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}


def test_sqs_body_formats() -> None:
    json_body = sqs_record(json.dumps({"RecordNumber": 1234, "RequestCode": "BBBB"}))
    plain_body = sqs_record("BBBB")
    json_rule = {"body": {"RequestCode": ["BBBB"]}}
    assert passes(json_rule, json_body, "sqs")
    assert not passes({"body": {"RequestCode": ["AAAA"]}}, json_body, "sqs")
    assert not passes(json_rule, plain_body, "sqs")  # JSON pattern, plain body: dropped
    assert passes({"body": ["BBBB"]}, plain_body, "sqs")
    assert not passes({"body": [{"prefix": "{"}]}, json_body, "sqs")  # plain pattern, JSON body: dropped
    assert passes({"body": {"RecordNumber": [{"numeric": [">", 1000]}]}}, json_body, "sqs")
    # Without a body rule only the other properties count.
    assert passes({"attributes": {"ApproximateReceiveCount": ["1"]}}, plain_body, "sqs")
    assert passes({"attributes": {"ApproximateReceiveCount": ["1"]}}, json_body, "sqs")


# -- what Lambda refuses when the mapping is created ---------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{not json", "not JSON"),
        ('["a"]', "a JSON object"),
        ('{"a": []}', "empty rule lists"),
        ('{"a": "x"}', "object or a list"),
        ('{"a": [{"wildcard": "x*"}]}', "not a Lambda filter rule"),
        ('{"$or": [{"a": ["1"]}, {"b": ["2"]}]}', "not in Lambda's filter syntax"),
        ('{"a": [{"numeric": [">", "1"]}]}', "numeric"),
        ('{"a": [{"numeric": [">", 1, ">", 2]}]}', "lower and one upper"),
        ('{"a": [{"prefix": 1}]}', "takes a string"),
        ('{"a": [{"exists": "yes"}]}', "true or false"),
        ('{"a": [{"anything-but": []}]}', "strings or numbers"),
        ('{"dynamodb": ["x"]}', "JSON object"),
        ('{"a": [' + ",".join(['"x"'] * 1100) + "]}", "4096"),
    ],
)
def test_invalid_patterns_are_refused(pattern: str, message: str) -> None:
    with pytest.raises(FilterPatternError, match=message) as caught:
        criteria(pattern)
    assert "Fn.Events.E.FilterCriteria.Filters[0]" in str(caught.value)


def test_at_most_five_filters_unless_raised_to_ten() -> None:
    patterns = [{"a": [str(i)]} for i in range(6)]
    with pytest.raises(FilterPatternError, match="6 filters; Lambda allows 5"):
        criteria(*patterns)
    assert criteria(*patterns, max_filters=10).matches({"a": "5"})


def test_no_criteria_means_no_filter() -> None:
    nothing: tuple[Any, ...] = (None, {}, {"Filters": []})
    for value in nothing:
        assert parse_filter_criteria(value, "sqs", where="x") is None
    with pytest.raises(FilterPatternError, match="must be a string"):
        parse_filter_criteria({"Filters": [{"Pattern": {"a": ["1"]}}]}, "sqs", where="x")


def test_the_template_refuses_an_invalid_filter_at_load(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        textwrap.dedent(
            """
            Resources:
              Table:
                Type: AWS::DynamoDB::Table
                Properties:
                  KeySchema: [{AttributeName: pk, KeyType: HASH}]
                  AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
                  StreamSpecification: {StreamViewType: NEW_AND_OLD_IMAGES}
              Queue:
                Type: AWS::SQS::Queue
              Fn:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: .
                  Handler: fn.handler
                  Events:
                    Stream:
                      Type: DynamoDB
                      Properties:
                        Stream: !GetAtt Table.StreamArn
                        StartingPosition: TRIM_HORIZON
                        FilterCriteria:
                          Filters:
                            - Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": ["a"]}}}}'
                    Work:
                      Type: SQS
                      Properties:
                        Queue: !GetAtt Queue.Arn
                        FilterCriteria:
                          Filters:
                            - Pattern: '{"body": {"kind": ["a"]}}'
              Bad:
                Type: AWS::Serverless::Function
                Properties:
                  CodeUri: .
                  Handler: fn.handler
                  Events:
                    Stream:
                      Type: DynamoDB
                      Properties:
                        Stream: !GetAtt Table.StreamArn
                        StartingPosition: TRIM_HORIZON
                        FilterCriteria:
                          Filters:
                            - Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": []}}}}'
            """
        ),
        encoding="utf-8",
    )
    template = Template(path)
    [stream] = template.function("Fn").events_of(DynamoDBEvent)
    [work] = template.function("Fn").events_of(SqsEvent)
    assert stream.filter_criteria is not None and work.filter_criteria is not None
    assert stream.filter_criteria.matches({"dynamodb": {"NewImage": {"kind": {"S": "a"}}}})
    assert work.filter_criteria.matches({"body": '{"kind": "a"}'})
    with pytest.raises(TemplateError, match=r"Bad\.Events\.Stream\.FilterCriteria.*empty rule lists"):
        template.function("Bad")
