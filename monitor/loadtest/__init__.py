"""The GPU load test (issue 3): a child of the watched interpreter proves TF computes on the GPU.

child.py runs in the watched interpreter (stdlib + TensorFlow only); the runner starts it and
reads its JSON steps; classify.py turns a failure (exit status, stderr, TensorFlow's log) into
findings with fixes.
"""
