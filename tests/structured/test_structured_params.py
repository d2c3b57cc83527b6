"""`StructuredOutputsParams`: exactly one constraint, each in a form the backend can compile, refused
with the field named before anything is admitted."""

from __future__ import annotations

import json

import pydantic
import pytest

from sarathi_sdk import InvalidRequestError, SamplingParams, StructuredOutputsParams


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_a_schema_may_be_a_dict_json_text_or_a_pydantic_model():
    schema = Person.model_json_schema()
    from_dict = StructuredOutputsParams(json=schema)
    assert json.loads(from_dict.json) == schema
    assert StructuredOutputsParams(json=json.dumps(schema)).key == from_dict.key
    assert StructuredOutputsParams(json=Person).key == from_dict.key
    assert list(json.loads(from_dict.json)["properties"]) == ["name", "age"]  # the order the model writes


@pytest.mark.parametrize("kind, value", [("regex", r"\d+"), ("choice", ["yes", "no"]), ("grammar", 'root ::= "a"'),
                                         ("json_object", True)])
def test_each_kind_is_named_and_keyed(kind, value):
    params = StructuredOutputsParams(**{kind: value})
    assert params.kind == kind
    assert params.key[0] == kind
    assert params.key == StructuredOutputsParams(**{kind: value}).key


def test_choices_are_kept_as_a_tuple():
    assert StructuredOutputsParams(choice=["a", "b"]).choice == ("a", "b")


@pytest.mark.parametrize("kwargs, field", [
    ({}, "exactly one"),
    ({"regex": "a", "choice": ["a"]}, "exactly one"),
    ({"json": "{not json"}, "structured_outputs.json"),
    ({"json": 3}, "structured_outputs.json"),
    ({"json": {"default": {1, 2}}}, "structured_outputs.json"),
    ({"regex": ""}, "structured_outputs.regex"),
    ({"choice": "yes"}, "structured_outputs.choice"),
    ({"choice": []}, "structured_outputs.choice"),
    ({"choice": ["a", 1]}, "structured_outputs.choice"),
    ({"grammar": "  "}, "structured_outputs.grammar"),
    ({"json_object": "yes"}, "structured_outputs.json_object"),
])
def test_bad_constraints_are_refused_with_the_field_named(kwargs, field):
    with pytest.raises(InvalidRequestError, match=field):
        StructuredOutputsParams(**kwargs)


def test_sampling_params_take_only_structured_outputs_params():
    assert SamplingParams(structured_outputs=StructuredOutputsParams(regex="a")).structured_outputs.regex == "a"
    with pytest.raises(InvalidRequestError, match="structured_outputs"):
        SamplingParams(structured_outputs={"regex": "a"})
