"""sleepnet.converters: trained torch models <-> spiking networks."""

from .torch_convert import SpikingNetwork, check_sequential, from_torch, scale_factors, to_torch

__all__ = ["SpikingNetwork", "check_sequential", "from_torch", "scale_factors", "to_torch"]
