# Boots an emulated board (micropython): mounts its flash -- a LittleFS2 filesystem on a
# file-backed block device of fixed size, as on a board -- at /flash, provisions it on
# first boot from a seed folder, then runs the agent with the remaining arguments.
# Usage: micropython hil/board/boot.py IMAGE SEED_DIR [agent arguments...]
# (boot.py only imports this module, which the bench runs as .mpy like the firmware.)
import os
import vfs


class FileBlockDevice:
    # The extended block protocol (readblocks/writeblocks with an offset, ioctl) that
    # vfs.VfsLfs2 needs, on a host file of fixed size.
    def __init__(self, path, block_size=4096):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.size = block_size
        self.count = self.f.tell() // block_size

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.size + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=0):
        self.f.seek(n * self.size + off)
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return self.size
        return 0  # init, deinit, sync, erase: nothing to do on a file


def mount(image, seed):
    bdev = FileBlockDevice(image)
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:  # first boot: an erased image
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/flash")
    try:
        os.stat("/flash/config.json")
    except OSError:  # provision from the seed folder
        for name in os.listdir(seed):
            with open(seed + "/" + name, "rb") as src:
                data = src.read()
            with open("/flash/" + name, "wb") as dst:
                dst.write(data)


def run(argv):
    mount(argv[0], argv[1])
    from agent import main

    return main.main(["--flash", "/flash"] + argv[2:])
