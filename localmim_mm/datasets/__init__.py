from .load_image import CorruptImageError, StrictLoadImageFromFile

__all__ = ['CorruptImageError', 'StrictLoadImageFromFile']
