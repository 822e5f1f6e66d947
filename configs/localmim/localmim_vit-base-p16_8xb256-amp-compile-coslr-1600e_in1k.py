# LocalMIM ViT-B/16, 1600 epochs (localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py) with
# torch.compile: tools/train.py compiles the model's forward (not mmengine's whole train step: the
# backward and the AdamW step stay eager; docs/scale_out.md), and the first iterations are slow
# while it compiles. The recipe is unchanged: batch 2048 (8 GPUs x 256), blr 2e-4, AMP. Needs
# PyTorch >= 2 and, for the default inductor backend, a C++ / Triton toolchain on the GPU machines.
_base_ = ['./localmim_vit-base-p16_8xb256-amp-coslr-1600e_in1k.py']

compile = True
