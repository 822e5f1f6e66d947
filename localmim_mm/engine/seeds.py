from mmengine.dist import broadcast_object_list


def rank0_seed(runner) -> int:
    """Rank 0's runner seed on every rank (``randomness.diff_rank_seed`` offsets the others)."""
    seed = [runner.seed]
    broadcast_object_list(seed)
    return seed[0]
