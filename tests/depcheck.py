"""Dependency rules of the monorepo, checked by walking every package's imports.

Rules:
1. A component package (neuro-attention, neuro-plasticity, neuro-memory, neuro-spiking,
   neuro-objectives) imports at module level only the standard library, its own package, and its
   declared run-time dependencies (torch, numpy, neuro_core).
2. An import inside a function (lazy) may also use the package's optional extras. So may the
   whole of a kernel module (``ops/<op>/triton.py``) or a ``testing/`` module, which are imported
   only lazily or only by tests; importing a kernel module at module level elsewhere is a
   violation (it would make Triton a hard dependency).
3. No component package imports another component package, anywhere.
4. neuro-core imports no other neuro package; neuro-models may import all of them.
5. Declared run-time dependencies of a component are a subset of {torch, numpy, neuro-core}.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

COMPONENTS = frozenset(
    {"neuro_attention", "neuro_plasticity", "neuro_memory", "neuro_spiking", "neuro_objectives"}
)
ALLOWED_COMPONENT_DEPS = frozenset({"torch", "numpy", "neuro-core"})
# distribution name -> import name, where they differ
IMPORT_NAMES = {"faiss-cpu": "faiss", "scikit-learn": "sklearn", "pyyaml": "yaml"}


@dataclass(frozen=True)
class Violation:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _req_name(req: str) -> str:
    return re.split(r"[\s<>=!~\[;]", req.strip(), maxsplit=1)[0].lower()


def _import_name(dist: str) -> str:
    return IMPORT_NAMES.get(dist, dist.replace("-", "_"))


def _imports(tree: ast.Module) -> list[tuple[str, int, bool]]:
    """(full module name, line, is_module_level) for every absolute import in ``tree``."""
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, not in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [f"{child.module}.{a.name}" for a in child.names]
                found.extend((n, child.lineno, not in_function) for n in names)
            visit(child, nested)

    visit(tree, False)
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    """Lines inside ``if TYPE_CHECKING:`` blocks (imports there never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                if hasattr(sub, "lineno"):
                    lines.add(sub.lineno)
    return lines


def check_package(pkg_dir: Path) -> list[Violation]:
    """All rule violations of one package directory (``packages/neuro-x``)."""
    meta = tomllib.loads((pkg_dir / "pyproject.toml").read_text())["project"]
    dist = meta["name"]
    own = dist.replace("-", "_")
    runtime = {_req_name(r) for r in meta.get("dependencies", [])}
    extras = {_req_name(r) for reqs in meta.get("optional-dependencies", {}).values() for r in reqs}
    violations: list[Violation] = []
    pyproject = pkg_dir / "pyproject.toml"
    if own in COMPONENTS and not runtime <= ALLOWED_COMPONENT_DEPS:
        bad = sorted(runtime - ALLOWED_COMPONENT_DEPS)
        violations.append(Violation(pyproject, 1, f"{dist} declares forbidden run-time deps {bad}"))
    runtime_imports = {_import_name(d) for d in runtime} | {own}
    lazy_imports = runtime_imports | {_import_name(d) for d in extras}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in sorted((pkg_dir / "src").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_lines(tree)
        optional_module = path.name == "triton.py" or "testing" in path.parts
        for full, line, module_level in _imports(tree):
            mod = full.split(".")[0]
            if line in skip or mod in stdlib:
                continue
            kernel_import = mod.startswith("neuro_") and "triton" in full.split(".")
            if module_level and not optional_module and kernel_import:
                violations.append(
                    Violation(
                        path,
                        line,
                        f"{full} is a kernel module: import it lazily, inside a function",
                    )
                )
                continue
            if mod == own:
                continue
            forbidden_edge = own == "neuro_core" or mod in COMPONENTS
            if mod.startswith("neuro_") and own != "neuro_models" and forbidden_edge:
                violations.append(Violation(path, line, f"{own} must not import {mod}"))
                continue
            allowed = runtime_imports if module_level and not optional_module else lazy_imports
            if mod not in allowed:
                where = "at module level" if module_level else "even lazily"
                violations.append(
                    Violation(path, line, f"{own} imports {mod} {where}, not a declared dependency")
                )
    return violations


def check_repo(packages_dir: Path) -> list[Violation]:
    """Violations of every package under ``packages_dir``."""
    out: list[Violation] = []
    for pkg in sorted(p for p in packages_dir.iterdir() if (p / "pyproject.toml").exists()):
        out.extend(check_package(pkg))
    return out


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1] / "packages"
    problems = check_repo(root)
    for v in problems:
        print(v)
    sys.exit(1 if problems else 0)
