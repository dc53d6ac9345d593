"""The top floor: what the ``ptyscan`` command and ``templates/run_recipe.py`` run.

- :mod:`~ptyscan.app.streaming`: the chunk loop (``iterate_chunks``) every job is built on.
- :mod:`~ptyscan.app.runner`: ``prepare`` (a ``.ptyd``) and ``run_recipe`` (reconstruct).
- :mod:`~ptyscan.app.simulate`: ``ptyscan simulate`` (data plus its truth file).
- :mod:`~ptyscan.app.cli`: the ``ptyscan`` command line.
"""
