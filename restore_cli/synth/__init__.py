"""Synthesis of degraded/clean/mask training pairs from clean photos.

``degraders.degrader(task)`` returns the function that degrades one clean
crop for a task; training and ``restore synth`` both use it.
"""
