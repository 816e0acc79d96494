"""I/O toward hosts: SSH transport, node bootstrap, the node client.

Never imports sac_fleet.control or sac_fleet.frontends.
"""
