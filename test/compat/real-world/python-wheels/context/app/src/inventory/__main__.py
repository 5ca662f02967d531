import os
import sys

import yaml

from . import __version__


def main():
    path = os.environ.get("INVENTORY_CONFIG", "/etc/inventory/config.yaml")
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    print(f"inventory {__version__} (PyYAML {yaml.__version__}), config {path}")
    total = 0
    for item in sorted(cfg["items"], key=lambda i: i["name"]):
        value = item["count"] * item["price"]
        total += value
        print(f"{item['name']:<8} {item['count']:>3} x {item['price']:>6.2f} = {value:>8.2f}")
    print(f"{'total':<8} {total:>23.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
