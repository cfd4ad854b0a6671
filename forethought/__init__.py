"""forethought: a ROS 2 control stack that thinks ahead.

Subpackages map one-to-one onto the repository's top-level folders:
``forethought.sim`` (``sim/``), ``forethought.models`` (``models/``),
``forethought.llm_planner`` (``llm_planner/``) and ``forethought.ros_ws`` (``ros_ws/``).
"""

__version__ = "0.1.0"
