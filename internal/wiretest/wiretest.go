// Package wiretest makes wire-format batches for tests of the ingest API.
package wiretest

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"
)

// ValidBatch is a batch with one record of each kind and every event name.
func ValidBatch(now time.Time) map[string]any {
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z")
	sid, tid := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	hash := strings.Repeat("ab", 32)
	id := func() string { return uuid.Must(uuid.NewV7()).String() }
	return map[string]any{
		"schema_version": 1, "batch_id": id(), "sent_at": ts,
		"client": map[string]any{"fred_version": "1.4.2", "runtime_version": "go1.26.8"},
		"sessions": []any{map[string]any{"session_id": sid, "started_at": ts, "ended_at": nil, "model": "fred-flash-2",
			"fred_version": "1.4.2", "runtime_version": "go1.26.8", "os": "linux", "shell": "zsh", "git_dirty": true,
			"agents_md_hash": hash, "system_prompt_sha256": hash, "tool_catalog": []any{"read_file", "bash"}, "command_catalog": []any{"help", "model"}}},
		"turns": []any{map[string]any{"turn_id": tid, "session_id": sid, "seq": 0, "started_at": ts, "model": "fred-flash-2", "mode": "act",
			"prompt_tokens": 1200, "completion_tokens": 80, "cached_tokens": 0, "finish_reason": "stop", "duration_ms": 2300,
			"num_tool_calls": 1, "api_error_type": nil, "prompt_chars": 21, "response_chars": 17}},
		"tool_calls": []any{map[string]any{"call_id": id(), "session_id": sid, "turn_id": tid, "seq": 0, "started_at": ts,
			"tool_name": "read_file", "args_fingerprint": hash, "permission": "auto_allowed", "duration_ms": 4, "outcome": "ok",
			"result_bytes": 1234, "result_is_error": false}},
		"events": []any{
			map[string]any{"event_id": id(), "session_id": sid, "ts": ts, "name": "slash_command", "props": map[string]any{"command": "model"}},
			map[string]any{"event_id": id(), "session_id": sid, "ts": ts, "name": "api_retry", "props": map[string]any{"attempt": 1, "delay_ms": 2000, "error_type": "rate_limit", "status": 429}},
			map[string]any{"event_id": id(), "session_id": sid, "ts": ts, "name": "mode_change", "props": map[string]any{"from": "act", "to": "plan"}},
			map[string]any{"event_id": id(), "session_id": sid, "ts": ts, "name": "model_swap", "props": map[string]any{"from": "fred-flash-2", "to": "fred-pro-2"}},
		},
	}
}

// Rec returns the i-th record of the named array of a batch map.
func Rec(b map[string]any, array string, i int) map[string]any {
	return b[array].([]any)[i].(map[string]any)
}

// MustJSON encodes v or panics.
func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
