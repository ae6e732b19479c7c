"""The C layer returns errno and prints nothing; the Python layer turns errno into exceptions."""
import errno
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.linux


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


def test_errno_becomes_the_right_exception():
    from numamap._errors import raise_errno

    with pytest.raises(MemoryError, match="x: Cannot allocate memory. do y"):
        raise_errno(errno.ENOMEM, "x", "do y")
    with pytest.raises(ValueError):
        raise_errno(errno.EINVAL, "x")
    with pytest.raises(OSError) as info:
        raise_errno(errno.EPERM, "x")
    assert info.value.errno == errno.EPERM
    assert raise_errno(0, "x") is None


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
