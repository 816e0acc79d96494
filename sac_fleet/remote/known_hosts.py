"""known_hosts: which host keys this head trusts, and recording a new one (--accept-new-host-keys)."""

import asyncio
import ipaddress
import logging
import os
import socket
from pathlib import Path

import asyncssh

log = logging.getLogger("sac_fleet.remote.ssh")

def known_hosts_name(host, port):
    return host if port == 22 else "[%s]:%d" % (host, port)


def expand(path):
    return str(Path(path).expanduser())


def load_known_hosts(path):
    if os.path.exists(path):
        return asyncssh.read_known_hosts(path)
    return asyncssh.import_known_hosts("")


async def has_known_key(known, key_name, host, port, tunneled):
    """Does known_hosts hold any key for this host, by name or by the address asyncssh will see?"""
    addr = host
    if not tunneled:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addr = infos[0][4][0]
    matched = known.match(key_name, addr, port if port != 22 else None)
    return bool(matched[0] or matched[1])


def record_host_key(path, host, port, key):
    """Append `[host]:port type base64` to known_hosts (created 0600 in a 0700 dir if missing)."""
    public = key.export_public_key("openssh").decode().split()
    line = "%s %s %s\n" % (known_hosts_name(host, port), public[0], public[1])
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        if out.tell() > 0:
            with open(path, "rb") as current:
                current.seek(-1, os.SEEK_END)
                if current.read(1) != b"\n":
                    out.write("\n")
        out.write(line)
    log.info("[host=%s] recorded host key %s in %s", host, key.get_fingerprint(), path)

