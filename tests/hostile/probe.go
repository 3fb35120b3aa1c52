package main

import (
	"os"
	"os/exec"
)

// A hostile Go handler: ?try=read|exec|uid&path=P reports what the kernel answered.
func Handler(event map[string]any) map[string]any {
	q, _ := event["query"].(map[string]any)
	path, _ := q["path"].(string)
	switch q["try"] {
	case "read":
		data, err := os.ReadFile(path)
		if err != nil {
			return map[string]any{"result": err.Error()}
		}
		return map[string]any{"result": len(data)}
	case "exec":
		out, err := exec.Command(path).CombinedOutput()
		if err != nil {
			return map[string]any{"result": err.Error()}
		}
		return map[string]any{"result": string(out)}
	case "uid":
		return map[string]any{"result": os.Getuid()}
	}
	return map[string]any{"result": "unknown attempt"}
}
