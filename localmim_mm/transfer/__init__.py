"""Transfer to downstream tasks: checkpoint files, URLs, the authors' release, loud loading.

Free of mmdet / mmseg imports. ``LoudPretrained`` is registered in mmengine's root
``WEIGHT_INITIALIZERS``, so ``init_cfg=dict(type='LoudPretrained', ...)`` resolves in the
mmpretrain, mmdet and mmseg scopes alike.
"""
from . import release_checkpoints  # noqa: F401  (registers the release URLs' loader)
from .checkpoint_io import (model_state_dict, package_versions, read_checkpoint,  # noqa: F401
                            save_pure_checkpoint, select_prefix, sha256_of, zoo_file_name)
from .loud_pretrained import LoudPretrainedInit  # noqa: F401
from .pretrained_loading import LoadReport, load_pretrained  # noqa: F401
