"""User-facing surfaces (CLI, HTTP gateway, MCP): thin layers over sac_fleet.api.

Each catches SacError once and renders it.
"""
