"""Developer sessions: ``nox`` runs lint, types and tests; ``nox -s bench`` measures.

Every session installs the project into its own virtualenv, so what passes here
passes on a fresh machine.  The test command is the README's: ``python -m pytest -q``.
``nox -s tests`` runs it on every supported Python (3.10 to 3.13); interpreters
installed with pyenv are found without activating them.  Virtualenvs live under
``$NOX_ENVDIR`` (default ``~/.cache/aioconc-nox``), never in the checkout.
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["lint", "types", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True
nox.options.envdir = os.environ.get(
    "NOX_ENVDIR", os.path.join(os.path.expanduser("~"), ".cache", "aioconc-nox")
)

# nox looks interpreters up as ``python3.X`` on PATH; pyenv's shims refuse
# versions that are not selected, so link each ``python3.X`` pyenv has into one
# folder put first on PATH (the versions' own bin folders would also shadow
# ``python3``).
_PYENV = os.environ.get("PYENV_ROOT", os.path.join(os.path.expanduser("~"), ".pyenv"))
_LINKS = os.path.join(nox.options.envdir, "_pythons")
for _exe in glob.glob(os.path.join(_PYENV, "versions", "3.1*", "bin", "python3.1?")):
    os.makedirs(_LINKS, exist_ok=True)
    _link = os.path.join(_LINKS, os.path.basename(_exe))
    if not os.path.exists(_link):
        os.symlink(_exe, _link)
if os.path.isdir(_LINKS):
    os.environ["PATH"] = os.pathsep.join([_LINKS, os.environ.get("PATH", "")])

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the test suite (extra pytest arguments after ``--``)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict on the package, its typing tests and the benchmarks (pyproject.toml)."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; fails on a broken link or a missing reference."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")


@nox.session
def bench(session: nox.Session) -> None:
    """``python -m benchmarks``: the benchmark table (``nox -s bench -- --quick``: a short run)."""
    session.install("-e", ".[test,plot]")
    session.run("python", "-m", "benchmarks", *session.posargs)
