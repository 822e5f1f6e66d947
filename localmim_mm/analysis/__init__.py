"""Analysis helpers behind ``tools/analysis_tools`` (reconstructions, NMI, attention maps).

Not imported by ``localmim_mm/__init__.py``: only the analysis tools (and tests) need it, and it
pulls in matplotlib lazily where it draws.
"""
from .attention import (AttentionRecorder, attention_blocks, check_layers,  # noqa: F401
                        decoder_attentions,
                        encoder_attentions, patch_attention)
from .hog_glyphs import cell_orientation_histograms, glyph_templates, render_hog_glyphs  # noqa
from .images import ImageInput, find_images, load_image, overlay_heatmap, save_png  # noqa
from .loading import build_model, load_checkpoint_into, model_input_size, read_state_dict  # noqa
from .nmi import attention_nmi  # noqa: F401
from .reconstruction import (LayerReconstruction, hog_panels, patchify, pixel_panels,  # noqa
                             reconstruct, unpatchify)
