"""Unit tests of the lmdisc Python package (unittest, standard library only).

Run: python3 -m unittest discover -s python/tests -t python -v
"""

import logging
import os

if not os.environ.get("LOGLEVEL"):
    # keep the run's output to unittest's own; LOGLEVEL=DEBUG shows lmdisc's records
    logging.getLogger("lmdisc").addHandler(logging.NullHandler())
