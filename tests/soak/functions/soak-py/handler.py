def handler(event):
    return {"hello": "world", "runtime": "python"}
