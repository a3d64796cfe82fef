"""A worked metaxm plugin: the ``linenav`` world and the ``thermometer`` modality family.

Installed (``pip install examples/linenav``), its ``metaxm.plugins`` entry point makes every
``metaxm`` command import this module, which registers both; ``linenav.yaml`` trains on them.
Without installing, a spec can name the module instead: ``imports: [metaxm_linenav]``.
"""

from metaxm.envs import register_world
from metaxm.modalities import register
from metaxm_linenav.thermometer import render, space, variant
from metaxm_linenav.world import LineNav, LineNavConfig

register_world("linenav", LineNav, LineNavConfig)
register("thermometer", render, space, variant=variant)
