"""hosts_from: an Ansible inventory (INI or YAML) read into sac's hosts and groups."""

import textwrap

import pytest

from sac_fleet.core.ansible_hosts import read_ansible
from sac_fleet.core.inventory import load_inventory
from sac_node.protocol.errors import InventoryError

INI = textwrap.dedent("""\
    # the lab's hosts
    bastion ansible_host=127.0.0.2 ansible_port=2200 ansible_user=root

    [gpu]
    node[01:02] ansible_host=127.0.0.3
    node03:2203 ansible_host=127.0.0.4 ansible_become=true

    [gpu:vars]
    ansible_port=2201
    ansible_ssh_common_args='-o ProxyJump=bastion -o StrictHostKeyChecking=no'

    [cpu]
    worker ansible_host=127.0.0.5 ansible_python_interpreter=/opt/py/bin/python3

    [cluster:children]
    gpu
    cpu

    [all:vars]
    ansible_user=lab
    ansible_ssh_private_key_file=~/.ssh/lab_ed25519
    """)


def test_an_ini_inventory_maps_hosts_groups_and_variables(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text(INI)
    got = read_ansible(path)
    assert list(got.hosts) == ["bastion", "node01", "node02", "node03", "worker"]
    assert got.hosts["bastion"] == {"address": "127.0.0.2", "port": 2200, "user": "root",
                                    "identity_file": "~/.ssh/lab_ed25519"}
    # Group vars under host vars, all's under both; host:port on the line wins over the group's port.
    assert got.hosts["node01"] == {"address": "127.0.0.3", "port": 2201, "user": "lab", "jump": ["bastion"],
                                   "identity_file": "~/.ssh/lab_ed25519"}
    assert got.hosts["node03"]["port"] == 2203
    assert got.hosts["worker"]["python"] == "/opt/py/bin/python3" and "jump" not in got.hosts["worker"]
    assert got.groups == {"gpu": ["node01", "node02", "node03"], "cpu": ["worker"],
                          "cluster": ["node01", "node02", "node03", "worker"]}
    # Nothing sac does not take is dropped in silence: each is a warning naming file and line.
    assert any(w.startswith("%s:6 ansible_become: not used by sac" % path) for w in got.warnings)
    assert any("-o StrictHostKeyChecking=no: not used by sac (put it in ~/.ssh/config" in w for w in got.warnings)


def test_a_yaml_inventory_with_children_and_vars(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent("""\
        all:
          vars: {ansible_user: lab}
          hosts:
            login: {ansible_host: 127.0.0.2, ansible_port: 2200}
          children:
            compute:
              vars: {ansible_ssh_common_args: "-J login"}
              hosts:
                c[1:2]: {ansible_host: 127.0.0.3}
            local:
              hosts:
                head: {ansible_connection: local}
        """))
    got = read_ansible(path)
    assert got.hosts["login"] == {"address": "127.0.0.2", "port": 2200, "user": "lab"}
    assert got.warnings == ()
    assert got.hosts["c1"] == {"address": "127.0.0.3", "user": "lab", "jump": ["login"]}
    assert got.hosts["head"] == {"transport": "local"}
    assert got.groups == {"compute": ["c1", "c2"], "local": ["head"]}


@pytest.mark.parametrize("text, message", [
    ("[gpu\nh1\n", ":1 '[gpu': a section is written [group], [group:vars] or [group:children]"),
    ("h1 ansible_port=ssh\n", ":1 host h1: ansible_port='ssh' must be a port number from 1 to 65535"),
    ("h1 ansible_host\n", ":1 'ansible_host': host variables are written name=value"),
    ("[gpu:things]\n", ":1 [gpu:things]: unknown section kind (vars or children)"),
    ("h1 ansible_host='127.0.0.2\n", ":1 No closing quotation (check the quotes)"),
])
def test_a_bad_ini_line_is_one_error_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "hosts.ini"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        read_ansible(path)
    assert str(caught.value) == str(path) + message


def test_an_inventory_takes_hosts_from_ansible_and_its_own_entries_win(tmp_path):
    (tmp_path / "hosts.ini").write_text(INI)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(textwrap.dedent("""\
        hosts_from: hosts.ini
        defaults: {known_hosts: ~/.ssh/lab_known_hosts}
        hosts:
          worker: {labels: {kind: cpu}, capacity: 4}
        """))
    inv = load_inventory(inventory, load_specs=False)
    assert set(inv.hosts) == {"bastion", "node01", "node02", "node03", "worker"}
    worker = inv.hosts["worker"]
    assert (worker.address, worker.user, worker.python, worker.capacity) == ("127.0.0.5", "lab", "/opt/py/bin/python3", 4)
    assert dict(worker.labels) == {"kind": "cpu"} and worker.known_hosts == "~/.ssh/lab_known_hosts"
    assert [str(hop) for hop in inv.jump_chain("node01")] == ["root@127.0.0.2:2200"]
    assert inv.groups["cluster"] == ("node01", "node02", "node03", "worker")
    assert any("ansible_become" in w for w in inv.warnings)


def test_a_missing_ansible_file_names_itself(tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts_from: [nowhere.ini]\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory, load_specs=False)
    assert str(caught.value).startswith("%s: cannot read this Ansible inventory" % (tmp_path / "nowhere.ini"))


def test_a_yaml_inventory_names_the_line_of_what_sac_does_not_take_and_of_a_duplicate(tmp_path):
    path = tmp_path / "hosts.yml"
    path.write_text("all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.2\n      ansible_become: true\n")
    assert read_ansible(path).warnings == ("%s:5 ansible_become: not used by sac (it has no such host field)" % path,)
    path.write_text("all:\n  hosts:\n    h1: {}\n    h1: {}\n")
    with pytest.raises(InventoryError) as caught:
        read_ansible(path)
    assert str(caught.value).startswith("%s:4" % path) and "duplicate" in str(caught.value)
