"""avplug: self-supervised audio-visual pretraining on long-form video (movies, TV shows)."""
import avplug.compat  # noqa: F401  (must precede any pytorchvideo import)

__version__ = "0.1.0"
