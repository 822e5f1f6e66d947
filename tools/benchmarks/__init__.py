"""Benchmarks of LocalMIM against mmpretrain's MAE, MaskFeat and SimMIM (``docs/benchmarks.md``).

Each script is a command run from the repository root, ``python -m tools.benchmarks.<name>``:
``throughput``, ``learning_efficiency``, ``camvid_transfer``, ``vitdet_memory``,
``gpu_acceptance``, ``release_parity`` and ``chaos_resume``. What several of them share (the
provenance header, report files, model building from configs, timed training steps, archives)
lives in :mod:`tools.benchmarks.core`.
"""
