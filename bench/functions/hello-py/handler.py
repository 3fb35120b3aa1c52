def handler(event):
    return {"hello": "world"}
