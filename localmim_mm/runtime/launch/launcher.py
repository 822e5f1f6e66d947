"""What ``tools/train.py`` does before building the Runner, kept importable for tests."""
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log


def use_plain_optim_wrapper(cfg: Config) -> None:
    """Replace an ``AmpOptimWrapper`` by ``OptimWrapper`` (dropping its AMP-only arguments)."""
    wrapper = cfg.optim_wrapper
    kept = {k: v for k, v in wrapper.items() if k not in ('type', 'loss_scale', 'dtype')}
    cfg.optim_wrapper = dict(type='OptimWrapper', **kept)


def check_amp(cfg: Config, amp_flag: bool, no_amp_flag: bool) -> None:
    """``--amp`` turns AMP on, ``--no-amp`` off; AMP without a CUDA GPU is a clear error."""
    if amp_flag and no_amp_flag:
        raise SystemExit('--amp and --no-amp contradict each other; pass one of them')
    if no_amp_flag:
        use_plain_optim_wrapper(cfg)
        return
    if amp_flag:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    wants_amp = cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
    if wants_amp and not torch.cuda.is_available():
        source = '--amp' if amp_flag else 'the config (optim_wrapper.type=AmpOptimWrapper)'
        raise SystemExit(
            f'AMP was requested by {source}, but no CUDA GPU is available: mixed precision '
            'training here needs a GPU. On a CPU machine add --no-amp to train in float32 '
            '(the recipe is otherwise unchanged).')


def init_cpu_distributed(cfg: Config) -> None:
    """On a machine without CUDA, start a ``gloo`` process group before the Runner does.

    mmengine's PyTorch launcher always calls ``torch.cuda.set_device`` (fatal without a GPU);
    when a group already exists the Runner skips its own initialisation. DDP also rejects
    ``device_ids`` for CPU modules, so the wrapper is told to pass none (FSDP: ``device_id``
    'cpu'), whether the Runner's ``model_wrapper_cfg`` or a ``FlexibleRunner`` strategy's
    ``model_wrapper`` builds it.
    """
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.env_cfg = cfg.get('env_cfg', {})
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('strategy') is not None:
        place_strategy_on_cpu(cfg.strategy)
    else:
        wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    print_log(f'no CUDA GPU: initialised a gloo process group (rank {dist.get_rank()} of '
              f'{dist.get_world_size()})', logger='current')


# mmengine's state_dict_cfg='full' without offload_to_cpu, which segfaults (torch 2.13) when
# the parameters already live on the CPU.
FULL_STATE_DICT_ON_CPU = dict(
    state_dict_type='FULL_STATE_DICT',
    state_dict_config=dict(type='FullStateDictConfig', rank0_only=True, offload_to_cpu=False),
    optim_state_dict_config=dict(type='FullOptimStateDictConfig', rank0_only=True,
                                 offload_to_cpu=False))


def place_strategy_on_cpu(strategy: dict) -> None:
    """Device arguments of a ``FlexibleRunner`` strategy's wrapper for a CPU process group."""
    kind = str(strategy.get('type', ''))
    if kind.endswith('DDPStrategy'):
        strategy['model_wrapper'] = dict(strategy.get('model_wrapper') or {}, device_ids=None)
    elif kind.endswith('FSDPStrategy'):
        strategy['model_wrapper'] = dict(strategy.get('model_wrapper') or {}, device_id='cpu')
        if strategy.get('state_dict_cfg') == 'full':
            strategy['state_dict_cfg'] = FULL_STATE_DICT_ON_CPU
    elif kind and not kind.endswith('SingleDeviceStrategy'):
        raise SystemExit(f'strategy {kind} needs CUDA GPUs (no GPU here); on a CPU machine use '
                         'DDPStrategy or FSDPStrategy, or the default Runner')


def prepare_launch(cfg: Config, launcher: str, amp: bool = False, no_amp: bool = False) -> None:
    check_amp(cfg, amp, no_amp)
    cfg.launcher = launcher
    if launcher != 'none' and not torch.cuda.is_available():
        init_cpu_distributed(cfg)
    elif launcher != 'none':
        cfg.env_cfg = cfg.get('env_cfg', {})
        cfg.env_cfg.setdefault('dist_cfg', {}).setdefault('backend', 'nccl')
