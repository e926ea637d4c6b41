# The bench's console commands (hil/board/hilboot.py installs them through the agent's
# bench hook; a handheld's firmware has none): `plug PORT` (move the cable to another hub),
# `clock SECONDS` (set the clock offset) and `mem [map]` (the heap's free and used bytes;
# `map`: where it is split). Loaded for the line, then dropped.


def command(agent, words):
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
    if words[0] == "mem":  # the heap, as the agent leaves it between commands
        import gc

        import micropython

        gc.collect()
        agent.out("MEM free=%d alloc=%d" % (gc.mem_free(), gc.mem_alloc()))
        micropython.qstr_info()  # "qstr pool: n_pool=… n_qstr=…": the interned names
        if words[1:] == ["map"]:
            micropython.mem_info(1)  # the heap's block map: where it is split
        return True
    return False
