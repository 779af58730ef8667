"""`docker-compose -f docker-compose.yaml config`: the offline validation CI runs (Debian's 1.29)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from bascule.paths import REPO_ROOT

pytestmark = pytest.mark.integration

COMPOSE = REPO_ROOT / "docker-compose.yaml"
CORE = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-worker",
        "airflow-init", "postgres", "redis"}


@pytest.mark.parametrize("profile", [None, "lab", "oracle", "flower"])
def test_docker_compose_config_accepts_the_file(profile: str | None):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (Debian package docker-compose) is not installed; scripts/setup.sh "
                    "installs it, so CI always runs this test")
    args = ["--profile", profile] if profile else []
    proc = subprocess.run([binary, "-f", str(COMPOSE), *args, "config"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    normalised = yaml.safe_load(proc.stdout)
    assert CORE <= set(normalised["services"])
    worker = normalised["services"]["airflow-worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["healthcheck"]["test"]
    assert worker["build"]["dockerfile"] == "Dockerfile"
    if profile == "lab":
        assert normalised["services"]["lab-legacy"]["profiles"] == ["lab"]


def test_docker_compose_config_rejects_a_broken_file(tmp_path):
    """The check can fail: a misspelt key is refused with the key named."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (Debian package docker-compose) is not installed; scripts/setup.sh "
                    "installs it, so CI always runs this test")
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    healthcheck:\n", "    healthchek:\n", 1))
    proc = subprocess.run([binary, "-f", str(broken), "config"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "healthchek" in proc.stderr
