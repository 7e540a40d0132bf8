"""The package's layout rules, read from the source with `ast` (nothing is imported).

- models/, ops/ and losses.py are pure: they import nothing from the packages that
  train, load data, find faces, infer, convert, benchmark or run programs;
- only cli/ parses flags (absl.flags, ml_collections.config_flags), prints, and names
  flags in error messages;
- no module reaches into private APIs (jax._src, optax._src);
- no module is over 400 lines, no function over 80.
"""
import ast
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "deepjax")

PURE = ("deepjax/models/", "deepjax/ops/", "deepjax/losses.py")
NOT_FROM_PURE = ("deepjax.train", "deepjax.data", "deepjax.faces", "deepjax.infer",
                 "deepjax.cli", "deepjax.bench", "deepjax.convert")
FLAG_MODULES = ("absl.flags", "ml_collections.config_flags")
PRIVATE = ("jax._src", "optax._src")


def _modules():
  """{repo-relative path: parsed module} of every .py file under deepjax/."""
  out = {}
  for root, _, files in os.walk(PACKAGE):
    for name in sorted(files):
      if name.endswith(".py"):
        path = os.path.join(root, name)
        with open(path, encoding="utf-8") as f:
          out[os.path.relpath(path, REPO).replace(os.sep, "/")] = ast.parse(f.read(), path)
  return out


MODULES = _modules()


def _package_of(path: str) -> str:
  """Dotted package of a module file: deepjax/ops/warp.py -> deepjax.ops."""
  parts = path[:-len(".py")].split("/")
  return ".".join(parts if parts[-1] == "__init__" else parts[:-1]).removesuffix(".__init__")


def _imports(path: str, tree: ast.Module):
  """(line, dotted name) of every import in the module, at any depth; `from a import b`
  gives both `a` and `a.b` (b may be a module), relative imports are resolved."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        pkg = _package_of(path).split(".")
        pkg = pkg[:len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([base] if base else []))
      yield node.lineno, base
      for alias in node.names:
        yield node.lineno, f"{base}.{alias.name}"


def _under(name: str, prefixes) -> bool:
  return any(name == p or name.startswith(p + ".") for p in prefixes)


# The one library module allowed to touch absl flags: grain's worker processes read absl
# flags, so data/pipeline.py marks them parsed (it parses nothing itself).
ALLOWED_FLAG_IMPORTS = ("deepjax/data/pipeline.py",)


def _unknown(offenders, known):
  return [o for o in offenders if o.split(":")[0] not in known]


def _fmt(offenders):
  return "\n  " + "\n  ".join(offenders)


def _offenders(check):
  found = []
  for path, tree in sorted(MODULES.items()):
    found += [f"{path}:{line}: {what}" for line, what in check(path, tree)]
  return found


def test_modules_found():
  assert len(MODULES) > 50 and "deepjax/losses.py" in MODULES and \
      "deepjax/cli/__init__.py" in MODULES


def _pure_imports(path, tree):
  if not path.startswith(PURE):
    return []
  return [(line, f"imports {name}") for line, name in _imports(path, tree)
          if _under(name, NOT_FROM_PURE)]


def test_models_ops_losses_import_no_higher_layer():
  bad = _offenders(_pure_imports)
  assert not bad, "models/, ops/ and losses.py must not import these:" + _fmt(bad)


# docs/CONTRACTS.md's table: what each folder may import from deepjax. Utilities every
# layer above models/ may use: errors, io_utils, configs_lib, compile_options.
_UTIL = {"errors", "io_utils", "configs_lib", "compile_options"}
MAY_IMPORT = {
    "ops": {"errors"}, "losses": {"errors", "ops"}, "models": {"errors", "ops"},
    "data": _UTIL | {"ops"}, "faces": _UTIL | {"ops", "data"},
    "loading": {"errors", "models", "ops"},
    "train": _UTIL | {"models", "ops", "losses", "data", "loading"},
    "convert": _UTIL | {"models", "ops", "train", "loading"},
    "infer": _UTIL | {"models", "ops", "losses", "data", "faces", "eval", "loading"},
    "eval": _UTIL | {"models", "ops", "losses", "data", "faces", "infer", "train", "loading"},
    "bench": _UTIL | {"models", "ops", "losses", "data", "faces", "infer", "eval", "train",
                      "convert", "loading", "testing"},
}


# Single modules a folder may import beyond its table row (named in docs/CONTRACTS.md).
MAY_ALSO_IMPORT = {"train": {"deepjax.eval.detection_metrics"}}


def _layer_imports(path, tree):
  """Imports of another deepjax folder that the module's folder may not import."""
  parts = path[:-len(".py")].split("/")
  layer = parts[1]
  if layer not in MAY_IMPORT:
    return []
  found = []
  imports = list(_imports(path, tree))
  allowed = MAY_ALSO_IMPORT.get(layer, set())
  # `from deepjax.eval import detection_metrics` also yields `deepjax.eval` on that line
  allowed_lines = {(line, n) for line, n in imports if n in allowed}
  allowed_lines |= {(line, a.rsplit(".", 1)[0]) for line, a in allowed_lines}
  for line, name in imports:
    target = name.split(".")
    if target[0] != "deepjax" or len(target) < 2 or target[1] == layer:
      continue
    if (line, name) in allowed_lines:
      continue
    if target[1] not in MAY_IMPORT[layer] and target[1] in MAY_IMPORT.keys() | {"cli", "testing"}:
      found.append((line, f"{layer} imports {name}"))
  return found


