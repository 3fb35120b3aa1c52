# GET /users/:id — a file route with a path parameter, injected as a keyword argument.
def handler(event, id):
    return {"id": id, "method": event["method"]}
