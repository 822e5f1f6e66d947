"""One AMP training step of every downstream recipe, at the real model size.

What ``AmpOptimWrapper`` does on a GPU (the forward under ``torch.autocast``, backward and step
outside it) is done here on the CPU with ``torch.autocast('cpu', dtype=torch.bfloat16)``, by an
``OptimWrapper`` whose ``optim_context`` adds the autocast. Each recipe's model is built from its
real config with the pre-trained init disabled (no checkpoint exists here) and stepped once through
``model.train_step`` on a synthetic batch at a reduced input size. Every config under
``configs/benchmarks/`` is covered; recipes with the same model (another schedule, data set or
learning rate) share one step (``test_every_downstream_recipe_is_covered``). The B-size ones:

=====================  ==========================================================  =========
family                 config                                                      input
=====================  ==========================================================  =========
classification ViT-B   classification/vit-base-p16_8xb128-amp-coslr-100e_in1k      2 x 64 px
classification Swin-B  classification/swin-base-w7_8xb128-amp-coslr-100e_in1k      1 x 224 px
Mask R-CNN Swin-B      mmdetection/mask-rcnn_swin-base-p4-w7_fpn_1x_coco           1 x 256 px
Mask R-CNN ViT-B       mmdetection/mask-rcnn_vit-base-p16_sfp_1x_coco (global)     1 x 256 px
Mask R-CNN ViTDet-B    mmdetection/mask-rcnn_vit-base-p16-vitdet_sfp_..._100e      1 x 256 px
UperNet ViT-B          mmsegmentation/upernet_vit-base-p16_8xb2-160k_ade20k        1 x 128 px
UperNet Swin-B         mmsegmentation/upernet_swin-base-p4-w7_8xb2-160k_ade20k     1 x 128 px
=====================  ==========================================================  =========

Swin-B classification keeps 224 px: its last stage must hold a 7 x 7 window (the config does not
pad small maps). The BEiT-style UperNet ViT sizes its relative position tables for its crop, so its
``img_size`` (and the preprocessor's pad size) follow the 128-px crop. Only the input size differs
from the recipe.

Checks: finite losses; a finite gradient on every trainable parameter (none is exempt: every
output norm, class token, relative position table and head is used by the loss); every
``nn.Linear`` / ``nn.Conv2d`` output in bfloat16 (autocast really covered the model); and each loss
within ``atol + rtol * |loss|`` of the float32 step on the same input with the same random draws
(``TOLERANCE``).

Two test-side shims, for two mmcv ops in the Mask R-CNN tests (``_mmcv_ops_in_float32``), both
for differences between CPU-bfloat16 autocast and the GPU-float16 autocast the recipes use:

* ``RoIAlign`` has CPU and CUDA kernels for float32 / float64 / float16 but none for bfloat16
  (``AT_DISPATCH_FLOATING_TYPES_AND_HALF`` in mmcv 2.1.0). Under GPU AMP its inputs are float16,
  which the kernel supports. The shim runs it in float32 and casts the result back to bfloat16.
* ``nms`` reads its boxes as float32 only (``data_ptr<float>``, CPU and CUDA). On a GPU the RPN's
  decoded boxes are float32 anyway, because CUDA autocast runs ``torch.exp`` (in the box decoder)
  in float32; CPU autocast keeps ``exp`` in bfloat16. The shim hands NMS float32 boxes and scores,
  as a GPU run does.

Neither is a defect GPU users meet with the shipped (float16) recipes; a GPU run switched to
``optim_wrapper.dtype='bfloat16'`` would meet the RoIAlign one.
"""
import contextlib
import copy
import glob
import importlib
import json
import os.path as osp
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope

from .conftest import REPO

import localmim_mm  # noqa: F401
import localmim_mm.transfer  # noqa: F401

BENCH = osp.join(REPO, 'configs', 'benchmarks')
FAMILIES = {'classification': 'cls', 'mmdetection': 'det', 'mmsegmentation': 'seg'}
# Reduced input side per family; a Swin classifier keeps its own (its last stage must hold a
# whole window: the config does not pad small maps).
INPUT = dict(cls=64, det=256, seg=128)
# |bf16 loss - fp32 loss| <= atol + rtol * |fp32 loss|. bfloat16 rounds each op's output to
# 8 significant bits (relative error up to 2**-9 = 0.2 %); over 12-24 blocks and the heads the
# losses moved by at most 0.12 % relative (Swin-B loss_mask) / 0.002 absolute on this machine; the
# bound leaves ~8x room for other CPUs' kernels.
TOLERANCE = dict(rtol=0.01, atol=0.005)


