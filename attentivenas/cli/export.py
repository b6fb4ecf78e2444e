"""Export one subnet as a standalone model: recalibrated state_dict, TorchScript and its evaluation.

The directory gets subnet.json (with MFLOPs, params, resolution mode and the space), model_state.pt
(load it with attentivenas.export.load_exported, no supernet needed), model.ts and evaluation.json.
"""

from __future__ import annotations

import argparse

from attentivenas.checkpoint import load_supernet
from attentivenas.config import load_config
from attentivenas.data import build_splits
from attentivenas.evaluation import evaluator_from_config
from attentivenas.export import export_subnet
from attentivenas.runtime import resolve_device, seed_everything, set_threads
from attentivenas.space import SearchSpace

HELP = "export a subnet as a standalone model (state_dict + TorchScript) with its evaluation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="experiment config YAML")
    parser.add_argument("--checkpoint", required=True, help="supernet checkpoint")
    parser.add_argument("--subnet", required=True, help="subnet JSON file")
    parser.add_argument("--out-dir", required=True, help="directory to write the model into")
    parser.add_argument("--split", choices=("search", "test"), default="test",
                        help="split evaluation.json reports (default: test)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    set_threads(args.threads)
    seed_everything(config["seed"])
    space = SearchSpace.load(config["space"])
    subnet = space.load_subnet(args.subnet)
    device = resolve_device(config["device"])
    supernet = load_supernet(args.checkpoint, space, device, config["resolution_mode"])
    splits = build_splits(config["data"], image_size=space.base_resolution)
    evaluator = evaluator_from_config(config, splits, args.split, device)
    result = export_subnet(supernet, subnet, evaluator, args.out_dir)
    print(f"exported to {args.out_dir}: {result.mflops:.3f} MFLOPs, {result.params_m:.4f} M params, "
          f"top-1 {result.top1:.2f}% on {args.split}")
    return 0
