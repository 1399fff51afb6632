"""The version of strided (``strided.__version__``), in a module of its own so that io can name it in files."""
__version__ = "0.1.0"
