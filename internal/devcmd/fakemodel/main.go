// Command fakemodel is a stand-in for the Anthropic Messages API on
// 127.0.0.1, for scripts/relay-e2e: a real Claude Code runs against it
// without a key or the network. A request without tools (a session title)
// gets a short text; a request whose conversation has no tool result yet
// gets one Bash tool call (ls); the next gets the final answer. Streaming
// (SSE) and plain answers both.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address (loopback)")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "fakemodel: listening on http://%s\n", ln.Addr())
	http.HandleFunc("/v1/messages/count_tokens", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"input_tokens":1500}`)
	})
	http.HandleFunc("/v1/messages", messages)
	log.Fatal(http.Serve(ln, nil))
}

type block map[string]any

func messages(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	var req struct {
		Model  string          `json:"model"`
		Stream bool            `json:"stream"`
		Tools  json.RawMessage `json:"tools"`
	}
	json.Unmarshal(body, &req)
	var content block
	stop := "end_turn"
	switch {
	case len(req.Tools) == 0 || string(req.Tools) == "null" || string(req.Tools) == "[]":
		content = block{"type": "text", "text": "Fake title"}
	case !bytes.Contains(body, []byte(`"tool_result"`)):
		content = block{"type": "tool_use", "id": "toolu_fake_1", "name": "Bash",
			"input": block{"command": "ls", "description": "List files in the working directory"}}
		stop = "tool_use"
	default:
		content = block{"type": "text", "text": "FAKE-ANSWER: the directory contains hello.txt."}
	}
	usage := block{"input_tokens": 1500, "output_tokens": 37, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 100}
	msg := block{"id": "msg_fake", "type": "message", "role": "assistant", "model": req.Model, "content": []block{content},
		"stop_reason": stop, "stop_sequence": nil, "usage": usage}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(msg)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(event string, data block) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	}
	start := block{"id": "msg_fake", "type": "message", "role": "assistant", "model": req.Model, "content": []block{},
		"stop_reason": nil, "stop_sequence": nil, "usage": block{"input_tokens": 1500, "output_tokens": 1,
			"cache_read_input_tokens": 300, "cache_creation_input_tokens": 100}}
	send("message_start", block{"type": "message_start", "message": start})
	if content["type"] == "tool_use" {
		input, _ := json.Marshal(content["input"])
		send("content_block_start", block{"type": "content_block_start", "index": 0,
			"content_block": block{"type": "tool_use", "id": content["id"], "name": content["name"], "input": block{}}})
		send("content_block_delta", block{"type": "content_block_delta", "index": 0,
			"delta": block{"type": "input_json_delta", "partial_json": string(input)}})
	} else {
		send("content_block_start", block{"type": "content_block_start", "index": 0, "content_block": block{"type": "text", "text": ""}})
		send("content_block_delta", block{"type": "content_block_delta", "index": 0, "delta": block{"type": "text_delta", "text": content["text"]}})
	}
	send("content_block_stop", block{"type": "content_block_stop", "index": 0})
	send("message_delta", block{"type": "message_delta", "delta": block{"stop_reason": stop, "stop_sequence": nil}, "usage": block{"output_tokens": 37}})
	send("message_stop", block{"type": "message_stop"})
}
