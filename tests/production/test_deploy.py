"""deploy/ wired up correctly, checked without a container engine: the Dockerfile, compose
file and Kubernetes manifests run commands `kom` accepts, with settings KOM reads, on the
ports and probes KOM serves, with the migration before the servers."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugin.cli import build_parser
from plugin.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
IMAGE = "kom:0.1.0"
PORT = 8000
SETTINGS = {f"KOM_{name.upper()}" for name in Settings.model_fields}


def kom_args(args: list[str]) -> Any:
    """Parse as `kom` would (SystemExit on an unknown command or option)."""
    return build_parser().parse_args(args)


def kom_names(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("KOM_")}


# -- Dockerfile ---------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_non_root_without_build_tools() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert "slim" in final[0]
    final_text = "\n".join(final)
    assert not re.search(r"build-essential|gcc|apt-get install", final_text)
    assert "COPY --from=build /opt/kom /opt/kom" in final_text
    user = next(line.split()[1] for line in final if line.startswith("USER "))
    assert user.split(":")[0] not in ("root", "0")
    assert f"EXPOSE {PORT}" in final
    healthcheck = next(line for line in final if line.startswith("HEALTHCHECK"))
    assert f"127.0.0.1:{PORT}/healthz" in healthcheck
    entrypoint = next(line for line in final if line.startswith("ENTRYPOINT"))
    assert entrypoint == 'ENTRYPOINT ["kom"]'
    cmd = next(line for line in final if line.startswith("CMD"))
    args = yaml.safe_load(cmd[len("CMD") :])
    assert kom_args(args).port == PORT and kom_args(args).host == "0.0.0.0"
    env = {m.group(1) for m in re.finditer(r"\b(KOM_[A-Z_]+)=", final_text)}
    assert env and kom_names(env) <= SETTINGS


def copy_lines() -> list[tuple[list[str], str]]:
    """The build stage's ``COPY src... dest`` lines from the build context (not --from=)."""
    found = []
    for line in dockerfile_stages()[0]:
        words = line.split()
        if words[0] == "COPY" and not any(w.startswith("--from=") for w in words):
            args = [w for w in words[1:] if not w.startswith("--")]
            found.append((args[:-1], args[-1]))
    return found


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(re-include?, pattern) per line, in Docker's syntax: ``*`` within a path segment,
    ``**`` across segments, ``!`` re-includes; a trailing / is dropped."""
    patterns = []
    for raw in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate, line = line.startswith("!"), line.removeprefix("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else "[^/]*" if part == "*" else "[^/]" if part == "?" else re.escape(part)
            for part in re.split(r"(\*\*|\*|\?)", line)
        )
        patterns.append((negate, re.compile(regex)))
    return patterns


def in_build_context(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path, or one of its parent folders, decides."""
    parents = [path, *("/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 1))]
    included = True
    for negate, pattern in patterns:
        if any(pattern.fullmatch(candidate) for candidate in parents):
            included = negate
    return included


def build_context(into: Path) -> Path:
    """The files `docker build -f deploy/Dockerfile .` sends, copied into ``into``."""
    import shutil

    patterns = dockerignore_patterns()
    for source in REPO.rglob("*"):
        relative = source.relative_to(REPO).as_posix()
        if source.is_file() and in_build_context(relative, patterns):
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / relative)
    return into


def test_the_build_context_keeps_only_what_the_image_needs() -> None:
    patterns = dockerignore_patterns()
    assert patterns[0] == (False, re.compile("[^/]*"))  # everything out, then what is needed back in
    for sources, _ in copy_lines():
        for source in sources:
            assert in_build_context(source.rstrip("/"), patterns), f"COPY {source}: not in the build context"
    assert not in_build_context(".venv/bin/python", patterns)
    assert not in_build_context("plugin/__pycache__/cli.cpython-311.pyc", patterns)
    assert not in_build_context("tests/test_cli.py", patterns)


def test_the_wheel_builds_from_exactly_the_docker_build_context(tmp_path: Path) -> None:
    """What `pip install .` in the Dockerfile's build stage does, offline and without Docker:
    the COPY lines applied to the build context, then a wheel built from the result."""
    import shutil
    import subprocess
    import sys
    import zipfile

    context = build_context(tmp_path / "context")
    src = tmp_path / "src"  # WORKDIR /src
    src.mkdir()
    for sources, dest in copy_lines():
        for source in sources:
            origin = context / source
            assert origin.exists(), f"COPY {source}: not in the build context (Dockerfile.dockerignore)"
            target = src / (dest if not dest.endswith("/") else f"{dest}{origin.name}")
            if origin.is_dir():
                shutil.copytree(origin, target)
            else:
                shutil.copy2(origin, target)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (src / "dist").glob("kom-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "adapters/saleor/manifest.json" in names
    assert "adapters/saleor/webhooks/fulfillment_created.graphql" in names
    assert "plugin/store/migrations/versions/0001_initial_schema.py" in names
    assert any(name.startswith("plugin/web/dashboard/") and name.endswith(".html") for name in names)
    assert not any(name.startswith("tests/") or "__pycache__" in name for name in names)


# -- docker compose -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def test_compose_roles_commands_and_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"web", "worker", "postgres", "migrate"}
    assert kom_args(services["migrate"]["command"]).handler.__name__ == "_migrate"
    web = kom_args(services["web"]["command"])
    assert web.handler.__name__ == "_serve" and web.no_worker and web.port == PORT
    assert services["web"]["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]  # behind a proxy, not on every interface
    worker = kom_args(services["worker"]["command"])
    assert worker.handler.__name__ == "_worker" and worker.metrics_port == 9100
    assert "9100/metrics" in " ".join(services["worker"]["healthcheck"]["test"])
    for role in ("web", "worker"):
        assert services[role]["image"] == IMAGE
        assert services[role]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["web"]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_compose_points_kom_at_postgres(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for role in ("web", "worker", "migrate"):
        env = services[role]["environment"]
        assert kom_names(set(env)) <= SETTINGS
        assert env["KOM_DATABASE_URL"].startswith("postgresql://kom:")
        assert env["KOM_DATABASE_URL"].endswith("@postgres:5432/kom")
        assert services[role]["env_file"] == ".env"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "kom"


def test_env_example_names_real_settings() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert kom_names(names) <= SETTINGS
    assert {"KOM_SECRET_KEY", "KOM_PUBLIC_URL", "KOM_ENVIRONMENT", "POSTGRES_PASSWORD"} <= names


# -- Kubernetes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and "kind" in document and document["kind"] != "Kustomization":
                found[(document["kind"], document["metadata"]["name"])] = document
    return found


def pod(manifest: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return spec


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod(manifest)["containers"]
    return only


def test_kubernetes_has_every_piece(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert set(k8s) >= {
        ("Deployment", "kom-web"),
        ("Deployment", "kom-worker"),
        ("Service", "kom-web"),
        ("Ingress", "kom"),
        ("Secret", "kom"),
        ("ConfigMap", "kom"),
        ("Job", "kom-migrate"),
    }
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    # Everything, the migration Job too, so `images:` sets one image for every container.
    assert listed | {"kustomization.yaml"} == {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")}


def test_kustomize_sets_the_image_of_every_container(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    transformed = {entry["name"] for entry in kustomization["images"]}
    for (kind, name), manifest in k8s.items():
        if kind in ("Deployment", "Job"):
            for c in pod(manifest)["containers"] + pod(manifest).get("initContainers", []):
                # The images transformer matches the image name without its tag.
                assert c["image"].split(":")[0] in transformed, (kind, name, c["image"])


def test_the_first_apply_selects_the_configuration_and_the_migration(
    k8s: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """`kubectl apply -k ... -l 'app.kubernetes.io/component in (config,migrate)'` (the runbook)
    applies exactly the Secret, the ConfigMap and the Job: the migration runs before the servers."""
    doc = (DEPLOY.parent / "docs" / "operations.md").read_text()
    selector = "app.kubernetes.io/component in (config,migrate)"
    assert f"kubectl apply -k deploy/kubernetes -l '{selector}'" in doc
    first = {
        key
        for key, manifest in k8s.items()
        if manifest["metadata"]["labels"].get("app.kubernetes.io/component") in ("config", "migrate")
    }
    assert first == {("Secret", "kom"), ("ConfigMap", "kom"), ("Job", "kom-migrate")}


def test_kubernetes_commands_image_and_settings(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    web = container(k8s[("Deployment", "kom-web")])
    worker = container(k8s[("Deployment", "kom-worker")])
    job = container(k8s[("Job", "kom-migrate")])
    parsed = kom_args(web["args"])
    assert parsed.handler.__name__ == "_serve" and parsed.no_worker and parsed.port == PORT
    assert kom_args(worker["args"]).handler.__name__ == "_worker"
    assert kom_args(job["args"]).handler.__name__ == "_migrate"
    assert pod(k8s[("Job", "kom-migrate")])["restartPolicy"] == "Never"
    config = set(k8s[("ConfigMap", "kom")]["data"])
    secret = set(k8s[("Secret", "kom")]["stringData"])
    assert config <= SETTINGS and secret <= SETTINGS
    assert {"KOM_SECRET_KEY", "KOM_DATABASE_URL"} <= secret
    for c, manifest in ((web, "kom-web"), (worker, "kom-worker"), (job, "kom-migrate")):
        assert c["image"] == IMAGE, manifest
        assert c["envFrom"] == [{"configMapRef": {"name": "kom"}}, {"secretRef": {"name": "kom"}}]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    for name in ("kom-web", "kom-worker"):
        assert pod(k8s[("Deployment", name)])["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_ports_and_probes(k8s: dict[tuple[str, str], dict[str, Any]]) -> None:
    deployment = k8s[("Deployment", "kom-web")]
    web = container(deployment)
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    assert ports == {"http": PORT}
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    service = k8s[("Service", "kom-web")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert (
        deployment["spec"]["template"]["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
    )
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    for rule in k8s[("Ingress", "kom")]["spec"]["rules"]:
        paths = {p["path"] for p in rule["http"]["paths"]}
        assert paths == {"/api", "/app", "/", "/support"}  # not /metrics, /readyz
        exact = {p["path"] for p in rule["http"]["paths"] if p["pathType"] == "Exact"}
        assert exact == {"/", "/support"}  # the manifest's homepage and support pages only
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"] == {"name": "kom-web", "port": {"name": service_port["name"]}}
    worker = container(k8s[("Deployment", "kom-worker")])
    metrics_port = kom_args(worker["args"]).metrics_port
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {"metrics": metrics_port}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}


def test_every_route_the_probes_use_exists() -> None:
    from plugin.web.app import create_app

    app = create_app(Settings(), run_worker=False)
    paths = {getattr(route, "path", None) for route in app.routes}
    assert {"/healthz", "/readyz", "/metrics", "/api/webhooks/{name}", "/app", "/", "/support"} <= paths


def test_operations_doc_covers_the_runbook() -> None:
    doc = (DEPLOY.parent / "docs" / "operations.md").read_text()
    for needed in ("kom migrate", "KOM_SECRET_KEY", "Back up", "Scale", "Alerts", "/readyz"):
        assert needed in doc, needed
    for command in re.findall(r"^\s*kom ([a-z]+[^\n`]*)$", doc, flags=re.M):
        kom_args(shlex.split(command))


def test_kubernetes_manifests_match_the_kubernetes_api_schemas() -> None:
    """Every object validates (strict: unknown fields fail) against Kubernetes 1.30's schemas."""
    import copy

    import kubernetes_validate

    documents = [
        doc
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        if path.name != "kustomization.yaml"  # a kustomize file, not an API object
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    assert len(documents) >= 7
    for doc in documents:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    broken = copy.deepcopy(next(d for d in documents if d["kind"] == "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30.0", strict=True)
