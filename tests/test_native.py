"""The C layer: built from declarations written once, in its headers; it returns errno and
prints nothing, and the backend turns errno into exceptions."""
import errno
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.linux

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "numamap"
# Every header and the build script that turns its cdef region into a module's declarations.
HEADERS = {"_linux_native.h": "_build_linux.py", "_arena.h": "_build_linux.py",
           "_arena_handler.h": "_build_linux.py", "_linux_buffer.h": "_build_linux.py",
           "_bench_native.h": "_build_bench.py"}
# What a header declares, anywhere in the file: numamap's functions, typedefs and constants.
_FUNCTION = re.compile(r"^[A-Za-z_][\w \t*]*?\b(nmb?_\w+)\s*\(", re.M)
_TYPEDEF = re.compile(r"^}\s*(\w+)\s*;", re.M)
_CONSTANT = re.compile(r"^#define\s+(NMB?_\w+)\b", re.M)


def _load(script: str):
    spec = importlib.util.spec_from_file_location(f"_test_{script[:-3]}", PACKAGE / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _declared(text: str) -> list[str]:
    return [m.group(1) for pattern in (_FUNCTION, _TYPEDEF, _CONSTANT) for m in pattern.finditer(text)]


@pytest.mark.parametrize("header", sorted(HEADERS))
def test_cdef_holds_each_declaration_of_the_header_once(header):
    builder = _load(HEADERS[header]).ffibuilder
    cdef = "\n".join(builder._cdefsources)
    names = _declared((PACKAGE / header).read_text())
    assert names, f"nothing found in {header}: the patterns above are out of date"
    in_cdef = _declared(cdef)
    for name in names:
        assert in_cdef.count(name) == 1, f"{name} of {header} is in the cdef {in_cdef.count(name)} times"
    known = {key.split(" ", 1)[1] for key in builder._parser._declarations}
    assert set(names) <= known  # cffi parsed each as a declaration
    assert len(in_cdef) == len(set(in_cdef)), "a name is declared twice"


def test_build_scripts_declare_nothing_themselves():
    every = {name for header in HEADERS for name in _declared((PACKAGE / header).read_text())}
    for script in set(HEADERS.values()):
        text = (PACKAGE / script).read_text()
        assert not [name for name in every if re.search(rf"\b{name}\b", text)], script


def test_the_modules_export_what_the_headers_declare():
    from numamap._bench_cffi import lib as bench
    from numamap._linux_cffi import ffi, lib

    for header, script in HEADERS.items():
        text = (PACKAGE / header).read_text()
        module = bench if script == "_build_bench.py" else lib
        for name in _FUNCTION.findall(text) + _CONSTANT.findall(text):
            assert hasattr(module, name), (header, name)
        for name in _TYPEDEF.findall(text):
            assert ffi.sizeof(name) > 0
    # The benchmark's threads stay out of the core bindings; dead code stays out altogether.
    assert not hasattr(lib, "nmb_copy_bandwidth") and not hasattr(lib, "nm_set_mempolicy")


def test_a_region_cffi_cannot_read_is_refused(tmp_path):
    build = _load("_build_linux.py")
    header = tmp_path / "x.h"
    header.write_text("/* cdef begin */\n#ifdef X\nint f(void);\n#endif\n/* cdef end */\n")
    with pytest.raises(RuntimeError, match="cffi cannot read '#ifdef X'"):
        build.header_cdef(str(header))
    header.write_text("int f(void);\n")
    with pytest.raises(RuntimeError, match="exactly one region"):
        build.header_cdef(str(header))


def test_build_scripts_do_not_import_numamap():
    # The way setuptools runs them: executed as files, numamap unimportable.
    code = ("import sys; sys.modules['numamap'] = None\n"
            "for script in sys.argv[1:]:\n"
            "    exec(compile(open(script).read(), script, 'exec'), {'__file__': script, '__name__': 'b'})\n")
    scripts = [str(PACKAGE / name) for name in sorted(set(HEADERS.values()))]
    done = subprocess.run([sys.executable, "-c", code, *scripts], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _cpu() -> int:
    return min(os.sched_getaffinity(0))


def test_copy_bandwidth_gives_one_rate_per_pass():
    from numamap._linux_bench import copy_bandwidth

    rates = copy_bandwidth([_cpu()], 1 << 20, 2)
    assert len(rates) == 2 and all(isinstance(r, float) and r > 0 for r in rates)


@pytest.mark.parametrize("cpus, nbytes, repeat, kind, message", [
    ([], 1 << 20, 2, ValueError, "cpus is empty"),
    ("own", 1 << 20, 0, ValueError, "repeat=0"),
    ("own", 1 << 20, 10**6, ValueError, "repeat=1000000"),
    ("own", 100, 2, ValueError, "bytes_per_thread=100"),
    ("own", 1.5, 2, TypeError, "bytes_per_thread must be an int"),
    ([-1], 1 << 20, 2, ValueError, "not CPU numbers"),
    (["0"], 1 << 20, 2, TypeError, "cpus must be a sequence"),
    ([1 << 20], 1 << 20, 2, ValueError, "not one this process may run on"),  # beyond any kernel's CPUs
    ("mixed", 1 << 20, 2, ValueError, "not one this process may run on"),  # one thread fails, one waits
])
def test_copy_bandwidth_refuses_bad_input(cpus, nbytes, repeat, kind, message):
    from numamap._linux_bench import copy_bandwidth

    if isinstance(cpus, str):
        cpus = {"own": [_cpu()], "mixed": [_cpu(), 1 << 20]}[cpus]
    with pytest.raises(kind, match=message):
        copy_bandwidth(cpus, nbytes, repeat)


def test_copy_bandwidth_out_of_memory_is_memory_error():
    from numamap._linux_bench import copy_bandwidth

    with pytest.raises(MemoryError, match="smaller bytes_per_thread"):
        copy_bandwidth([_cpu()], 1 << 50, 1)  # no machine maps 2 PiB


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


def test_map_unmap_cost_maps_and_unmaps():
    from numamap._linux_bench import map_unmap_cost

    nbytes = 256 << 20
    cycle = map_unmap_cost(nbytes)
    before = _vm_size()
    for _ in range(3):
        assert cycle() is None
    assert _vm_size() - before < nbytes  # each mapping went again
    with pytest.raises(MemoryError):
        map_unmap_cost(1 << 55)()
    with pytest.raises(ValueError, match="nbytes=0"):
        map_unmap_cost(0)


@pytest.mark.numa_calls
def test_wrappers_return_errno_not_raise():
    from numamap._linux_cffi import ffi, lib

    page = os.sysconf("SC_PAGE_SIZE")
    out = ffi.new("void **")
    assert lib.nm_mmap(ffi.NULL, 0, lib.PROT_READ, lib.MAP_PRIVATE | lib.MAP_ANONYMOUS, -1, 0, out) == errno.EINVAL
    assert lib.nm_munmap(ffi.cast("void *", 1), page) == errno.EINVAL
    assert lib.nm_madvise(ffi.cast("void *", 1), page, lib.MADV_HUGEPAGE) == errno.EINVAL
    assert lib.nm_ftruncate(-1, 10) == errno.EBADF
    fd = ffi.new("int *")
    assert lib.nm_memfd_create(b"t", 0, fd) == 0
    os.close(fd[0])
    status, not_moved = ffi.new("int[1]"), ffi.new("long *")
    pages = ffi.new("void *[1]", [ffi.cast("void *", 4096)])
    assert lib.nm_move_pages(0, 1, pages, ffi.NULL, status, 0, not_moved) == 0
    assert status[0] == -errno.EFAULT  # nothing is mapped at address 4096


def test_nothing_reaches_stdout():
    code = ("import numamap, numpy as np\n"
            "a = numamap.ones(1 << 20, node=0, populate=True); numamap.where(a)\n"
            "try:\n    numamap.zeros(3, node=77)\nexcept ValueError: pass\n"
            "numamap.topology(); numamap.ring_buffer(1)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == ""


def test_file_backed_section(tmp_path):
    import numpy as np

    import numamap

    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(16)) * 512)
    with numamap.Section(0, file=path) as sec:
        assert sec.size == 8192
        assert np.asarray(sec.map())[:4].tolist() == [0, 1, 2, 3]
    with numamap.Section(3 * 8192, file=str(path)) as sec:  # extends the file
        np.asarray(sec.map())[-1] = 9
    assert path.stat().st_size == 3 * 8192 and path.read_bytes()[-1] == 9
    with numamap.Section(0, file=path, access="cow") as sec:
        np.asarray(sec.map())[0] = 200
    assert path.read_bytes()[0] == 0  # copy-on-write kept the file as it was
    with pytest.raises(ValueError, match="cannot extend it"):
        numamap.Section(10**6, file=path, access="r")
    with open(path, "rb") as handle, numamap.Section(0, file=handle.fileno(), access="r") as sec:
        assert sec.size == 3 * 8192
