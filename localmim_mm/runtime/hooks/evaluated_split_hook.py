"""What ``tools/test.py`` evaluates, in the log."""
from mmengine.hooks import Hook

__all__ = ['EvaluatedSplitHook', 'describe_dataset']


def _innermost(dataset):
    """The dataset inside wrappers (``RepeatDataset``, ``ClassBalancedDataset``, ...)."""
    while not hasattr(dataset, 'data_root') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset
    return dataset


def describe_dataset(dataset) -> str:
    """``N images of <type>: root ..., split ..., ...`` for the log."""
    inner = _innermost(dataset)
    parts = [f'root {getattr(inner, "data_root", None)!r}']
    for name in ('split', 'ann_file', 'data_prefix'):
        value = getattr(inner, name, None)
        if value:
            parts.append(f'{name} {value!r}')
    return f'{len(dataset)} images of {type(inner).__name__}: {", ".join(parts)}'


class EvaluatedSplitHook(Hook):
    """Logs what the test loop evaluates, once its dataloader is built."""
    priority = 'VERY_HIGH'

    def before_test(self, runner) -> None:
        runner.logger.info(f'evaluating {describe_dataset(runner.test_dataloader.dataset)}')
