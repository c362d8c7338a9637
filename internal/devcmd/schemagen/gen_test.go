package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
)

var root = testkit.RepoRoot()

// TestGeneratedFilesAreCurrent fails when a file derived from the schema
// declaration was edited by hand or not regenerated after a declaration
// change. Fix: go generate ./schema.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range files {
		got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./schema)", path, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what schema/records.go generates; run go generate ./schema", path)
		}
	}
	// No stray migration: every file is the newest version's, generated
	// above, or an earlier one's, frozen.
	stray, _ := filepath.Glob(filepath.Join(root, "store", "migrations", "*", "*", "*.sql"))
	for _, p := range stray {
		rel, _ := filepath.Rel(root, p)
		if _, ok := files[filepath.ToSlash(rel)]; ok {
			continue
		}
		var v int
		if _, err := fmt.Sscanf(filepath.Base(p), "%04d_", &v); err != nil || v <= 0 || v >= schema.Version {
			t.Errorf("%s is neither the newest migration nor a frozen one", rel)
		}
	}
}

// TestFrozenMigrations: a migration file of a version before the newest is
// never edited or regenerated, since databases applied it and keep its
// checksum (they would refuse an edited one). Its frozen copy lives in
// store/testdata/migrations; starting version N+1, copy version N's files
// there.
func TestFrozenMigrations(t *testing.T) {
	for _, d := range schema.Dialects() {
		for _, s := range schema.Sets() {
			for v := 1; v < schema.Version; v++ {
				path := MigrationPath(d, s, v)
				got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path)))
				if err != nil {
					t.Errorf("%s: %v: a frozen migration is never removed", path, err)
					continue
				}
				frozen := filepath.Join(root, "store", "testdata", strings.TrimPrefix(filepath.ToSlash(path), "store/"))
				want, err := os.ReadFile(frozen)
				if err != nil {
					t.Errorf("%s has no frozen copy (%v): copy it to %s when the next version starts", path, err, frozen)
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s was edited after it was frozen: databases that applied it refuse the new text; add a migration instead", path)
				}
			}
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
