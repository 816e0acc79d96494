"""sac_node: the host side of sac, shipped to every host as node.pyz.

Standard library and msgpack only; runs on Python >= 3.8; never imports sac_fleet.
"""

__version__ = "0.1.0"
