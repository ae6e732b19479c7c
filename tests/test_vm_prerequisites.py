"""The multi-node runner reports a missing tool as a missing prerequisite (exit 2), never as a
dead guest: on a fresh machine busybox was the one it forgot."""
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the VM runner needs Linux")


def test_missing_busybox_is_a_missing_prerequisite(monkeypatch, tmp_path, capsys):
    from numamap.testing import vm

    kernel = tmp_path / "vmlinuz-6.1.0-test-amd64"
    kernel.write_bytes(b"\0")
    found = {"qemu-system-x86_64": "/usr/bin/qemu-system-x86_64", "qemu-system-aarch64": "/usr/bin/q",
             "vng": "/usr/bin/vng"}
    monkeypatch.setattr(vm.shutil, "which", lambda name, path=None: found.get(name))
    with pytest.raises(vm.MissingPrerequisite, match="apt-get install busybox-static"):
        vm.find_prerequisites(str(kernel))
    status = vm.run(vm.TOPOLOGIES["two"], ["true"], kernel=str(kernel))
    assert status == vm.EXIT_MISSING == 2
    assert "busybox-static" in capsys.readouterr().err


def test_busybox_present_is_enough(monkeypatch, tmp_path):
    from numamap.testing import vm

    kernel = tmp_path / "vmlinuz-6.1.0-test-amd64"
    kernel.write_bytes(b"\0")
    monkeypatch.setattr(vm.shutil, "which", lambda name, path=None: f"/usr/bin/{name}")
    qemu, vng, image = vm.find_prerequisites(str(kernel))
    assert vng == "/usr/bin/vng" and image == kernel
