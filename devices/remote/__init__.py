"""Benchmarking on the boards themselves, from the host (``edgekit bench --on/--inventory``).

The host sends the artifacts over flash's verified transfer into a scratch directory on each
device (never the installed model), runs ``onboard.py`` there with the device's own Python,
edgekit and runtimes, and streams its events back. ``thermal`` and ``peak`` are the device-side
readings (temperature/throttling, the matmul peak); ``fleet`` is the host side.
"""
