from .masks import scale_mask  # noqa: F401
from .validation import check_cell_sizes, check_scales  # noqa: F401
