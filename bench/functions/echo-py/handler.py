import json


def handler(event):
    # Decode and re-encode: the JSON cost of a 4 KiB body, both ways.
    return {"items": json.loads(event["body"])}
