"""Write config/README.md from the config schema (after adding or changing a config key).

    python scripts/write_config_readme.py            # rewrite config/README.md
    python scripts/write_config_readme.py --check    # exit 1 if it is not current
"""

import argparse
import sys
from pathlib import Path

from attentivenas.config_docs import render
from attentivenas.io import atomic_write_text

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--check", action="store_true", help="only check that config/README.md is current")
args = parser.parse_args()
text, path = render(), Path("config") / "README.md"
if args.check:
    current = path.is_file() and path.read_text() == text
    print(f"{path} is current" if current else f"{path} is stale: run python scripts/write_config_readme.py")
    sys.exit(0 if current else 1)
atomic_write_text(path, text)
print(f"wrote {path}")
