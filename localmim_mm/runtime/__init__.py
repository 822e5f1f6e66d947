"""The run-hardening layer, switched on explicitly (never by ``import localmim_mm``).

Recipes switch it on through their runtime (``custom_imports`` in
``configs/_base_/default_runtime.py`` imports :mod:`localmim_mm.runtime.enabled`); the tools call
:func:`enable`. What it changes in the process, and why, is listed in :func:`enable`. Every use of
an mmengine private name lives in this package, behind :func:`~.compat.require_tested_mmengine`.
"""
__all__ = ['enable']


def enable() -> None:
    """Switch the runtime layer on (idempotent):

    * runner checkpoints written from now on load under ``torch.load(weights_only=True)``
      (mmengine's ``HistoryBuffer`` is pickled as plain data; the few data types a runner
      checkpoint holds are torch safe globals);
    * mmengine's local-file and http(s) checkpoint loaders are replaced by ones that check the
      file is whole, read it with the weights-only unpickler, download into the torch hub cache
      once, and convert the authors' release layout on the fly
      (:func:`localmim_mm.transfer.read_checkpoint`).
    """
    from .checkpoints import enable_checkpoint_loading  # here: runtime.compat imports nothing
    enable_checkpoint_loading()
