"""Writes the build manifest the runtime image ships (sorted keys: stable output)."""
import json
import platform
import sys

manifest = {
    "app_version": sys.argv[1],
    "python": ".".join(platform.python_version_tuple()[:2]),
    "components": sorted(sys.argv[2:]),
}
json.dump(manifest, sys.stdout, sort_keys=True, indent=1)
print()
