"""sonoflow: ultrasound videos and images to validated, explained lesion classifiers.

The library holds all logic; the Snakemake workflow only wires files to these functions.
Nothing here imports snakemake.
"""

__version__ = "0.1.0"
