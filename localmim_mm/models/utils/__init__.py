from .input_size import model_input_size  # noqa: F401
from .init import RELEASE_INIT_CFG, init_patch_embed_as_linear, zero_ffn_biases  # noqa: F401
from .masks import scale_mask  # noqa: F401
from .random import draw_global_batch  # noqa: F401
from .position import release_2d_sincos_position_embedding  # noqa: F401
from .validation import check_cell_sizes, check_scales, check_taps  # noqa: F401
