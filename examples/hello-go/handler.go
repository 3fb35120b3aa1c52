package main

// Handler answers GET /hello-go?name=you.
func Handler(event map[string]any) map[string]any {
	query, _ := event["query"].(map[string]any)
	name, _ := query["name"].(string)
	if name == "" {
		name = "world"
	}
	return map[string]any{"hello": name, "runtime": "go"}
}
