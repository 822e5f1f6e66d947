from .multi_layer_neck import *  # noqa: F401,F403
