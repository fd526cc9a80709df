"""wsss: weakly-supervised semantic segmentation and salient object detection, one DAG."""

__version__ = "0.1.0"
