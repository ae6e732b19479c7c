"""Build numamap/_numamap_arena.dll, the node arenas and NEP 49 handler for 64-bit Windows.

Run on Linux with Debian's mingw-w64 cross compiler (``apt-get install gcc-mingw-w64-x86-64``)::

    python numamap/_build_windows_dll.py            # build, then check the DLL
    python numamap/_build_windows_dll.py --check    # only check the DLL that is there

The DLL is the portable C core (``_arena.c``, ``_arena_handler.c``) over the Win32 hooks of
``_windows_arena_os.c``, with no Python inside: the Windows backend binds it with cffi in ABI
mode (``_windows_arenas.py``). libgcc is linked statically, so the DLL needs only DLLs that every
Windows has. It exports exactly the functions declared in the cdef regions of ``_arena.h`` and
``_arena_handler.h`` (a .def file made from them), so a declared function that the C lacks
fails the link. The check reads the import and export tables with mingw's objdump.

Exit status: 0 built and checked; 1 the compiler or the check failed; 2 no cross compiler (the
message says what to install). Must not import numamap.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
# As a script this folder is sys.path[0]: keep the package's modules from shadowing the
# standard library's.
sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != HERE]

DLL = HERE / "_numamap_arena.dll"
SOURCES = ("_arena.c", "_arena_runs.c", "_arena_handler.c", "_windows_arena_os.c")
COMPILERS = ("x86_64-w64-mingw32-gcc", "x86_64-w64-mingw32-gcc-win32", "x86_64-w64-mingw32-gcc-posix")
INSTALL_HINT = "install it with: apt-get install gcc-mingw-w64-x86-64   (Debian/Ubuntu)"
FLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-shared",
         # libgcc (and winpthread, were it pulled in) inside the DLL: only system DLLs at run time
         "-static-libgcc", "-static",
         "-s", "-Wl,--no-insert-timestamp")  # smaller, and the same bytes from the same sources
#: DLLs the built DLL may import: Windows' own (the C runtime: msvcrt, or the UCRT's api sets).
ALLOWED_IMPORTS = re.compile(r"(kernel32|msvcrt|ucrtbase|api-ms-win-crt-[a-z0-9-]+)\.dll", re.I)
_FUNCTION = re.compile(r"\b(nm_\w+)\s*\(")


def _build_windows():
    spec = importlib.util.spec_from_file_location("_numamap_build_windows", HERE / "_build_windows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declared_functions() -> list[str]:
    """Names of the functions declared in the DLL's cdef regions, in order."""
    names = []
    text = re.sub(r"/\*.*?\*/", " ", _build_windows().arena_cdef(), flags=re.S)  # comments hold ';'
    text = re.sub(r"^\s*#.*$", "", text, flags=re.M)
    for statement in text.split(";"):
        if "typedef" in statement or "(" not in statement:
            continue
        found = _FUNCTION.search(statement.split("(")[0] + "(")
        if found and found.group(1) not in names:
            names.append(found.group(1))
    return names


def find_compiler() -> str | None:
    """``$NUMAMAP_MINGW_CC``, else the first of :data:`COMPILERS` on PATH."""
    wanted = os.environ.get("NUMAMAP_MINGW_CC")
    for name in ((wanted,) if wanted else COMPILERS):
        path = shutil.which(name)
        if path:
            return path
    return None


def find_objdump(compiler: str) -> str | None:
    """mingw's objdump beside ``compiler`` (``x86_64-w64-mingw32-objdump``)."""
    prefix = re.sub(r"gcc(-[\w.]+)?$", "", os.path.basename(compiler))
    for name in (prefix + "objdump", "x86_64-w64-mingw32-objdump"):
        path = shutil.which(name, path=os.path.dirname(compiler) + os.pathsep + os.environ.get("PATH", ""))
        if path:
            return path
    return None


def build(compiler: str, target: pathlib.Path = DLL) -> None:
    """Compile and link :data:`SOURCES` into ``target`` (replaced only once the link succeeded)."""
    missing = [name for name in SOURCES if not (HERE / name).is_file()]
    if missing:
        raise SystemExit(f"_build_windows_dll: missing source files in {HERE}: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="numamap-dll-") as tmp:
        exports = pathlib.Path(tmp, "exports.def")
        exports.write_text(f"LIBRARY {target.name}\nEXPORTS\n"
                           + "".join(f"    {name}\n" for name in declared_functions()))
        built = target.with_name(f".{target.name}.building")  # same folder: os.replace is atomic
        command = [compiler, *FLAGS, f"-I{HERE}", *(str(HERE / name) for name in SOURCES),
                   str(exports), "-o", str(built)]
        print("+ " + " ".join(command), flush=True)
        try:
            result = subprocess.run(command)
            if result.returncode != 0:
                raise SystemExit(f"_build_windows_dll: {os.path.basename(compiler)} failed "
                                 f"(exit status {result.returncode})")
            os.replace(built, target)
        finally:
            built.unlink(missing_ok=True)


def tables(objdump: str, dll: pathlib.Path) -> tuple[list[str], list[str]]:
    """(imported DLL names, exported function names) of ``dll``, read by ``objdump -p``."""
    text = subprocess.run([objdump, "-p", str(dll)], check=True, capture_output=True, text=True).stdout
    imports = re.findall(r"^\s*DLL Name: (\S+)", text, re.M)
    exports = []
    table = re.search(r"\[Ordinal/Name Pointer\] Table\n(.*?)(?:\n\s*\n|\Z)", text, re.S)
    if table:
        exports = re.findall(r"\]\s+(\S+)\s*$", table.group(1), re.M)
    return imports, exports


def check(objdump: str, dll: pathlib.Path = DLL) -> list[str]:
    """What is wrong with ``dll``: imports of non-system DLLs, declared functions not exported,
    exports not declared. Empty when it is right."""
    imports, exports = tables(objdump, dll)
    declared = declared_functions()
    problems = [f"imports {name}, which Windows does not ship" for name in imports
                if not ALLOWED_IMPORTS.fullmatch(name)]
    problems += [f"does not export {name}" for name in declared if name not in exports]
    problems += [f"exports {name}, which no header declares" for name in exports if name not in declared]
    print(f"{dll}: {dll.stat().st_size} bytes; imports {', '.join(imports)}; "
          f"exports {len(exports)} functions")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the DLL that is there")
    args = parser.parse_args(argv)
    compiler = find_compiler()
    if compiler is None:
        print(f"_build_windows_dll: no mingw-w64 cross compiler found (looked for "
              f"{os.environ.get('NUMAMAP_MINGW_CC') or ', '.join(COMPILERS)}); {INSTALL_HINT}", file=sys.stderr)
        return 2
    objdump = find_objdump(compiler)
    if objdump is None:
        print(f"_build_windows_dll: no x86_64-w64-mingw32-objdump beside {compiler}; "
              "install it with: apt-get install binutils-mingw-w64-x86-64", file=sys.stderr)
        return 2
    if not args.check:
        build(compiler)
    elif not DLL.is_file():
        print(f"_build_windows_dll: {DLL} does not exist: run without --check to build it", file=sys.stderr)
        return 1
    problems = check(objdump)
    for problem in problems:
        print(f"_build_windows_dll: {DLL.name} {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
