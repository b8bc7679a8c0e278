"""The platform's benchmark (``make bench``); see ``bench.__main__``. Not part of the package."""