def downstream_recipes():
    """{id: (config path, family, input side)}: every config under configs/benchmarks/, one per
    distinct model (recipes that differ only in schedule, data or checkpoint share a step)."""
    recipes, seen = {}, {}
    for path in sorted(glob.glob(osp.join(BENCH, '*', '*.py'))):
        family = FAMILIES[osp.basename(osp.dirname(path))]
        model = Config.fromfile(path).model.to_dict()
        model['backbone'].pop('init_cfg', None)
        key = json.dumps([family, model], sort_keys=True, default=str)
        if key in seen:
            seen[key].append(osp.relpath(path, BENCH))
            continue
        size = INPUT[family]
        if family == 'cls' and 'Swin' in model['backbone']['type']:
            size = model['backbone'].get('img_size', 224)
        name = f'{family}_{osp.basename(path)[:-3]}'
        recipes[name] = (osp.relpath(path, BENCH), family, size)
        seen[key] = [osp.relpath(path, BENCH)]
    return recipes, list(seen.values())


RECIPES, GROUPS = downstream_recipes()


class CPUAutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` adds CPU autocast, as ``AmpOptimWrapper`` adds
    CUDA autocast; it keeps each parameter's gradient of the step in ``grads``."""

    def __init__(self, model: nn.Module, dtype=None):
        # lr 0: the step leaves the weights unchanged, so the fp32 step sees the same model
        super().__init__(torch.optim.SGD(model.parameters(), lr=0.0))
        self.dtype = dtype
        self.names = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
        self.grads = {}

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        autocast = (torch.autocast('cpu', dtype=self.dtype) if self.dtype is not None
                    else contextlib.nullcontext())
        with super().optim_context(model), autocast:
            yield

    def step(self, **kwargs) -> None:
        for group in self.optimizer.param_groups:
            for p in group['params']:
                if id(p) in self.names:
                    self.grads[self.names[id(p)]] = None if p.grad is None else p.grad.clone()
        super().step(**kwargs)


def _mmcv_ops_in_float32(monkeypatch):
    """The documented shims (module docstring): RoIAlign and NMS get float32 inputs."""
    from mmcv.ops import RoIAlign
    nms_module = importlib.import_module('mmcv.ops.nms')  # (mmcv.ops.nms is also a function)
    roi_align, nms = RoIAlign.forward, nms_module.nms

    def roi_align_float32(self, input, rois):
        if input.dtype != torch.bfloat16:
            return roi_align(self, input, rois)
        return roi_align(self, input.float(), rois.float()).to(torch.bfloat16)

    def nms_float32(boxes, scores, *args, **kwargs):
        return nms(boxes.float(), scores.float(), *args, **kwargs)

    monkeypatch.setattr(RoIAlign, 'forward', roi_align_float32)
    monkeypatch.setattr(nms_module, 'nms', nms_float32)  # what batched_nms looks up


def _image(size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator)


def _classification(cfg, size):
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model = MODELS.build(cfg.model)
    batch = 1 if size >= 224 else 2
    data = dict(inputs=[_image(size, i) for i in range(batch)],
                data_samples=[DataSample().set_gt_label(i * 7) for i in range(batch)])
    return model, data


def _detection(cfg, size):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    model = MODELS.build(cfg.model)
    boxes = torch.tensor([[20., 30., 120., 150.], [100., 60., 240., 200.], [10., 180., 90., 250.]])
    masks = np.zeros((3, size, size), dtype=np.uint8)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
        mask[y1 + 5:y2 - 5, x1 + 5:x2 - 5] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                         scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(bboxes=boxes, labels=torch.tensor([0, 17, 56]),
                                       masks=BitmapMasks(masks, size, size))
    return model, dict(inputs=[_image(size)], data_samples=[sample])


def _segmentation(cfg, size):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    cfg.model.data_preprocessor.size = (size, size)
    if cfg.model.backbone.type == 'mmpretrain.BEiTViT':
        cfg.model.backbone.img_size = (size, size)
    # SyncBN needs a process group; BN is what it computes in a single process
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    samples, classes = [], cfg.model.decode_head.num_classes
    for seed in range(2):  # 2 images: the pyramid pooling's 1 x 1 map needs > 1 value for BN
        labels = torch.randint(0, classes, (1, size // 8, size // 8), generator=torch.Generator()
                               .manual_seed(seed)).repeat_interleave(8, 1).repeat_interleave(8, 2)
        sample = SegDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size)))
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return model, dict(inputs=[_image(size, seed) for seed in range(2)], data_samples=samples)


def _build(name):
    path, family, size = RECIPES[name]
    cfg = Config.fromfile(osp.join(BENCH, path))
    cfg.model.backbone.init_cfg = None  # no pre-trained checkpoint here
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    build = dict(cls=_classification, det=_detection, seg=_segmentation)[family]
    model, data = build(cfg, size)
    model.init_weights()
    return model, data


def _step(model, data, dtype):
    """One ``train_step`` with fixed random draws; returns the losses and the wrapper."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    wrapper = CPUAutocastOptimWrapper(model, dtype)
    log_vars = model.train_step(copy.deepcopy(data), wrapper)
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v)
            for k, v in log_vars.items() if 'loss' in k}, wrapper


def _output_dtypes(model):
    dtypes, handles = set(), []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            handles.append(module.register_forward_hook(
                lambda mod, args, out: dtypes.add(out.dtype)))
    return dtypes, handles


def _same_proposals(model, monkeypatch):
    """Mask R-CNN: the first step records the RPN's proposals, later steps still compute theirs
    (which must be finite) but hand the RoI head the recorded ones. The proposals are a discrete,
    gradient-free choice (top-k + NMS of the RPN scores): bfloat16 rounding changes which boxes
    survive, and with them the sampled RoIs and the RoI losses, by far more than any precision
    tolerance. With the same proposals the two steps' RoI losses are comparable."""
    predict, recorded = model.rpn_head.predict_by_feat, []

    def record_or_replay(*args, **kwargs):
        proposals = predict(*args, **kwargs)
        assert all(torch.isfinite(p.bboxes).all() for p in proposals)
        if not recorded:
            recorded.extend(proposals)
        return copy.deepcopy(recorded)

    monkeypatch.setattr(model.rpn_head, 'predict_by_feat', record_or_replay)


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_one_amp_step(name, monkeypatch):
    family = RECIPES[name][1]
    if family == 'det':
        import localmim_mm.det  # noqa: F401
        _mmcv_ops_in_float32(monkeypatch)
    elif family == 'seg':
        import localmim_mm.seg  # noqa: F401
    model, data = _build(name)
    model.train()
    if family == 'det':
        _same_proposals(model, monkeypatch)

    fp32_losses, _ = _step(model, data, None)
    dtypes, handles = _output_dtypes(model)
    amp_losses, amp = _step(model, data, torch.bfloat16)
    for handle in handles:
        handle.remove()
    assert dtypes == {torch.bfloat16}, f'{name}: layers ran in {dtypes} under autocast'

    assert amp_losses and all(np.isfinite(v) for v in amp_losses.values()), amp_losses
    without = {n for n, g in amp.grads.items() if g is None}
    assert not without, f'{name}: no gradient for {sorted(without)}'
    bad = [n for n, g in amp.grads.items() if g is not None and not torch.isfinite(g).all()]
    assert not bad, f'{name}: non-finite gradients in {bad}'

    assert set(fp32_losses) == set(amp_losses)
    far = {k: (amp_losses[k], v) for k, v in fp32_losses.items()
           if abs(amp_losses[k] - v) > TOLERANCE['atol'] + TOLERANCE['rtol'] * abs(v)}
    assert not far, f'{name}: bf16 vs fp32 losses beyond {TOLERANCE}: {far}'


def test_every_downstream_recipe_is_covered():
    """Each config is in exactly one stepped group, and the families' B-size recipes are there."""
    listed = [p for group in GROUPS for p in group]
    assert len(listed) == len(set(listed)) == len(glob.glob(osp.join(BENCH, '*', '*.py')))
    stepped = {path for path, _, _ in RECIPES.values()}
    assert all(any(p in stepped for p in group) for group in GROUPS)
    for path in ('classification/vit-base-p16_8xb128-amp-coslr-100e_in1k.py',
                 'classification/swin-base-w7_8xb128-amp-coslr-100e_in1k.py',
                 'mmdetection/mask-rcnn_swin-base-p4-w7_fpn_1x_coco.py',
                 'mmdetection/mask-rcnn_vit-base-p16_sfp_1x_coco.py',
                 'mmdetection/mask-rcnn_vit-base-p16-vitdet_sfp_8xb8-amp-lsj-100e_coco.py',
                 'mmsegmentation/upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py',
                 'mmsegmentation/upernet_swin-base-p4-w7_8xb2-160k_ade20k-512x512.py'):
        assert path in listed
