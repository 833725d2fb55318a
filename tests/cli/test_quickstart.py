"""``moksha quickstart``, end to end: generate a project, install it, list it, test it, run it.

One virtual environment serves the module: it sees the packages of the
interpreter running the tests (Moksha, pytest, hatchling, pip) through a
``.pth`` file, and the generated project is installed into it with ``pip
install --no-index --no-deps --no-build-isolation -e``, so nothing is
downloaded.  ``--system-site-packages`` would not do: when the tests run in a
virtual environment, it shows the *base* interpreter's packages, not the ones
``scripts/test`` installed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import site
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest

from moksha.cli import main

NAME = "weather-alerts"
PACKAGE = "weather_alerts"
TOPIC = "weather_alerts.events"
DISTRIBUTION = "weather-alerts 0.1.0"
ALL_FILES = {
    "pyproject.toml",
    "README.md",
    ".gitignore",
    f"src/{PACKAGE}/__init__.py",
    f"src/{PACKAGE}/schemas.py",
    f"src/{PACKAGE}/consumer.py",
    f"src/{PACKAGE}/producer.py",
    f"src/{PACKAGE}/widget.py",
    f"src/{PACKAGE}/app.py",
    f"tests/test_{PACKAGE}.py",
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without MOKSHA_* settings from the machine running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOKSHA_")}
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env


def run(*argv: str | Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in argv],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_under(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project ``moksha quickstart weather-alerts`` generates (all components)."""
    directory = tmp_path_factory.mktemp("generated") / NAME
    assert main(["quickstart", NAME, "--dir", str(directory)]) == 0
    return directory


