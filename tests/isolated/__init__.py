"""Suites of integrations whose dependency pins conflict with the main test environment.

Each ``tests/isolated/<name>/`` holds an ``extras`` file (the comma-separated extras of
threadline to install, ``test`` among them) and runs only in its own venv ``.venvs/<name>``
(``scripts/test.sh``); the main run skips this folder (``tests/conftest.py``).
"""
