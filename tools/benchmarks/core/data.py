"""Data archives, unpacked once."""
import os
import os.path as osp
import tarfile


def unpack_once(archive: str, target: str) -> str:
    """Unpack the ``.tar[.gz]`` ``archive`` into the folder ``target`` unless it exists; the
    folder appears whole or not at all (unpacked beside it, then renamed)."""
    if not osp.isdir(target):
        partial = target + '.tmp'
        os.makedirs(partial, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter='data')
        os.replace(partial, target)
    return target
