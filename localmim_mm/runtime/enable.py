"""``custom_imports=dict(imports=['localmim_mm', 'localmim_mm.runtime.enable'])`` switches the
runtime layer on for a run (see :func:`localmim_mm.runtime.enable`)."""
from . import enable

enable()
