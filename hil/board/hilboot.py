# Boots an emulated board (micropython): mounts its flash -- a LittleFS2 filesystem on a
# file-backed block device of fixed size, as on a board -- at /flash, provisions it on
# first boot from a seed folder, then runs the agent with the remaining arguments.
# Usage: micropython hil/board/boot.py (IMAGE SEED_DIR | --folder FLASH_DIR)
#            [--clock-offset S] [--cut-after-writes N] [agent arguments...]
# (boot.py only imports this module, which the bench runs as .mpy like the firmware.)
#
# Bench powers live here, never in the firmware a handheld runs: a clock offset, and the
# console commands `clock SECONDS` (set the clock offset) and `plug PORT` (move the cable
# to another hub), installed through the agent's bench hook.
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


def _bench_command(agent, words):
    # -> True when the line was a bench command
    if words[0] == "plug" and len(words) == 2:
        agent.cfg["uart"] = words[1]  # the cable moved to another hub
        agent.out("PLUGGED")
        return True
    if words[0] == "clock" and len(words) == 2:
        try:
            agent.clock_offset = int(words[1])  # set the device clock
        except ValueError:
            agent.out("ERROR clock SECONDS")
            return True
        agent.out("CLOCK %d" % agent.now())
        return True
    return False


def run(argv):
    if argv[0] == "--folder":
        flash, argv = argv[1], argv[2:]
    else:
        image, seed, argv = argv[0], argv[1], argv[2:]
        flash = None
    offset = cut = 0
    while argv and argv[0] in ("--clock-offset", "--cut-after-writes"):
        if argv[0] == "--clock-offset":
            offset = int(argv[1])
        else:
            cut = int(argv[1])
        argv = argv[2:]
    if flash is None:
        mount(image, seed, cut)
        flash = "/flash"
    from agent import main

    main.Agent.bench_command = staticmethod(_bench_command)
    main.Agent.clock_offset = offset
    return main.main(["--flash", flash] + argv)
