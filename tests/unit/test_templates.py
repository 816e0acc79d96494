"""Spec templates: placeholders, parameter files, one instance per row, inventory template entries."""

import textwrap

import pytest
from hypothesis import given, strategies as st

from sac_fleet.core.documents import Document
from sac_fleet.core.instances import check_instances, instances
from sac_fleet.core.inventory import load_inventory
from sac_fleet.core.params import read_params
from sac_fleet.core.placement import HostState, place
from sac_fleet.core.spec import parse_spec
from sac_fleet.core.templates import Context, HostFacts, render
from sac_node.protocol.errors import InventoryError, SpecError

TEMPLATE = """\
apiVersion: sac/v1
kind: Agent
metadata:
  labels: {topic: "${params.topic}"}
spec:
  env:
    TOPIC: ${params.topic}
    WHO: ${metadata.name}
    WHERE: ${host.name}
  startup_prompts: ["You study ${params.topic}; $${params.topic} stays as written"]
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def template(tmp_path):
    write(tmp_path / "paper" / "spec.yaml", TEMPLATE)
    return tmp_path / "paper"


def spec_error(path, **kw):
    with pytest.raises(SpecError) as caught:
        parse_spec(path, **kw)
    return caught.value.message


# --- placeholders --------------------------------------------------------------------------


def test_placeholders_are_filled_and_a_doubled_dollar_is_literal(template):
    spec = parse_spec(template, name="paper-a", params={"topic": "cats"}, environ={})
    node = spec.to_node()
    assert node["env"] == {"TOPIC": "cats", "WHO": "paper-a", "WHERE": "host"}
    assert node["labels"] == {"topic": "cats"}
    assert node["startup_prompts"] == ["You study cats; ${params.topic} stays as written"]


def test_host_placeholders_are_filled_where_the_agent_is_placed(template):
    spec = parse_spec(template, name="paper-a", params={"topic": "cats"}, environ={})
    assert spec.on_host(HostFacts("login1", {})).to_node()["env"]["WHERE"] == "login1"


def test_a_host_label_the_host_lacks_is_an_error_naming_its_labels(tmp_path):
    path = write(tmp_path / "a" / "spec.yaml", """\
        apiVersion: sac/v1
        kind: Agent
        spec:
          workdir: /scratch/${host.labels.site}
        """)
    spec = parse_spec(path, environ={})
    assert spec.on_host(HostFacts("h1", {"site": "hpc"})).spec.workdir == "/scratch/hpc"
    with pytest.raises(SpecError) as caught:
        spec.on_host(HostFacts("h2", {"gpu": "a100"}))
    assert caught.value.message.startswith("%s:4 spec.workdir: ${host.labels.site}: host h2 has no label 'site'" % path)
    assert "${host.labels.gpu}" in caught.value.message


def test_an_unknown_placeholder_names_file_line_field_and_the_known_names(template):
    path = template / "spec.yaml"
    path.write_text(TEMPLATE.replace("${params.topic};", "${parms.topic};"))
    message = spec_error(template, name="paper-a", params={"topic": "cats"}, environ={})
    assert message.startswith("%s:10 spec.startup_prompts[0]: ${parms.topic}: unknown placeholder (known: "
                              "${params.topic}, ${metadata.name}, ${host.name}" % path)
    assert "\n" not in message


def test_a_parameter_without_a_parameter_set_says_how_to_give_one(template):
    message = spec_error(template, environ={})
    assert ":4 metadata.labels.topic: ${params.topic}: no parameter set is given (start it with --params FILE" in message


def test_env_placeholders_read_the_head_environment_but_never_into_provider_fields(tmp_path):
    path = write(tmp_path / "a" / "spec.yaml", """\
        apiVersion: sac/v1
        kind: Agent
        spec:
          env: {PROJECT: "${env.LAB_PROJECT}"}
          claude:
            provider: {base_url: "http://127.0.0.1:${env.PORT}"}
        """)
    message = spec_error(path, environ={"LAB_PROJECT": "x", "PORT": "8787"})
    assert message.startswith("%s:6 spec.claude.provider.base_url: ${env.PORT}: the head's environment is refused" % path)
    path.write_text(path.read_text().replace("${env.PORT}", "8787"))
    assert parse_spec(path, environ={"LAB_PROJECT": "proj-7"}).to_node()["env"] == {"PROJECT": "proj-7"}
    assert "has no variable LAB_PROJECT (export it" in spec_error(path, environ={})


def test_a_whole_value_placeholder_keeps_the_parameter_type(tmp_path):
    path = write(tmp_path / "a" / "spec.yaml", """\
        apiVersion: sac/v1
        kind: Agent
        spec:
          restart: {max_retries: "${params.retries}"}
        """)
    assert parse_spec(path, params={"retries": 3}, environ={}).spec.restart.max_retries == 3


def test_an_unclosed_placeholder_is_an_error(tmp_path):
    path = write(tmp_path / "a" / "spec.yaml", """\
        apiVersion: sac/v1
        kind: Agent
        spec:
          env: {A: "${params.x"}
        """)
    assert "'${' without a closing '}'" in spec_error(path, params={"x": 1}, environ={})


# --- parameter files -----------------------------------------------------------------------


@pytest.mark.parametrize("name, text", [
    ("p.csv", "id,topic\na,cats\nb,dogs\n"),
    ("p.yaml", "- {id: a, topic: cats}\n- {id: b, topic: dogs}\n"),
    ("p.jsonl", '{"id": "a", "topic": "cats"}\n\n{"id": "b", "topic": "dogs"}\n'),
])
def test_parameter_files_in_three_formats_give_the_same_rows(tmp_path, name, text):
    rows = read_params(write(tmp_path / name, text))
    assert [dict(r.values) for r in rows] == [{"id": "a", "topic": "cats"}, {"id": "b", "topic": "dogs"}]
    assert [r.number for r in rows] == [1, 2]


@pytest.mark.parametrize("name, text, expected", [
    ("p.csv", "id,topic\na,cats\nb\n", "p.csv:3: row 2 has 1 values for 2 columns (id, topic)"),
    ("p.csv", "id,id\na,b\n", "p.csv:1: column 'id' appears twice"),
    ("p.csv", "id\n", "p.csv: no rows"),
    ("p.jsonl", '{"id": "a"}\n[1]\n', "p.jsonl:2: expected an object"),
    ("p.jsonl", '{"id": "a"}\n{oops\n', "p.jsonl:2: not JSON"),
    ("p.yaml", "- {id: a}\n- {id: {x: 1}}\n", "p.yaml:2: row 2: id is a mapping"),
    ("p.yaml", "id: a\n", "p.yaml:1: expected a list of rows"),
    ("p.txt", "x", "p.txt: a parameter file is .csv, .yaml or .jsonl"),
    ("p.csv", "the id,x\na,b\n", "p.csv:2: row 1: 'the id' is not a parameter name"),
])
def test_bad_parameter_files_are_one_line_with_file_and_line(tmp_path, name, text, expected):
    with pytest.raises(SpecError) as caught:
        read_params(write(tmp_path / name, text))
    assert caught.value.message.startswith(str(tmp_path / expected))
    assert "\n" not in caught.value.message


# --- instances -----------------------------------------------------------------------------


def test_one_instance_per_row_named_by_the_pattern(template, tmp_path):
    params = write(tmp_path / "p.csv", "id,topic\na,cats\nb,dogs\nc,fish\n")
    specs = check_instances(template, params, "{template}-${params.id}", environ={})
    assert [s.name for s in specs] == ["paper-a", "paper-b", "paper-c"]
    assert [s.to_node()["env"]["TOPIC"] for s in specs] == ["cats", "dogs", "fish"]


def test_a_name_column_names_the_instances(template, tmp_path):
    params = write(tmp_path / "p.csv", "name,topic\nalice,cats\nbob,dogs\n")
    assert [s.name for s in check_instances(template, params, environ={})] == ["alice", "bob"]


def test_duplicate_and_invalid_names_are_refused_with_their_row(template, tmp_path):
    params = write(tmp_path / "p.csv", "name,topic\nalice,cats\nBob_1,dogs\nalice,fish\n")
    made = instances(template, params, environ={})
    assert made[0].error is None
    assert made[1].error == ("%s:3: row 2: 'Bob_1' is not a valid agent name (lowercase letters, digits and '-', "
                             "starting with a letter or digit, at most 63 characters)" % params)
    assert made[2].error.startswith("%s:4: row 3: name 'alice' is already used by row 1" % params)
    with pytest.raises(SpecError) as caught:
        check_instances(template, params, environ={})
    assert caught.value.message.endswith("[+1 more]")


def test_rows_without_a_name_say_how_to_name_them(template, tmp_path):
    params = write(tmp_path / "p.csv", "id,topic\na,cats\n")
    assert "no name for this agent (add a name column, pass --name '{template}-${params.id}'" in \
        instances(template, params, environ={})[0].error


def test_the_template_metadata_name_with_a_parameter_names_instances(tmp_path):
    write(tmp_path / "t" / "spec.yaml", "apiVersion: sac/v1\nkind: Agent\nmetadata: {name: 'run-${params.id}'}\n")
    params = write(tmp_path / "p.yaml", "- {id: 1}\n- {id: 2}\n")
    assert [s.name for s in check_instances(tmp_path / "t", params, environ={})] == ["run-1", "run-2"]


def test_instances_sharing_an_absolute_workdir_are_refused(tmp_path):
    write(tmp_path / "t" / "spec.yaml", "apiVersion: sac/v1\nkind: Agent\nspec: {workdir: /scratch/shared}\n")
    params = write(tmp_path / "p.csv", "name\na\nb\n")
    made = instances(tmp_path / "t", params, environ={})
    assert made[1].error.startswith("%s:3: row 2: workdir /scratch/shared is also row 1's" % params)


def test_a_row_error_inside_the_template_names_its_row(template, tmp_path):
    params = write(tmp_path / "p.csv", "name,topic\nalice,cats\nbob,sk-ant-abcdefghijklmnopqrstuvwxyz\n")
    made = instances(template, params, environ={})
    assert made[0].error is None and made[1].error.startswith(str(template / "spec.yaml"))
    assert "looks like an API key" in made[1].error and "sk-ant" not in made[1].error


# --- the inventory -------------------------------------------------------------------------


def test_an_inventory_template_entry_places_each_row_like_any_agent(template, tmp_path):
    write(tmp_path / "p.csv", "id,topic\na,cats\nb,dogs\nc,fish\nd,owls\n")
    inventory = write(tmp_path / "inventory.yaml", """\
        hosts:
          h1: {address: 127.0.0.2, labels: {site: x}, capacity: 2}
          h2: {address: 127.0.0.3, labels: {site: x}, capacity: 2}
        agents:
          - {template: paper, params: p.csv, name: "{template}-${params.id}", placement: {labels: {site: x}}}
        """)
    inv = load_inventory(inventory)
    assert [a.name for a in inv.agents] == ["paper-a", "paper-b", "paper-c", "paper-d"]
    plan = place(inv.desired(), [HostState("h1", True, ()), HostState("h2", True, ())], inv.slots())
    hosts = sorted(a.host for a in plan.actions if a.kind.name == "START")
    assert hosts == ["h1", "h1", "h2", "h2"]
    first = inv.agents[0]
    assert first.spec_on(inv.hosts["h2"]).to_node()["env"]["WHERE"] == "h2"


@pytest.mark.parametrize("entry, expected", [
    ("{template: paper}", "a template needs params: FILE"),
    ("{template: paper, spec: paper, params: p.csv}", "give spec: (one agent) or template: with params:"),
    ("{spec: paper, params: p.csv}", "params: and name: go with template:, not spec:"),
    ("{template: paper, params: nope.csv}", "nope.csv does not exist (a .csv, .yaml or .jsonl parameter file"),
])
def test_bad_template_entries_are_one_line(template, tmp_path, entry, expected):
    write(tmp_path / "p.csv", "name,topic\na,cats\n")
    inventory = write(tmp_path / "inventory.yaml", "hosts: {h1: {address: 127.0.0.2}}\nagents:\n  - %s\n" % entry)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory)
    assert caught.value.message.startswith("%s:3 agents[0]" % inventory) and expected in caught.value.message


# --- properties ----------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_text_without_a_dollar_is_left_as_it_is(text):
    doc = Document("s.yaml", {"spec": {"env": {"A": text}}})
    assert render(doc, Context(name="a")).data == doc.data


@given(st.text(alphabet=st.characters(blacklist_characters="${}"), max_size=20))
def test_a_doubled_dollar_is_always_the_literal_text(inner):
    doc = Document("s.yaml", {"spec": {"env": {"A": "x $${%s} y" % inner}}})
    assert render(doc, Context(name="a")).data["spec"]["env"]["A"] == "x ${%s} y" % inner
