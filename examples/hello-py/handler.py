def handler(event):
    name = event["query"].get("name", "world")
    return {"hello": name, "runtime": "python"}
