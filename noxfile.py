"""Developer sessions: ``nox`` runs lint, types and tests; ``nox -s bench`` measures.

Every session installs the project into its own virtualenv, so what passes here
passes on a fresh machine.  The test command is the README's: ``python -m pytest -q``.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_existing_virtualenvs = True

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
    """mypy --strict on the package (settings in pyproject.toml)."""
    session.install("-e", ".[test]", "mypy>=1.10")
    session.run("mypy", "--strict", "-p", "aioconc")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark table (``nox -s bench -- --quick`` for a short run)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "aioconc", "bench", *session.posargs)
