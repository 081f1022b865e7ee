"""The campaign policy and the tier catalog as published versions (``versions.py``)."""
