"""Cross-modal training objectives.

Importing this package registers the built-in LOSSES entry ``CrossModalNCE`` (the paper's Eq. 1,
with negatives from the global batch under torch.distributed).
"""
from avplug.losses.gather import all_gather_with_grad
from avplug.losses.nce import CrossModalNCE, cross_modal_nce_terms

__all__ = ["CrossModalNCE", "all_gather_with_grad", "cross_modal_nce_terms"]
