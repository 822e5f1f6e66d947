"""CamVid (SegNet's 11 classes): ``{train,val}/*.jpg`` + ``{train,val}annot/*.png``."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

__all__ = ['CamVidDataset']


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """Labels are class ids 0-10; 11 (void) is ignored, so set ``ignore_index=11`` in the heads,
    the metric and ``seg_pad_val`` (see ``configs/benchmarks/mmsegmentation/*camvid*``)."""
    METAINFO = dict(
        classes=('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence',
                 'Car', 'Pedestrian', 'Bicyclist'),
        palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
                 [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
                 [0, 128, 192]])
    VOID = 11

    def __init__(self, img_suffix: str = '.jpg', seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False, **kwargs) -> None:
        if reduce_zero_label:
            raise ValueError('CamVidDataset: reduce_zero_label=True would drop Sky (class 0); '
                             'void is 11, leave reduce_zero_label=False')
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=False, ignore_index=self.VOID, **kwargs)
