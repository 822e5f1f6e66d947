from . import fsdp_wrap  # noqa: F401  (registers vit_block_wrap_policy in mmengine FUNCTIONS)
from .launch import prepare_launch  # noqa: F401
