from .localmim_head import *  # noqa: F401,F403
from .lomar_head import *  # noqa: F401,F403
