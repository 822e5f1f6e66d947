# LocalMIM ViT-L/16 sharded with FSDP: the recipe of
# localmim_vit-large-p16_16xb256-amp-coslr-800e_in1k.py (taps 1, 3, 21, 23; HOG nbins 18 with the
# frozen gradient bias; batch 4096 = 16 GPUs x 256, blr 1.5e-4, 800 epochs, AMP) for GPUs that do
# not hold ViT-L with its AdamW state next to the activations. mmengine's FlexibleRunner with
# FSDPStrategy (full sharding of parameters, gradients and AdamW state over all GPUs; one FSDP unit
# per transformer block and per decoder; runner checkpoints hold the full, unsharded state dict,
# so publishing and resuming work as for the DDP recipe). Memory per GPU of both recipes:
# docs/scale_out.md. Needs CUDA GPUs for AMP (tools/dist_train.sh CONFIG 16 on 2 nodes of 8).
_base_ = ['./localmim_vit-large-p16_16xb256-amp-coslr-800e_in1k.py']

runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(auto_wrap_policy=dict(type='vit_block_wrap_policy')),
    state_dict_cfg='full')
