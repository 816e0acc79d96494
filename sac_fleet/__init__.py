"""sac_fleet: the head side of sac (specs, inventory, placement, SSH, gateway, CLI).

Imports point down: frontends -> api -> control -> core, remote; sac_node only for its protocol and local transport.
"""
