from .localmim_swin import *  # noqa: F401,F403
from .localmim_vit import *  # noqa: F401,F403
from .lomar_vit import *  # noqa: F401,F403
