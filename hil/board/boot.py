# An emulated board's boot: mount its LittleFS flash and run the agent (hil/board/hilboot.py).
import sys

import hilboot

sys.exit(hilboot.run(sys.argv[1:]))
