"""wordfreq: the most frequent words of a text."""
__version__ = "0.4.0"
