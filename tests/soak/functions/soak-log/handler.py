# One uniquely numbered line per request: the soak checks that every line of a request that got a 200 is in the log.
def handler(event):
    n = event["query"].get("n", "-")
    print(f"soak-line {n}")
    return {"logged": n}
