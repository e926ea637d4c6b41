# An emulated board's flash: a LittleFS2 filesystem on a file-backed block device of fixed
# size, as on a board, mounted at /flash and provisioned on first boot from a seed folder
# (hil/board/hilboot.py loads it for LittleFS boards only).
import os
import vfs


class FileBlockDevice:
    # The extended block protocol (readblocks/writeblocks with an offset, ioctl) that
    # vfs.VfsLfs2 needs, on a host file of fixed size.
    def __init__(self, path, block_size=4096, cut_after=0):
        self.f = open(path, "r+b")
        self.f.seek(0, 2)
        self.size = block_size
        self.count = self.f.tell() // block_size
        self.cut_after = cut_after  # >0: the power goes in the middle of that write
        self.writes = 0

    def readblocks(self, n, buf, off=0):
        self.f.seek(n * self.size + off)
        self.f.readinto(buf)

    def writeblocks(self, n, buf, off=0):
        self.f.seek(n * self.size + off)
        self.writes += 1
        if self.writes == self.cut_after:
            # A power cut inside a flash write: half the data lands, then nothing more runs.
            self.f.write(memoryview(buf)[:len(buf) // 2])
            self.f.close()
            os.system("kill -9 $PPID")  # the shell's parent is this interpreter
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:  # block count
            return self.count
        if op == 5:  # block size
            return self.size
        return 0  # init, deinit, sync, erase: nothing to do on a file


def mount(image, seed, cut_after=0):
    bdev = FileBlockDevice(image, cut_after=cut_after)
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
