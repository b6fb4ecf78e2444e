"""Print the MFLOPs (multiply-adds) and params (millions, BN affine included) of subnet JSON files."""

from __future__ import annotations

import argparse
import json

from attentivenas.flops import count
from attentivenas.space import SearchSpace

HELP = "MFLOPs and params of subnet JSON files"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE.json", help="subnet JSON files")
    parser.add_argument("--space", default="attentivenas", help="bundled space name or a space YAML path")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {file, mflops, params_m}")


def run(args: argparse.Namespace) -> int:
    space = SearchSpace.load(args.space)
    rows = []
    for path in args.files:
        cost = count(space, space.load_subnet(path))
        rows.append({"file": path, "mflops": round(cost.mflops, 4), "params_m": round(cost.params_m, 4)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len("file"), *(len(r["file"]) for r in rows))
    print(f"{'file':<{width}}  {'MFLOPs':>10}  {'params (M)':>10}")
    for r in rows:
        print(f"{r['file']:<{width}}  {r['mflops']:>10.2f}  {r['params_m']:>10.3f}")
    return 0
