import argparse
import getpass
import os
import sys
from importlib import resources

import textstats

from . import __version__


def main(argv=None):
    p = argparse.ArgumentParser(prog="wordfreq")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("file", nargs="?", help="a text file (default: the bundled sample)")
    a = p.parse_args(argv)
    if a.file:
        with open(a.file, encoding="utf-8") as f:
            text = f.read()
    else:
        text = resources.files("wordfreq").joinpath("data/sample.txt").read_text(encoding="utf-8")
    print(f"wordfreq {__version__} on python {sys.version_info.major}.{sys.version_info.minor}, textstats {textstats.__version__}")
    print(f"prefix={sys.prefix} user={getpass.getuser()} cwd={os.getcwd()}")
    for word, n in textstats.top_words(text, a.top):
        print(f"{n:3d} {word}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
