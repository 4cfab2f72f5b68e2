"""harness: benchmarking and ablation harness for diffusion-based 3D human pose lifting."""

__version__ = "0.1.0"