def share_site_packages(python: Path) -> None:
    """Let the virtual environment of ``python`` import what this interpreter imports.

    A ``.pth`` line that starts with ``import`` runs at start-up; ``site.addsitedir``
    adds each of this interpreter's site directories *and* reads their own ``.pth``
    files, which is where the editable install of Moksha itself lives.
    """
    found = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    ours = [path for path in site.getsitepackages() if Path(path).is_dir()]
    if site.ENABLE_USER_SITE and Path(site.getusersitepackages()).is_dir():
        ours.append(site.getusersitepackages())
    line = "import site; " + "; ".join(f"site.addsitedir({path!r})" for path in ours)
    Path(found.stdout.strip(), "_moksha_tests_parent.pth").write_text(line + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def venv_python(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment's python with the generated project installed (editable)."""
    root = tmp_path_factory.mktemp("venv")
    # pip comes from the running interpreter too: creating the venv takes 0.1 s, not 3.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60
    )
    python = root / "bin" / "python"
    share_site_packages(python)
    backend = run(python, "-c", "import hatchling", cwd=root)
    if backend.returncode != 0:
        pytest.fail(
            "hatchling, the generated project's build backend, is not installed: "
            "run python -m pip install -e '.[test]' in Moksha's checkout"
        )
    install = run(
        *(python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation"),
        *("--disable-pip-version-check", "-e", project),
        cwd=root,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python


# -- the generated project, installed ------------------------------------------


def test_generates_a_package_with_every_component(project: Path) -> None:
    assert files_under(project) == ALL_FILES
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == NAME
    assert any(dep.startswith("moksha") for dep in pyproject["project"]["dependencies"])
    package_init = (project / "src" / PACKAGE / "__init__.py").read_text(encoding="utf-8")
    assert f'TOPIC = "{TOPIC}"' in package_init


def test_moksha_list_shows_the_installed_components(venv_python: Path, tmp_path: Path) -> None:
    listed = run(venv_python, "-m", "moksha", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    ours = {
        row["kind"]: row for row in json.loads(listed.stdout) if row["distribution"] == DISTRIBUTION
    }
    assert set(ours) == {"consumer", "producer", "widget", "application"}
    assert ours["consumer"]["object"] == f"{PACKAGE}.consumer:WeatherAlertsConsumer"
    assert ours["producer"]["object"] == f"{PACKAGE}.producer:WeatherAlertsProducer"
    assert ours["widget"]["object"] == f"{PACKAGE}.widget:WeatherAlertsWidget"
    assert ours["application"]["name"] == PACKAGE  # so it is served at /apps/weather_alerts/
    for kind in ("consumer", "producer", "widget"):
        assert ours[kind]["topics"] == [TOPIC]
    assert all(row["error"] is None for row in ours.values())


def test_the_generated_schema_is_installed_for_its_topic(venv_python: Path, tmp_path: Path) -> None:
    listed = run(venv_python, "-m", "moksha", "schemas", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    ours = [row for row in json.loads(listed.stdout) if row["name"] == f"{PACKAGE}.event"]
    assert [(row["topic"], row["class"]) for row in ours] == [
        (TOPIC, f"{PACKAGE}.schemas.WeatherAlertsEvent")
    ]


def test_the_generated_tests_pass(venv_python: Path, project: Path) -> None:
    result = run(
        *(venv_python, "-m", "pytest", project / "tests", "-q", "-p", "no:cacheprovider"),
        cwd=project,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_moksha_hub_runs_the_generated_consumer_and_producer(
    venv_python: Path, tmp_path: Path
) -> None:
    hub = subprocess.Popen(
        [str(venv_python), "-m", "moksha", "hub"],
        cwd=tmp_path,  # no development.ini here: the built-in in-memory bus
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert hub.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    stderr = hub.stderr

    def read_stderr() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    expected = {
        f"consumer {PACKAGE}.consumer:WeatherAlertsConsumer on {TOPIC}",
        f"producer {PACKAGE}.producer:WeatherAlertsProducer",
        # The producer's first poll (now = True), counted by the consumer.
        f"{PACKAGE}: 1 message so far",
    }
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while expected and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            seen.append(line)
            expected = {text for text in expected if text not in line}
        assert not expected, f"never printed {expected}; the hub printed:\n{''.join(seen)}"
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=15)
    finally:
        if hub.poll() is None:
            hub.kill()
            hub.wait()
    reader.join(timeout=5)
    output = "".join(seen) + "".join(lines.queue)
    assert hub.returncode == 0, output
    assert output.rstrip().endswith("moksha hub stopped")
    assert "Traceback" not in output


# -- choosing components ---------------------------------------------------------


def test_consumer_only_on_a_given_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "solo"
    assert main(["quickstart", "solo", "--consumer", "--topic", "x.y", "--dir", str(target)]) == 0
    assert files_under(target) == {
        "pyproject.toml",
        "README.md",
        ".gitignore",
        "src/solo/__init__.py",
        "src/solo/schemas.py",
        "src/solo/consumer.py",
        "tests/test_solo.py",
    }
    pyproject = tomllib.loads((target / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["entry-points"] == {
        "moksha.schema": {"solo.event": "solo.schemas:SoloEvent"},
        "moksha.consumer": {"solo": "solo.consumer:SoloConsumer"},
    }
    assert 'TOPIC = "x.y"' in (target / "src" / "solo" / "__init__.py").read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert "src/solo/consumer.py" in out
    assert "pip install -e" in out
    assert "moksha hub" in out


@pytest.mark.parametrize(
    ("flags", "passed"),
    [(["-u"], 1), (["-P"], 1), (["-l"], 1), (["-C"], 1), (["-C", "-P"], 2), (["-u", "-P"], 3)],
)
def test_each_choice_of_components_passes_its_own_tests(
    flags: list[str], passed: int, tmp_path: Path
) -> None:
    target = tmp_path / "pick"
    assert main(["quickstart", "pick", *flags, "--dir", str(target)]) == 0
    # Importable from its src/ without installing: these tests only need the code.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"],
        cwd=target,
        env=clean_env(PYTHONPATH=str(target / "src")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{passed} passed" in result.stdout


# -- mistakes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("2fast", "cannot name a Python package"),
        ("my project", "cannot name a Python package"),
        ("trailing-", "cannot name a Python package"),
        ("class", "cannot name a Python package"),
        ("json", "would hide the module 'json'"),
    ],
)
def test_a_bad_name_is_a_usage_error(
    name: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out"
    assert main(["quickstart", name, "--dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"{name!r} {reason}" in err
    assert "Traceback" not in err
    assert not target.exists()


def test_a_wildcard_topic_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["quickstart", "ok", "--topic", "a.#", "--dir", str(tmp_path / "ok")]) == 2
    assert "'a.#' is not a usable topic" in capsys.readouterr().err
    assert not (tmp_path / "ok").exists()


def test_an_existing_directory_is_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine", encoding="utf-8")
    assert main(["quickstart", "taken", "--dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "already exists and is not empty" in err
    assert "--force" in err
    assert files_under(target) == {"notes.txt"}

    assert main(["quickstart", "taken", "--dir", str(target), "--force"]) == 0
    assert "pyproject.toml" in files_under(target)
    assert (target / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_the_default_directory_is_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["quickstart", "here", "--producer"]) == 0
    assert (tmp_path / "here" / "src" / "here" / "producer.py").is_file()
