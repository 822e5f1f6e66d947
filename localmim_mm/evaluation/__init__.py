"""Frozen-feature evaluation (k-NN, linear probe) on any image-folder dataset.

Used by ``tools/benchmarks/learning_efficiency.py``; importable on its own::

    from localmim_mm.evaluation import (extract_features, knn_accuracy, linear_probe_accuracy,
                                        list_image_folder, load_image_folder)
"""
from .features import extract_features  # noqa: F401
from .image_folder import list_image_folder, load_image_folder  # noqa: F401
from .knn import knn_accuracy, knn_predict  # noqa: F401
from .linear_probe import linear_probe_accuracy  # noqa: F401
