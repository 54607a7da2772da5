"""Lane detection (UFLD row anchors, TuSimple format and metric); importing it registers the task."""

from . import task  # noqa: F401  registers "lane"
