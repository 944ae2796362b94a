"""The direction of imports: udfs/ (plain Python) needs nothing else of ours, the console needs neither
the job nor the stack, the job never needs test support, and no module reaches into another's private names."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("udfs", "flink_jobs", "devstack", "console", "tests", "bench")
# package -> the packages of ours it may import besides itself
ALLOWED = {"udfs": set(), "flink_jobs": {"udfs", "devstack", "console"}, "devstack": {"udfs"}, "console": {"udfs"}}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of each import of one of our packages."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name, []) for alias in node.names)
    return [(line, module, names) for line, module, names in out if module.split(".")[0] in OURS]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_what_its_layer_may(package):
    wrong = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
             for path in _modules(package) for line, module, _ in _imports(path)
             if module.split(".")[0] not in ALLOWED[package] | {package}]
    assert not wrong, "\n".join(wrong)


# Inside flink_jobs/: the shared modules (flink_jobs/*.py) <- streaming/ <- offline/ <- cli/. The streaming job
# never needs the offline path nor the CLI; what both need lives in the shared modules.
FLINK_JOBS_LAYERS = {"shared": set(), "streaming": {"streaming"}, "offline": {"streaming", "offline"}}
# Where savepoints of 0.1 pickled SequenceHit: it must stay importable from there (tests/unit/test_streaming_records.py).
SAVEPOINT_NAMES = {"records.py"}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in ("streaming", "offline", "cli") else "shared"


@pytest.mark.parametrize("part", sorted(FLINK_JOBS_LAYERS))
def test_flink_jobs_parts_import_only_the_parts_below_them(part):
    folder = ROOT / "flink_jobs" if part == "shared" else ROOT / "flink_jobs" / part
    paths = folder.glob("*.py") if part == "shared" else folder.rglob("*.py")
    wrong = [f"{path.relative_to(ROOT)}:{line}: imports {module}"
             for path in paths if not (part == "shared" and path.name in SAVEPOINT_NAMES)
             for line, module, _ in _imports(path)
             if module.startswith("flink_jobs.") and _part(module) not in FLINK_JOBS_LAYERS[part] | {"shared"}]
    assert not wrong, "\n".join(wrong)


def test_no_private_name_is_imported_or_used_across_modules():
    wrong = []
    for package in OURS:
        for path in _modules(package):
            tree = ast.parse(path.read_text(), str(path))
            ours = {}  # local name -> our module it refers to
            for line, module, names in _imports(path):
                for name in names:
                    if name.startswith("_") and not name.startswith("__"):
                        wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {module}.{name}")
                    ours[name] = module
                if not names:
                    ours[module.split(".")[0]] = module
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ours
                        and node.attr.startswith("_") and not node.attr.startswith("__")):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {node.value.id}.{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_a_wrong_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from flink_jobs.cli.console import console\nimport tests.support.grafana\n")
    assert [module for _, module, _ in _imports(bad)] == ["flink_jobs.cli.console", "tests.support.grafana"]


def test_no_module_of_the_job_file_folder_hides_a_standard_or_installed_one():
    # `flink run -py flink_jobs/streaming/job.py` puts the job file's folder first on sys.path: a secrets.py
    # there once hid the standard library's `secrets`, and numpy failed to import in the job's client; a
    # kafka.py would hide kafka-python likewise.
    import importlib.metadata
    import sys

    folder = ROOT / "flink_jobs" / "streaming"
    names = {path.stem for path in folder.glob("*.py")} | {path.name for path in folder.iterdir() if path.is_dir()}
    assert "job" in names
    assert not names & set(sys.stdlib_module_names)
    assert not names & set(importlib.metadata.packages_distributions())
