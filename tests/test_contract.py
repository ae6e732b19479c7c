"""The backend contract (numamap/_contract.py), checked on any host against both backends.

The Windows backend imports on Linux with every export missing, so its names and signatures
are compared here too; what the calls do is the Windows tier's business.
"""
import ast
import importlib
import inspect
import pathlib
import sys

import pytest

from numamap import _contract

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "numamap"
BACKENDS = ("numamap._linux", "numamap._windows")


def _protocol_signature(name):
    function = getattr(_contract.Backend, name)
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())[1:]  # drop self
    return [(p.name, p.kind, p.default) for p in parameters]


def _module_signature(module, name):
    signature = inspect.signature(getattr(module, name))
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


@pytest.fixture(scope="module", params=BACKENDS)
def backend_module(request):
    if request.param == "numamap._linux" and sys.platform == "win32":
        pytest.skip("the Linux backend needs its compiled module: checked in the host tier")
    try:
        return importlib.import_module(request.param)
    except ImportError as exc:  # pragma: no cover - the failure is the finding
        pytest.fail(f"{request.param} must import on every host, with missing exports reported: {exc}")


def test_contract_lists_every_call():
    assert "PLATFORM" in _contract.NAMES
    for name in ("read_topology", "map_view", "set_policy", "pin_thread", "pin_process",
                 "advise_thp", "shmem_thp_mode", "handler_new", "copy_bandwidth"):
        assert name in _contract.NAMES


def test_backend_defines_every_name_with_the_contract_signature(backend_module):
    missing = [n for n in _contract.NAMES if not hasattr(backend_module, n)]
    assert not missing, f"{backend_module.__name__} lacks {missing}"
    assert isinstance(backend_module, _contract.Backend)
    for name in _contract.NAMES:
        if name == "PLATFORM":
            assert backend_module.PLATFORM in ("linux", "windows")
            continue
        if name == "MappedBuffer":
            assert isinstance(backend_module.MappedBuffer, type)
            assert callable(getattr(backend_module.MappedBuffer, "_nm_set_buffer"))
            continue
        if name == "ArenaBuffer":  # a base class whose instances arena_take fills
            assert isinstance(backend_module.ArenaBuffer, type)
            assert all(hasattr(backend_module.ArenaBuffer, a) for a in ("address", "nbytes"))
            continue
        assert _module_signature(backend_module, name) == _protocol_signature(name), \
            f"{backend_module.__name__}.{name} differs from the contract"


@pytest.mark.linux
def test_both_backends_have_the_same_public_names():
    linux, windows = (importlib.import_module(m) for m in BACKENDS)
    for name in _contract.NAMES[3:]:  # after PLATFORM and the two base classes
        assert _module_signature(linux, name) == _module_signature(windows, name), name


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield (node.module or ""), [a.name for a in node.names], node.level
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], 0


NATIVE = ("_linux_cffi", "_bench_cffi", "_windows_native", "ctypes.windll", "_linux", "_windows")


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py")
                                        if not p.name.startswith(("_linux", "_windows", "_build", "_backend"))),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_backend_touches_native_modules(path):
    for module, names, level in _imports(path):
        last = module.rsplit(".", 1)[-1]
        assert not last.startswith(NATIVE), f"{path.name} imports {module}: go through numamap._backend"
        if level and not module:  # from . import X
            assert not any(n.startswith(NATIVE) for n in names), f"{path.name} imports {names}"
        assert "windll" not in names, f"{path.name} reaches a DLL through ctypes"


def test_no_public_function_shadows_a_module():
    import numamap

    modules = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    for name in numamap.__all__:
        assert name not in modules or inspect.ismodule(getattr(numamap, name)), \
            f"numamap.{name} hides the module numamap/{name}.py"


def test_no_module_over_the_line_ceiling():
    for path in PACKAGE.rglob("*.py"):
        if "testing" in path.parts:
            continue
        lines = len(path.read_text().splitlines())
        assert lines <= 700, f"{path.relative_to(PACKAGE)} has {lines} lines (ceiling 700)"
