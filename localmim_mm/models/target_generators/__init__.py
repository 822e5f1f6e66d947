from .multiscale_hog import *  # noqa: F401,F403
from .multiscale_pixel import *  # noqa: F401,F403
