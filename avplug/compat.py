"""The one place that adapts third-party packages to the pinned environment.

pytorchvideo 0.1.5 (its last release) imports ``torchvision.transforms.functional_tensor``, which
torchvision removed in 0.17 (it became the private ``_functional_tensor``).  Importing this module
aliases the old name so pytorchvideo imports; ``avplug/__init__.py`` imports it first, so any
``import avplug...`` is enough.  It also silences the FutureWarning torch prints when pytorchvideo
is imported.  Never import pytorchvideo before avplug.
"""
import sys
import warnings

import torchvision.transforms

# pytorchvideo's transforms use torch.jit.script_method, which torch deprecates with a FutureWarning
# at import: a line on stderr of every tool that is the user's to do nothing about.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script_method` is deprecated", category=FutureWarning)

if "torchvision.transforms.functional_tensor" not in sys.modules:
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (older torchvision)
    except ImportError:
        from torchvision.transforms import _functional_tensor

        sys.modules["torchvision.transforms.functional_tensor"] = _functional_tensor
        torchvision.transforms.functional_tensor = _functional_tensor
