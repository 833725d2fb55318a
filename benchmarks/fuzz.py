"""Coverage-guided fuzzing of Moksha's parsers with atheris (not part of the test suite).

Usage, from the repository root::

    python -m pip install atheris          # a wheel for CPython 3.11 on x86-64 Linux
    python benchmarks/fuzz.py stomp -max_total_time=600
    python benchmarks/fuzz.py livesocket -max_total_time=600
    python benchmarks/fuzz.py config_ini -max_total_time=300
    python benchmarks/fuzz.py config_value -max_total_time=300

Everything after the target's name goes to libFuzzer (``-runs=N``,
``-max_total_time=S``, a corpus folder, ``-artifact_prefix=DIR/``).  The
targets and their properties are in ``tests/fuzz_targets.py``, which the suite
runs under hypothesis with bounded examples.  A crash leaves its input in a
``crash-*`` file: replay it with ``python benchmarks/fuzz.py TARGET crash-...``,
then add it as an ``@example`` to the target's hypothesis test and fix it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import atheris
    except ImportError:
        print(
            "atheris is not installed: python -m pip install atheris "
            "(wheels exist for CPython 3.8-3.11 on Linux x86-64; other Pythons build it "
            "from source, which needs clang with libFuzzer).",
            file=sys.stderr,
        )
        return 2
    with atheris.instrument_imports(include=["moksha", "fuzz_targets"]):
        from fuzz_targets import TARGETS
    name = argv[1]
    if name not in TARGETS:
        print(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    atheris.Setup([argv[0], *argv[2:]], TARGETS[name])
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
