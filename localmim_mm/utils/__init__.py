from .checkpoint import allow_runner_checkpoints  # noqa: F401
from .launch import prepare_launch  # noqa: F401