def test_layers_import_only_what_contracts_allow():
  bad = _offenders(_layer_imports)
  assert not bad, "imports against docs/CONTRACTS.md's layout table:" + _fmt(bad)


def _flag_imports(path, tree):
  if path.startswith("deepjax/cli/"):
    return []
  return [(line, f"imports {name}") for line, name in _imports(path, tree)
          if _under(name, FLAG_MODULES)]


def test_only_cli_parses_flags():
  bad = _unknown(_offenders(_flag_imports), ALLOWED_FLAG_IMPORTS)
  assert not bad, "only deepjax/cli/ may import flag parsers:" + _fmt(bad)


def _prints(path, tree):
  if path.startswith("deepjax/cli/"):
    return []
  return [(node.lineno, "calls print(") for node in ast.walk(tree)
          if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
          and node.func.id == "print"]


def test_only_cli_prints():
  bad = _offenders(_prints)
  assert not bad, "the library logs (absl logging); only deepjax/cli/ prints:" + _fmt(bad)


_FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _flag_messages(path, tree):
  """UserError messages that name a command-line flag (only the programs know flags)."""
  if path.startswith("deepjax/cli/"):
    return []
  found = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] == "UserError":
      text = "".join(n.value for n in ast.walk(node)
                     if isinstance(n, ast.Constant) and isinstance(n.value, str))
      if _FLAG.search(text):
        found.append((node.lineno, f"UserError names a flag: {text[:60]!r}"))
  return found


def test_library_errors_name_no_flags():
  bad = _offenders(_flag_messages)
  assert not bad, ("library errors name the thing (run folder, config key, file), not a "
                   "flag; a program may re-raise naming its flag:" + _fmt(bad))


def _dotted(node) -> str:
  parts = []
  while isinstance(node, ast.Attribute):
    parts.append(node.attr)
    node = node.value
  if isinstance(node, ast.Name):
    parts.append(node.id)
    return ".".join(reversed(parts))
  return ""


def _private(path, tree):
  found = [(line, f"imports {name}") for line, name in _imports(path, tree)
           if _under(name, PRIVATE)]
  found += [(node.lineno, f"uses {_dotted(node)}") for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "_src"
            and _dotted(node) in PRIVATE]
  return found


def test_no_private_jax_or_optax_api():
  bad = _offenders(_private)
  assert not bad, "public APIs only:" + _fmt(bad)


def test_checks_catch_offenders():
  """The checks above, on sources that break each rule (a check that cannot fail is none)."""
  bad = ast.parse("from deepjax.train import loop\nfrom ..data import video\n"
                  "from absl import flags\nimport optax._src.numerics\nimport jax\n"
                  "x = jax._src.distributed\n'''print(in a docstring)'''\n# print(x)\n"
                  "def f():\n  print('x')\n"
                  "raise UserError(f'{x} --output must be a file')\n")
  assert [w for _, w in _pure_imports("deepjax/models/x.py", bad)] == [
      "imports deepjax.train", "imports deepjax.train.loop", "imports deepjax.data",
      "imports deepjax.data.video"]
  assert _pure_imports("deepjax/infer/x.py", bad) == []
  assert [w for _, w in _layer_imports("deepjax/faces/x.py", bad)] == [
      "faces imports deepjax.train", "faces imports deepjax.train.loop"]
  assert _layer_imports("deepjax/eval/x.py", bad) == []
  assert [w for _, w in _flag_imports("deepjax/ops/x.py", bad)] == ["imports absl.flags"]
  assert _flag_imports("deepjax/cli/x.py", bad) == []
  assert _prints("deepjax/ops/x.py", bad) == [(10, "calls print(")]
  assert _prints("deepjax/cli/x.py", bad) == []
  assert [l for l, _ in _flag_messages("deepjax/infer/x.py", bad)] == [11]
  assert _flag_messages("deepjax/cli/x.py", bad) == []
  assert sorted(w for _, w in _private("deepjax/x.py", bad)) == [
      "imports optax._src.numerics", "uses jax._src"]


MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 80


def test_files_and_functions_are_small():
  """No module over 400 lines, no function over 80 (one concept per file)."""
  bad = []
  for path, tree in sorted(MODULES.items()):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
      n = sum(1 for _ in f)
    if n > MAX_FILE_LINES:
      bad.append(f"{path}: {n} lines")
    bad += [f"{path}:{node.lineno}: {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
  assert not bad, "too long:" + _fmt(bad)
