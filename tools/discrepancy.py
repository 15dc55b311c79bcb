#!/usr/bin/env python
"""Discrepancy measures (paper Eq. 2) of a pretraining checkpoint on the held-out titles.

    tools/discrepancy.py --weights output/movie_tv/checkpoints/model_0001000.pth
    tools/discrepancy.py --cfg movie_tv.yaml --weights ckpt.pth --out results/k16 EVAL.DISCREPANCY_MAX_SNIPPETS 8192

Builds the model (``avplug.models.build_model``) from ``--cfg``, or from the cfg stored in the
checkpoint when ``--cfg`` is omitted, loads the checkpoint's ``"model"`` state dict
(``torch.load(weights_only=True)``), embeds up to EVAL.DISCREPANCY_MAX_SNIPPETS snippets of the
held-out titles of DATA.CATALOG_DIR / DATA.STORE_DIR, and prints the measures as JSON.  Writes
``OUT/discrepancy.json``, the same figures as tables with intervals and chance levels in
``OUT/discrepancy.md``, and ``OUT/score_histograms.png`` (OUT defaults to OUTPUT_DIR/discrepancy).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.engine.log import setup_logging
from avplug.models.export import CheckpointFormatError, check_weights_file


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1], cfg_required=False)
    parser.add_argument("--weights", required=True, help="a pretraining checkpoint (dict with 'model' and 'cfg')")
    parser.add_argument("--out", default=None, help="output folder (default: OUTPUT_DIR/discrepancy)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    return parser


def read_checkpoint(path: str) -> dict:
    """The checkpoint dict (``weights_only`` loading); a :class:`CheckpointFormatError` naming the
    file when it is missing or not a pretraining checkpoint."""
    import torch

    check_weights_file(path, "--weights")
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data.get("model"), dict):
        raise CheckpointFormatError(f"--weights {path}: not a pretraining checkpoint (expected a dict with a 'model' state dict)")
    return data


@exits_on_user_error("discrepancy.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    checkpoint = read_checkpoint(args.weights)
    if args.cfg is None:
        if not isinstance(checkpoint.get("cfg"), str):
            raise CheckpointFormatError(f"--weights {args.weights} stores no cfg: pass --cfg")
        with tempfile.TemporaryDirectory(prefix="avplug-cfg-") as tmp:
            stored = Path(tmp) / "config.yaml"
            stored.write_text(checkpoint["cfg"])
            args.cfg = str(stored)
            cfg = cfg_from_args(args)
    else:
        cfg = cfg_from_args(args)
    from avplug.evaluation.heldout_embedding import evaluate_discrepancy
    from avplug.evaluation.heldout_report import heldout_markdown
    from avplug.models import build_model

    out = Path(args.out or Path(cfg.OUTPUT_DIR) / "discrepancy")
    setup_logging(out, stream=sys.stderr)  # stdout holds the JSON
    model = build_model(cfg)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]  # torch: a heading, then what differs
        detail = lines[1] if len(lines) > 1 else (lines or ["?"])[0]
        raise CheckpointFormatError(
            f"the weights of {args.weights} do not fit the model of the cfg (MODEL.VIDEO/AUDIO NAME and WIDTH, "
            f"MODEL.HEAD): {detail[:300]}"
        ) from exc
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    result = evaluate_discrepancy(cfg, model, device, plot_path=out / "score_histograms.png")
    result = {"weights": str(args.weights), "step": checkpoint.get("step"), **result}
    (out / "discrepancy.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "discrepancy.md").write_text("\n".join(heldout_markdown({Path(args.weights).name: result})) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
