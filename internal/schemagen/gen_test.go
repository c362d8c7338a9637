package schemagen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedFilesAreCurrent fails when a file derived from the schema
// declaration was edited by hand or not regenerated after a declaration
// change. Fix: go generate ./schema.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./schema)", path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what schema/records.go generates; run go generate ./schema", path)
		}
	}
	// No stray migration that the declaration did not generate.
	stray, _ := filepath.Glob(filepath.Join("..", "..", "store", "migrations", "*", "*", "*.sql"))
	for _, p := range stray {
		rel, _ := filepath.Rel(filepath.Join("..", ".."), p)
		if _, ok := files[filepath.ToSlash(rel)]; !ok {
			t.Errorf("%s is not generated from the declaration", rel)
		}
	}
}

func TestGoName(t *testing.T) {
	for in, want := range map[string]string{
		"session_id": "SessionID", "agents_md_hash": "AgentsMDHash", "system_prompt_sha256": "SystemPromptSHA256",
		"duration_ms": "DurationMs", "os": "OS", "api_error_type": "APIErrorType", "ts": "TS", "tool_name": "ToolName",
	} {
		if got := GoName(in); got != want {
			t.Errorf("GoName(%q) = %q, want %q", in, got, want)
		}
	}
}
