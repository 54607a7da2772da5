"""Object detection (YOLO-style, COCO format, pycocotools mAP); importing it registers the task."""

from . import task  # noqa: F401  registers "detection"
