"""Fixtures shared by every test module."""

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """``main`` calls logging.basicConfig(force=True); drop its handler and level afterwards."""
    root = logging.getLogger()
    before, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
