"""ament_python glue for colcon; the package metadata itself lives in pyproject.toml.

colcon's ament_python build runs this file. Besides the Python packages declared in
pyproject.toml it installs what a ROS 2 install expects of a package named ``forethought``:
the ament index marker, ``package.xml``, the launch files and parameter YAML under
``share/forethought``, and one executable per node under ``lib/forethought`` (for
``ros2 run forethought sim_node`` and ``launch_ros`` ``Node(executable=...)``).
"""

from glob import glob

from setuptools import setup

PACKAGE = "forethought"

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py") + glob("launch/*.yaml"))),
        (f"lib/{PACKAGE}", sorted(glob("ros_ws/bin/*"))),
    ],
)
