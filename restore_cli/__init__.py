"""restore: spatially-adaptive image restoration (SPAIR) from the command line."""

__version__ = "0.1.0"
