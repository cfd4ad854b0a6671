"""ament_python glue for colcon; the package metadata itself lives in pyproject.toml.

colcon's ament_python build runs this file. Besides the Python packages declared in
pyproject.toml it installs what a ROS 2 install expects of a package named ``forethought``:
the ament index marker, ``package.xml``, the launch files and parameter YAML under
``share/forethought``, and one executable per node under ``lib/forethought`` (for
``ros2 run forethought sim_node`` and ``launch_ros`` ``Node(executable=...)``).

It also sets the license, the one field whose pyproject.toml form no single setuptools accepts
across the versions colcon meets: PEP 639's SPDX string needs setuptools >= 77 (Debian 12 ships
66.1, Ubuntu 24.04 68.1), and setuptools >= 77 deprecates the older ``{text = ...}`` table.
"""

from glob import glob

import setuptools
from setuptools import setup

PACKAGE = "forethought"
LICENSE = "Apache-2.0"
PEP639 = int(setuptools.__version__.split(".")[0]) >= 77
"""setuptools >= 77 writes ``License-Expression`` (PEP 639); older ones only know ``License``."""

setup(
    **({"license_expression": LICENSE} if PEP639 else {"license": LICENSE}),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py") + glob("launch/*.yaml"))),
        (f"lib/{PACKAGE}", sorted(glob("ros_ws/bin/*"))),
    ],
)
