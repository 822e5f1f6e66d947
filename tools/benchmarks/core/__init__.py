"""What the benchmark scripts share, one concept per module:

* :mod:`.provenance`: the header of every output (command, git revision, machine, load);
* :mod:`.report`: output file names and the JSON + markdown writing;
* :mod:`.models`: configs of this repository and of mmpretrain, models built from them;
* :mod:`.methods`: the learning-efficiency methods as variants of the shipped configs;
* :mod:`.timing`: timed training steps of built models, interleaved round-robin;
* :mod:`.optim`: a recipe's optimiser wrapper for the device at hand;
* :mod:`.data`: archives unpacked once.
"""
import os.path as osp

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
