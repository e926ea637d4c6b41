# Small crash-safe file helpers for the handheld's flash (LittleFS on a board, a folder
# on the unix port). A file is replaced by writing a temporary beside it and renaming:
# rename is atomic on LittleFS and POSIX, so a power cut leaves the old or the new file.
import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def write_atomic(path, data):
    # data: bytes, or a tuple of byte strings written one after the other.
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for part in (data if isinstance(data, tuple) else (data,)):
            f.write(part)
    os.rename(tmp, path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def makedirs(path):
    parts = path.split("/")
    cur = "" if not path.startswith("/") else "/"
    for p in parts:
        if not p:
            continue
        cur = cur + p if cur in ("", "/") else cur + "/" + p
        if not exists(cur):
            os.mkdir(cur)
