"""Export one subnet as a standalone model: recalibrated state_dict, ONNX, torch.export and its evaluation.

The directory gets subnet.json (with MFLOPs, params, resolution mode and the space), model_state.pt
(load it with attentivenas.export.load_exported, no supernet needed), model.onnx (checked in ONNX Runtime
against the PyTorch model on the evaluated split), model.pt2 (torch.export.load), evaluation.json and,
with --torchscript, model.ts.
"""

from __future__ import annotations

import argparse
import logging

from attentivenas.cli._stage import add_stage_arguments, start_stage
from attentivenas.export import export_subnet

HELP = "export a subnet as a standalone model (state_dict, ONNX, torch.export) with its evaluation"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument("--subnet", required=True, help="subnet JSON file")
    parser.add_argument("--out-dir", required=True, help="directory to write the model into")
    parser.add_argument("--split", choices=("search", "test"), default="test",
                        help="split evaluation.json reports and ONNX is checked on (default: test)")
    parser.add_argument("--torchscript", action="store_true",
                        help="also write model.ts (TorchScript, which torch marks deprecated)")


def run(args: argparse.Namespace) -> int:
    stage = start_stage(args)
    subnet = stage.space.load_subnet(args.subnet)
    supernet = stage.supernet(args.checkpoint)
    evaluator = stage.evaluator(args.split)
    result = export_subnet(supernet, subnet, evaluator, args.out_dir, torchscript=args.torchscript)
    logger.info("exported to %s: %.3f MFLOPs, %.4f M params, top-1 %.2f%% on %s", args.out_dir,
                result.mflops, result.params_m, result.top1, args.split)
    return 0
