// fastfn Go worker: one process serves one function (docs/wire.md, docs/event.md). The supervisor builds this file
// together with the user's handler file and a generated adapter (fastfn_entry.go, which defines userHandler) into one
// binary, and starts it with an already-listening unix socket as fd 3. Standard library only.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const defaultMaxFrame = 8 * 1024 * 1024

var envelopeKeys = []string{"status", "statusCode", "headers", "body", "body_base64", "is_base64", "isBase64Encoded"}

type worker struct {
	dev        bool
	maxFrame   int
	allowed    map[int]bool
	busy       int64
	lastActive int64 // unix nanoseconds
}

func main() {
	fd, err := strconv.Atoi(os.Getenv("FN_WORKER_LISTEN_FD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fastfn go worker: FN_WORKER_LISTEN_FD not set; it is started by the fastfn supervisor")
		os.Exit(2)
	}
	ln, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "fastfn go worker: FN_WORKER_LISTEN_FD=%d is not a listening socket: %v\n", fd, err)
		os.Exit(2)
	}
	w := &worker{dev: os.Getenv("FN_MODE") == "dev", maxFrame: defaultMaxFrame, allowed: map[int]bool{}}
	if n, err := strconv.Atoi(os.Getenv("FN_MAX_FRAME_BYTES")); err == nil && n > 0 {
		w.maxFrame = n
	}
	for _, u := range strings.Split(os.Getenv("FN_ALLOWED_PEER_UIDS"), ",") {
		if uid, err := strconv.Atoi(strings.TrimSpace(u)); err == nil {
			w.allowed[uid] = true
		}
	}
	atomic.StoreInt64(&w.lastActive, time.Now().UnixNano())

	// Not dumpable: exec reset it; no process of the same user may read this one's memory.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		os.Exit(0)
	}()
	if ttl, err := strconv.Atoi(os.Getenv("FN_IDLE_TTL_SECONDS")); err == nil && ttl > 0 {
		go func() {
			for range time.Tick(time.Second) {
				idle := time.Since(time.Unix(0, atomic.LoadInt64(&w.lastActive)))
				if atomic.LoadInt64(&w.busy) == 0 && idle >= time.Duration(ttl)*time.Second {
					os.Exit(0) // exit 0 tells the supervisor "idle", not "crashed"
				}
			}
		}()
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			time.Sleep(50 * time.Millisecond) // out of descriptors: don't spin
			continue
		}
		if !w.peerAllowed(conn) {
			conn.Close()
			continue
		}
		go w.serve(conn)
	}
}

// peerAllowed checks who is on the other end (SO_PEERCRED): Landlock does not govern connect() to unix sockets.
func (w *worker) peerAllowed(conn net.Conn) bool {
	if len(w.allowed) == 0 {
		return true
	}
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	allowed := false
	raw.Control(func(fd uintptr) {
		cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		allowed = err == nil && w.allowed[int(cred.Uid)]
	})
	return allowed
}

func writeFrame(conn net.Conn, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	_, err = conn.Write(frame)
	return err
}

func errorEnvelope(status int, message string) map[string]any {
	body, _ := json.Marshal(map[string]string{"error": message})
	return map[string]any{"status": status, "headers": map[string]string{"Content-Type": "application/json"}, "body": string(body)}
}

func (w *worker) serve(conn net.Conn) {
	defer conn.Close()
	// Buffered: one read() usually brings a whole frame (header and body), instead of one read per part.
	in := bufio.NewReaderSize(conn, 16*1024)
	head := make([]byte, 4)
	for {
		if _, err := io.ReadFull(in, head); err != nil {
			return // clean close between frames, or a truncated header
		}
		n := int(binary.BigEndian.Uint32(head))
		if n > w.maxFrame {
			writeFrame(conn, errorEnvelope(413, "payload too large"))
			return
		}
		if n < 2 {
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(in, body); err != nil {
			return
		}
		var request map[string]any
		if err := json.Unmarshal(body, &request); err != nil {
			writeFrame(conn, errorEnvelope(400, "invalid request frame"))
			return
		}
		if op, _ := request["op"].(string); op == "ping" {
			if writeFrame(conn, map[string]any{"op": "pong", "pid": os.Getpid()}) != nil {
				return
			}
			continue
		}
		event, ok := request["event"].(map[string]any)
		if !ok {
			writeFrame(conn, errorEnvelope(400, "invalid request frame"))
			return
		}
		atomic.AddInt64(&w.busy, 1)
		answer := w.handle(event)
		atomic.AddInt64(&w.busy, -1)
		atomic.StoreInt64(&w.lastActive, time.Now().UnixNano())
		if writeFrame(conn, answer) != nil {
			return
		}
	}
}

func (w *worker) handle(event map[string]any) (answer map[string]any) {
	id, _ := event["id"].(string)
	// Like upstream, each route param is also a top-level key when that key is free (event["id"] for /users/:id).
	if params, ok := event["params"].(map[string]any); ok {
		for k, v := range params {
			if _, taken := event[k]; !taken {
				event[k] = v
			}
		}
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "[%s] panic: %v\n%s", id, r, debug.Stack())
			answer = w.internalError(id, fmt.Sprintf("panic: %v", r), event)
		}
	}()
	result := userHandler(event)
	envelope, err := normalise(result)
	if err != nil {
		fmt.Fprintf(os.Stderr, "[%s] %v\n", id, err)
		return w.internalError(id, err.Error(), event)
	}
	return envelope
}

