"""The ``avail`` command line (contract section 6): commands only.

It sits on top of every other package and nothing imports it but its entry point
(``avail = avail.cli:main`` and ``python -m avail``); tests/unit/test_layout.py checks it.
"""
