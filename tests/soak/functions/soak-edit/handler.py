# Rewritten by the soak at every hot-reload fault: VERSION is the number of the edit.
VERSION = 0


def handler(event):
    return {"version": VERSION}
