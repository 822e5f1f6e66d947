from .load_image import CorruptImageError, StrictLoadImageFromFile
from .unlabeled_image_folder import UnlabeledImageFolder

__all__ = ['CorruptImageError', 'StrictLoadImageFromFile', 'UnlabeledImageFolder']
