"""Convergence: observe hosts, ask core.placement for a plan, apply it.

Imports core and remote only.
"""
