"""Pictures and source listings for the notebooks, one module per kind of picture; functions return figures.

``style``: the course's resolution, fonts and label colours; ``source``: ``show_source``;
``images``: images and feature maps side by side, zoomed in, profiled across outlines;
``curves``: training histories, learning-rate sweeps, paired runs over seeds; ``unet_diagram``:
``draw_unet``, the U of Fig. 1 drawn from a model; ``expansive``: the up step drawn from real
tensors (transposed convolution, skip crop); ``outlines``: predicted and true outlines drawn into
an image. Every public name is importable from ``unet_lib.viz`` as well.
"""

from .curves import plot_history, plot_lr_sweep, plot_paired_arms
from .expansive import PaintedKernels, draw_skip_crop, painted_kernels, show_transposed_conv
from .images import plot_boundary_profile, show_feature_maps, show_images, show_zoom
from .outlines import OUTLINE_COLOURS, draw_outlines, outlines, write_overlay
from .source import Source, show_source
from .style import COURSE_DPI, label_colours, use_course_style
from .unet_diagram import draw_unet

__all__ = ["Source", "show_source", "use_course_style", "label_colours", "show_images", "show_feature_maps",
           "plot_history", "draw_unet", "COURSE_DPI",
           "draw_skip_crop",
           "painted_kernels", "PaintedKernels", "show_transposed_conv",
           "plot_lr_sweep",
           "plot_paired_arms",
           "show_zoom",
           "plot_boundary_profile",
           "outlines", "draw_outlines", "write_overlay", "OUTLINE_COLOURS",
           ]
