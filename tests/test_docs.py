"""docs/architecture.md stays true: its rule files, rules, modules, networks, methods and import floors;
and every citation of official code resolves to a public repository at a known commit."""

import ast
import re
import subprocess

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


# The official code the project cites, as ``owner/repo@commit:path:lines`` (7-hex commit).
CITED_COMMITS = {
    "YudeWang/SEAM": "3212261",
    "jiwoon-ahn/psa": "9493e59",
    "jiwoon-ahn/irn": "a2ece00",
    "Juliachang/SC-CAM": "191ec48",
    "weijun88/LDF": "d49ff02",
    "YudeWang/semantic-segmentation-codebase": "a40f6c6",
    "kazuto1011/deeplab-pytorch": "4219467",
}
CITATION = re.compile(r"([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)@([0-9a-f]{7})(?![0-9A-Za-z])")
# Pointers into notes outside the repository, which users do not have (built so this file does not match).
UNRESOLVABLE = ("../" + "shared/reference", "shared/" + "reference/", "reference " + "\u00a7", "ldf.md " + "\u00a7",
                "wsss-methods" + ".md")


def text_files() -> list:
    """The tracked .py/.md/.smk/.yaml files and the Snakefile (every such file outside hidden folders without git)."""
    suffixes = {".py", ".md", ".smk", ".yaml", ".yml"}
    try:
        listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        paths = [ROOT / line for line in listed.splitlines()]
    except (OSError, subprocess.CalledProcessError):
        paths = [path for path in ROOT.rglob("*") if not any(part.startswith(".") for part in
                                                            path.relative_to(ROOT).parts)]
    return [path for path in paths if path.is_file() and ".venv" not in path.parts
            and (path.suffix in suffixes or path.name == "Snakefile")]


def test_no_text_points_into_notes_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}:{number}: {marker!r}" for path in text_files()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             for marker in UNRESOLVABLE if marker in line]
    assert not found, "cite the paper or owner/repo@commit:path:lines instead:\n" + "\n".join(found)


def test_every_official_code_citation_names_a_known_commit_of_its_repository():
    cited = [(f"{path.relative_to(ROOT)}:{number}", repo, commit) for path in text_files()
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             for repo, commit in CITATION.findall(line)]
    assert cited, "no owner/repo@commit citation found"
    wrong = [f"{where}: {repo}@{commit} (known: {CITED_COMMITS.get(repo)})" for where, repo, commit in cited
             if CITED_COMMITS.get(repo) != commit]
    assert not wrong, "\n".join(wrong)