func (w *worker) internalError(id, detail string, event map[string]any) map[string]any {
	payload := map[string]string{"error": "internal error", "request_id": id}
	if w.dev {
		// The detail goes back to the client: hide every env value it quotes.
		if env, ok := event["env"].(map[string]any); ok {
			for _, v := range env {
				if s, ok := v.(string); ok && len(s) >= 4 {
					detail = strings.ReplaceAll(detail, s, "<hidden>")
				}
			}
		}
		payload["detail"] = detail
	}
	body, _ := json.Marshal(payload)
	return map[string]any{"status": 500, "headers": map[string]string{"Content-Type": "application/json"}, "body": string(body)}
}

func isEnvelope(m map[string]any) bool {
	for _, k := range envelopeKeys {
		if _, ok := m[k]; ok {
			return true
		}
	}
	return false
}

// normalise turns what the handler returned into a response envelope. A body that is not a string is JSON-encoded
// (upstream turned Go maps into Python repr text).
func normalise(result any) (map[string]any, error) {
	m, ok := result.(map[string]any)
	if !ok || !isEnvelope(m) {
		if result == nil {
			return map[string]any{"status": 200, "headers": map[string]string{}, "body": ""}, nil
		}
		body, err := json.Marshal(result)
		if err != nil {
			return nil, fmt.Errorf("handler response is not JSON-serialisable: %v", err)
		}
		return map[string]any{"status": 200, "headers": map[string]string{"Content-Type": "application/json"}, "body": string(body)}, nil
	}
	status := 200
	raw, has := m["status"]
	if !has {
		raw, has = m["statusCode"]
	}
	if has {
		f, ok := raw.(float64)
		if !ok {
			if i, isInt := raw.(int); isInt {
				f, ok = float64(i), true
			}
		}
		if !ok || f != float64(int(f)) || f < 100 || f > 599 {
			return nil, fmt.Errorf("status must be an integer from 100 to 599, got %v", raw)
		}
		status = int(f)
	}
	headers := map[string]any{}
	if h, ok := m["headers"].(map[string]any); ok {
		for k, v := range h {
			switch val := v.(type) {
			case string:
				headers[k] = val
			case []any:
				list := []string{}
				for _, item := range val {
					list = append(list, fmt.Sprint(item))
				}
				headers[k] = list
			case nil:
			default:
				headers[k] = fmt.Sprint(val)
			}
		}
	} else if h, ok := m["headers"].(map[string]string); ok {
		for k, v := range h {
			headers[k] = v
		}
	}
	out := map[string]any{"status": status, "headers": headers}
	if b64, ok := m["body_base64"].(string); ok {
		out["is_base64"] = true
		out["body_base64"] = b64
		return out, nil
	}
	switch body := m["body"].(type) {
	case nil:
		out["body"] = ""
	case string:
		if flag, _ := m["isBase64Encoded"].(bool); flag {
			out["is_base64"] = true
			out["body_base64"] = body
		} else {
			out["body"] = body
		}
	case []byte:
		out["is_base64"] = true
		out["body_base64"] = base64.StdEncoding.EncodeToString(body)
	default:
		encoded, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("response body is not JSON-serialisable: %v", err)
		}
		out["body"] = string(encoded)
		hasType := false
		for k := range headers {
			if strings.EqualFold(k, "content-type") {
				hasType = true
			}
		}
		if !hasType {
			headers["Content-Type"] = "application/json"
		}
	}
	return out, nil
}
