"""``restore bench``: score a model on the benchmarks SPAIR reports.

``datasets`` finds the pairs (registry, folder layouts, Hub fetch),
``synthetic`` builds the offline smoke-test set, ``protocols`` holds the
papers' metric conventions, ``run`` is the loop, ``report`` and ``gallery``
write the results, ``published`` holds the papers' numbers, ``cli`` is the
command.
"""
