"""Target side: board profiles, board detection, runners per board family, flashing.

Installed as ``edgekit.devices``.
"""
