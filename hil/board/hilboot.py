# Boots an emulated board (micropython): its flash is a folder, or a LittleFS2 image that
# hilflash mounts at /flash; then it runs the agent with the remaining arguments.
# Usage: micropython hil/board/boot.py (IMAGE SEED_DIR | --folder FLASH_DIR)
#            [--clock-offset S] [--cut-after-writes N] [agent arguments...]
# (boot.py only imports this module, which the bench runs as .mpy like the firmware.)
#
# Bench powers live here, never in the firmware a handheld runs: a clock offset, and the
# console commands `clock SECONDS` (set the clock offset), `plug PORT` (move the cable
# to another hub) and `mem [map]` (the heap's free and used bytes; `map`: where it is split),
# installed through the agent's bench hook (the commands are hil/board/hilcmd.py).
def _bench_command(agent, words):
    # -> True when the line was a bench command (hil/board/hilcmd.py, loaded for the line
    # only: the bench's own code stays out of the heap the agent is measured in).
    import sys

    import hilcmd

    try:
        return hilcmd.command(agent, words)
    finally:
        hilcmd = None
        sys.modules.pop("hilcmd", None)


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
        import hilflash  # only LittleFS boards pay for the block device driver

        hilflash.mount(image, seed, cut)
        flash = "/flash"
    from agent import main

    main.Agent.bench_command = staticmethod(_bench_command)
    main.Agent.clock_offset = offset
    return main.main(["--flash", flash] + argv)
