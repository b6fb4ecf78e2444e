"""Write dvc.yaml from config/config.yaml (after changing the workflow, the imports or that config).

    python scripts/write_dvc_yaml.py            # rewrite dvc.yaml
    python scripts/write_dvc_yaml.py --check    # exit 1 if dvc.yaml is not current
"""

import argparse
import sys
from pathlib import Path

from attentivenas.dvcfile import render
from attentivenas.io import atomic_write_text

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--check", action="store_true", help="only check that dvc.yaml is current")
args = parser.parse_args()
text, path = render(), Path("dvc.yaml")
if args.check:
    current = path.is_file() and path.read_text() == text
    print("dvc.yaml is current" if current else "dvc.yaml is stale: run python scripts/write_dvc_yaml.py")
    sys.exit(0 if current else 1)
atomic_write_text(path, text)
print(f"wrote {path}")
