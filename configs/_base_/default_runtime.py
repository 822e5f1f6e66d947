# Runtime shared by every config of the plugin.
default_scope = 'mmpretrain'
# localmim_mm registers the modules; localmim_mm.runtime.enabled switches the runtime layer on
# (weights-only runner checkpoints, checked / converted checkpoint loading: localmim_mm/runtime).
custom_imports = dict(imports=['localmim_mm', 'localmim_mm.runtime.enabled'],
                      allow_failed_imports=False)

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Atomic writes; the oldest checkpoint is removed only once the new one is complete.
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Reliability (localmim_mm/runtime/hooks, docs/guarantees.md): --resume continues the same
    # random streams and batches, NaN / inf losses stop the run before they are checkpointed.
    rng_state=dict(type='RNGStateHook'),
    deterministic_pipeline=dict(type='DeterministicPipelineHook'),
    mid_epoch_resume=dict(type='MidEpochResumeHook'),
    non_finite_loss=dict(type='NonFiniteLossHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools/train.py switches to gloo when there is no GPU
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
# Different masks on every rank: the mask is drawn from each rank's own seeded generator.
randomness = dict(seed=0, diff_rank_seed=True)
