"""YAML documents with key lines, and pydantic errors as one-line messages."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sac_fleet.core.documents import (Document, did_you_mean, format_loc, load_document, parse_document,
                                      validation_error)
from sac_node.protocol.errors import ConfigError, InventoryError

TEXT = """\
# a comment
top: 1
nested:
  inner: two
  items:
    - a
    - {deep: 3}
flow: {x: 1, y: [p, q]}
"""


def test_line_of_points_at_each_key_and_list_item():
    doc = parse_document(TEXT, "f.yaml")
    assert doc.data["nested"]["items"][1] == {"deep": 3}
    assert doc.line_of(("top",)) == 2
    assert doc.line_of(("nested", "inner")) == 4
    assert doc.line_of(("nested", "items", 0)) == 6
    assert doc.line_of(("nested", "items", 1, "deep")) == 7
    assert doc.line_of(("flow", "y", 1)) == 8


def test_line_of_a_path_not_in_the_file_falls_back_to_its_deepest_ancestor():
    doc = parse_document(TEXT, "f.yaml")
    assert doc.line_of(("nested", "missing", "deeper")) == 3
    assert doc.line_of(("nested", "inner", "[key]")) == 4
    assert doc.line_of(("absent",)) == 1
    assert doc.line_of(()) == 1


def test_document_error_names_file_line_and_field():
    doc = parse_document(TEXT, "dir/f.yaml")
    exc = doc.error(("nested", "items", 1, "deep"), "too deep (flatten it)", InventoryError)
    assert isinstance(exc, InventoryError)
    assert exc.message == "dir/f.yaml:7 nested.items[1].deep: too deep (flatten it)"


@pytest.mark.parametrize("text, message", [
    ("a: [1, 2\nb: 3\n", "f.yaml:2 syntax: expected ',' or ']', but got ':' at column 2 (check indentation, colons and quotes)"),
    ("a: 1\n\tb: 2\n", "f.yaml:2 syntax: found character '\\t' that cannot start any token at column 1 (check indentation, colons and quotes)"),
    ("a: 1\nb: 2\na: 3\n", "f.yaml:3 a: duplicate key (first at line 1; keep one)"),
    ("x:\n  k: 1\n  k: 2\n", "f.yaml:3 x.k: duplicate key (first at line 2; keep one)"),
    ("", "f.yaml:1 document: the file is empty (write its content)"),
    ("# only\n# comments\n", "f.yaml:1 document: the file is empty (write its content)"),
    ("---\n", "f.yaml:1 document: the file is empty (write its content)"),
    ("null\n", "f.yaml:1 document: the file is empty (write its content)"),
    ("- a\n- b\n", "f.yaml:1 document: expected a mapping of keys at the top level, got a list"),
    ("just words\n", "f.yaml:1 document: expected a mapping of keys at the top level, got 'just words'"),
    ("a: 1\n---\nb: 2\n", "f.yaml:2 syntax: expected a single document in the stream but found another document at column 1 (check indentation, colons and quotes)"),
    ("a: !custom 1\n", "f.yaml:1 syntax: could not determine a constructor for the tag '!custom' at column 4 (check indentation, colons and quotes)"),
    ("a: 1\nb: \x07\n", "f.yaml:2 syntax: character '\\x07' is not allowed in YAML (remove it)"),
])
def test_bad_yaml_gives_one_line_with_file_and_line(text, message):
    with pytest.raises(ConfigError) as info:
        parse_document(text, "f.yaml")
    assert info.value.message == message


def test_empty_file_message_can_point_at_an_example():
    with pytest.raises(ConfigError) as info:
        parse_document("# todo\n", "f.yaml", example="docs/inventory.md")
    assert info.value.message == "f.yaml:1 document: the file is empty (see docs/inventory.md for an example)"


def test_bytes_that_are_not_utf8_name_the_line():
    with pytest.raises(ConfigError) as info:
        parse_document(b"a: 1\nb: \xff\n", "f.yaml")
    assert info.value.message == "f.yaml:2 document: not UTF-8 text (byte 0xff; save the file as UTF-8)"


def test_a_utf8_bom_is_accepted():
    assert parse_document("\ufeffa: 1\n".encode(), "f.yaml").data == {"a": 1}


def test_merge_keys_and_anchors_still_work():
    doc = parse_document("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n", "f.yaml")
    assert doc.data["use"] == {"x": 1, "y": 2}
    assert doc.line_of(("use", "y")) == 4


def test_an_alias_cycle_does_not_hang():
    doc = parse_document("a: &x [1, *x]\n", "f.yaml")
    assert doc.data["a"][1] is doc.data["a"]


def test_an_alias_bomb_is_parsed_without_walking_every_copy():
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += ["a%d: &a%d [%s]" % (n, n, ", ".join(["*a%d" % (n - 1)] * 10)) for n in range(1, 9)]
    doc = parse_document("\n".join(levels) + "\n", "f.yaml")
    recorded, line = len(doc.lines), doc.line_of(("a8", 3, 4, 5))
    assert recorded < 200
    assert line == 8  # an aliased item points at its anchor, where the content is written


def test_load_document_missing_file_and_directory(tmp_path):
    with pytest.raises(InventoryError) as info:
        load_document(tmp_path / "nope.yaml", InventoryError)
    assert info.value.message == "%s: no such file (check the path)" % (tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_document(tmp_path)
    assert info.value.message == "%s: is a directory, not a YAML file" % tmp_path


def test_load_document_reads_the_file(tmp_path):
    path = tmp_path / "inv.yaml"
    path.write_text("hosts:\n  a: {address: 127.0.0.1}\n")
    doc = load_document(path)
    assert isinstance(doc, Document)
    assert doc.path == path
    assert doc.line_of(("hosts", "a", "address")) == 2


# --- validation errors ---------------------------------------------------------


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["never", "on-failure", "always"] = "never"
    count: int = Field(1, strict=True, gt=0)
    port_name: str = Field(json_schema_extra={"example": "http"})


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner
    items: list[Inner] = []
    env: dict[str, str] = {}


def _error(text, model=Outer):
    doc = parse_document(text, "x.yaml")
    with pytest.raises(ValidationError) as info:
        model.model_validate(doc.data)
    return validation_error(doc, info.value, InventoryError, model=model)


def test_unknown_field_suggests_the_closest_allowed_name():
    exc = _error("name: a\ninner:\n  port_name: p\n  polcy: never\n")
    assert isinstance(exc, InventoryError)
    assert exc.message == "x.yaml:4 inner.polcy: unknown field (did you mean 'policy'?)"


def test_a_missing_space_after_a_colon_is_pointed_out():
    exc = _error("name: a\ninner: {port_name: p, count:2}\n")
    assert exc.message == "x.yaml:2 inner.'count:2': unknown field (put a space after the colon: 'count: 2')"


def test_unknown_field_without_a_close_name_lists_the_allowed_ones():
    exc = _error("name: a\ninner: {port_name: p}\nzzzzzz: 1\n")
    assert exc.message == "x.yaml:3 zzzzzz: unknown field (allowed: env, inner, items, name)"


def test_unknown_field_inside_a_list_item_resolves_the_item_model():
    exc = _error("name: a\ninner: {port_name: p}\nitems:\n  - port_name: p\n    cont: 2\n")
    assert exc.message == "x.yaml:5 items[0].cont: unknown field (did you mean 'count'?)"


def test_literal_choice_is_listed_plainly():
    exc = _error("name: a\ninner:\n  port_name: p\n  policy: sometimes\n")
    assert exc.message == "x.yaml:4 inner.policy: 'sometimes' is not one of never, on-failure, always"


def test_missing_field_gives_the_example_and_points_at_the_parent():
    exc = _error("name: a\ninner:\n  count: 2\n")
    assert exc.message == "x.yaml:2 inner.port_name: required field is missing (add `port_name: http`)"


def test_a_misspelt_field_is_reported_before_the_missing_one():
    exc = _error("name: a\ninner:\n  port_nme: p\n")
    assert exc.message == "x.yaml:3 inner.port_nme: unknown field (did you mean 'port_name'?) [+1 more]"
    assert exc.data["errors"][1] == "x.yaml:2 inner.port_name: required field is missing (add `port_name: http`)"


@pytest.mark.parametrize("value, message", [
    ("0", "inner.count: must be greater than 0, got 0"),
    ("'3'", "inner.count: expected a whole number, got '3' (write 3, without quotes)"),
    ("three", "inner.count: expected a whole number, got 'three'"),
    ("1.5", "inner.count: expected a whole number, got 1.5"),
    ("[1]", "inner.count: expected a whole number, got a list"),
])
def test_numbers_errors_show_the_value_and_the_rule(value, message):
    exc = _error("name: a\ninner:\n  port_name: p\n  count: %s\n" % value)
    assert exc.message == "x.yaml:4 " + message


def test_type_errors_on_mappings_lists_and_keys():
    assert _error("name: a\ninner: [1]\n").message == "x.yaml:2 inner: expected a mapping of keys, got a list"
    exc = _error("name: a\ninner: {port_name: p}\nitems: x\n")
    assert exc.message == "x.yaml:3 items: expected a list, got 'x' (write [a, b] or one '- item' per line)"
    exc = _error("name: a\ninner: {port_name: p}\nenv: {1: x}\n")
    assert exc.message == "x.yaml:3 env.1: invalid key: expected a string, got 1 (quote it)"


def test_long_values_are_shortened_in_messages():
    exc = _error("name: a\ninner:\n  port_name: p\n  policy: %s\n" % ("x" * 100))
    assert "'" + "x" * 37 + "...'" in exc.message
    assert "x" * 41 not in exc.message


def test_errors_are_ordered_by_line_and_all_kept():
    exc = _error("name: 5\ninner:\n  port_name: p\n  count: 0\n")
    assert exc.message == "x.yaml:1 name: expected a string, got 5 (quote it) [+1 more]"
    assert exc.data["errors"] == ["x.yaml:1 name: expected a string, got 5 (quote it)",
                                  "x.yaml:4 inner.count: must be greater than 0, got 0"]


def test_without_a_model_unknown_fields_still_get_a_line():
    doc = parse_document("name: a\ninner: {port_name: p}\nextra: 1\n", "x.yaml")
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(doc.data)
    assert validation_error(doc, info.value, ConfigError).message == "x.yaml:3 extra: unknown field"


def test_format_loc_and_did_you_mean():
    assert format_loc(("spec", "startup_prompts", 2)) == "spec.startup_prompts[2]"
    assert format_loc(("spec", "env", "A", "[key]")) == "spec.env.A"
    assert format_loc(()) == "document"
    assert did_you_mean("claud", ["claude", "env"]) == " (did you mean 'claude'?)"
    assert did_you_mean("APIVERSION", ["apiVersion", "kind"]) == " (did you mean 'apiVersion'?)"
    assert did_you_mean("qq", ["b", "a"]) == " (allowed: a, b)"
    assert did_you_mean("qq", []) == ""
