from . import fsdp_wrap  # noqa: F401  (registers vit_block_wrap_policy in mmengine FUNCTIONS)
from .checkpoint import allow_runner_checkpoints  # noqa: F401
from .launch import prepare_launch  # noqa: F401
