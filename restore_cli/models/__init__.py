"""SPAIR architectures: NetL (localisation) and NetR (restoration)."""

from .config import TINY, NetLConfig, NetRConfig, SPAIRConfig
from .netl import NetL
from .netr import NetR
from .spair import SPAIR, load_spair, save_spair

__all__ = ["NetL", "NetR", "SPAIR", "SPAIRConfig", "NetLConfig", "NetRConfig", "TINY", "load_spair", "save_spair"]
