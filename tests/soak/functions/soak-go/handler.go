package main

func Handler(event map[string]any) map[string]any {
	return map[string]any{"hello": "world", "runtime": "go"}
}
