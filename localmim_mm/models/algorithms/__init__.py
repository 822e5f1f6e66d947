from .localmim import *  # noqa: F401,F403
from .lomar import *  # noqa: F401,F403
