"""The top floor: what the ``ptyscan`` command and ``templates/run_recipe.py`` run.

- :mod:`~ptyscan.app.streaming`: the chunk loop (``iterate_chunks``) every job is built on.
- :mod:`~ptyscan.app.runner`: ``prepare`` (a ``.ptyd``) and ``run_recipe`` (reconstruct).
- :mod:`~ptyscan.app.simulate`: ``ptyscan simulate`` (data plus its truth file).
- :mod:`~ptyscan.app.live`, :mod:`~ptyscan.app.live_writer`: a live acquisition
  (``ptyscan simulate --live``), previews and latency.
- :mod:`~ptyscan.app.stopping`: Ctrl-C/SIGTERM finish the iteration and save.
- :mod:`~ptyscan.app.cli`: the ``ptyscan`` command line.
"""
