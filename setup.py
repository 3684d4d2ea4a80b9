"""Package discovery for the three-part layout (everything else is in pyproject.toml).

export/ and devices/ sit at the top level (the product's architecture) but install as
edgekit.export and edgekit.devices (package-dir in pyproject.toml). pyproject's own
`packages.find` cannot remap folders, so every package under the three roots is found here:
a new subpackage needs no listing anywhere (a hand-kept list once shipped wheels without
edgekit.export.models).
"""

from setuptools import find_namespace_packages, setup


def _tree(folder: str, name: str) -> list[str]:
    # Namespace discovery so data folders (sample/bundle, boards) are packages too: setuptools
    # otherwise warns once per file that their data "would be ignored" (about 80 warnings).
    found = find_namespace_packages(folder, exclude=["*__pycache__*", "*.egg-info*"])
    return [name] + [f"{name}.{sub}" for sub in found]


setup(packages=_tree("edgekit", "edgekit") + _tree("export", "edgekit.export")
      + _tree("devices", "edgekit.devices"))
