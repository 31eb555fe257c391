"""The built wheel carries catalog.yaml, and an installed (not checked-out) r42 finds it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_catalog_and_runs_from_site_packages(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("r42-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "r42/catalog.yaml" in names
    assert {"r42/scoring/weights/trained.json", "r42/scoring/weights/trained.f32"} <= set(names)  # the default scorer
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # Run from the unpacked wheel, away from the checkout: the packaged catalog must be used.
    code = "import r42.catalog as c; print(c.shipped_catalog_path()); print(len(c.load_catalog().models))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "R42_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    path, count = proc.stdout.split()
    assert path.startswith(str(target)) and int(count) > 1000
