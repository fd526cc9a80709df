"""docs/architecture.md stays true: its rule files, rules, modules, networks, methods and import floors."""

import ast
import re

import yaml

from wsss.nets.registry import NETWORKS

from conftest import ROOT

PAGE = (ROOT / "docs" / "architecture.md").read_text()
SRC = ROOT / "src" / "wsss"


def section(title: str) -> str:
    return PAGE.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| `")]


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_rule_table_lists_every_rule_file_and_its_rules():
    listed = {names(row[0])[0]: names(row[1]) for row in table_rows(section("One DAG, two runners"))}
    on_disk = {str(path.relative_to(ROOT)): re.findall(r"^rule (\w+):", path.read_text(), re.M)
               for path in sorted((ROOT / "workflow" / "rules").glob("*.smk"))}
    assert listed == on_disk


def test_the_package_table_lists_every_module_and_no_other():
    listed = {name for row in table_rows(section("Package (`src/wsss`)")) for name in names(row[0])}
    on_disk = {str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if path.name != "__init__.py"}
    assert listed == on_disk


def test_the_networks_and_methods_named_are_the_registry_and_params_yaml():
    text = section("Networks and methods")
    networks, methods = text.split("Methods of")
    assert set(names(networks)) - {"nets/registry.py", "train_cls", "train_aff", "train_seg", "train_ldf"} == set(NETWORKS)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert names(methods)[1:] == list(params["methods"])   # the first name is `params.yaml`


def imports(path) -> set[str]:
    """The ``wsss`` modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("wsss.")}


def floor_heights() -> dict[str, int]:
    """Module or package name → its floor, 0 at the bottom, from the picture of ``## Floors``."""
    lines = [line.strip() for line in section("Floors").split("```")[1].splitlines() if line.strip()]
    return {name: height for height, line in enumerate(reversed(lines))
            for name in re.match(r"\S+(?: · \S+)*", line).group(0).split(" · ")}


def test_no_module_imports_from_a_floor_above_its_own():
    floors = floor_heights()
    modules = {path: path.stem if path.parent == SRC else path.relative_to(SRC).parts[0]
               for path in SRC.rglob("*.py") if path != SRC / "__init__.py"}
    assert set(modules.values()) == set(floors)
    upward = [f"{path.relative_to(SRC)} imports {name}" for path, own in modules.items() for name in imports(path)
              if floors.get(name.split(".")[1], -1) > floors[own]]
    assert not upward
