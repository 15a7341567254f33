"""tf-stack-monitor: keeps a workstation's TensorFlow GPU stack working."""

__version__ = "0.1.0"
