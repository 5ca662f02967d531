"""Tiny text statistics."""
import collections
import re

__version__ = "1.1.0"
_WORD = re.compile(r"[a-z']+")


def words(text):
    return _WORD.findall(text.lower())


def top_words(text, n):
    """The n most frequent words, most frequent first, ties alphabetically."""
    counts = collections.Counter(words(text))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
