"""The generator and the discriminator (Keras 3 functional subclasses)."""

from kgan.models.patchgan import PatchGANDiscriminator
from kgan.models.unet import UNetGenerator

__all__ = ["UNetGenerator", "PatchGANDiscriminator"]
