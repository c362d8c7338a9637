package proof

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// MutantsEnv turns the mutant runs on: each builds and runs a test
// binary, so they belong to the full suite, not to every test run.
const MutantsEnv = "FREDTEL_PROOF_MUTANTS"

// A Mutant removes one protection from the product with an exact text
// replacement, and names the check that must then fail.
type Mutant struct {
	Name   string // short id, e.g. "validator-accepts-unknown-fields"
	Breaks string // the protection removed, in words
	File   string // repo-relative path of the edited file
	Old    string // exact text replaced; it must occur exactly once
	New    string
	Pkg    string // package whose tests must fail, e.g. "./proof/canary"
	Run    string // -run pattern selecting the check
}

// RunMutants runs each mutant and fails t when its check still passes,
// or when the mutant no longer applies (the product changed under it).
// The mutation reaches every binary the tests build: GOFLAGS carries a
// -overlay file, and `go build` run by a test inherits it. The checks run
// at their CI size: under a mutant they only have to fail.
func RunMutants(t *testing.T, ms []Mutant) {
	if os.Getenv(MutantsEnv) != "1" {
		t.Skipf("mutant runs build and run the suite once per mutant; scripts/proof (or %s=1) runs them", MutantsEnv)
	}
	root := repoRoot(t)
	for _, m := range ms {
		t.Run(m.Name, func(t *testing.T) {
			out, err := runMutant(t, root, m)
			if err == nil {
				t.Fatalf("with %s removed (%s), %s -run %q still passes:\n%s", m.Breaks, m.File, m.Pkg, m.Run, tail(out, 3000))
			}
			failed := failures(out)
			if len(failed) == 0 {
				t.Fatalf("mutant %s: go test failed without a failing test (does it build?):\n%s", m.Name, tail(out, 3000))
			}
			Figure(t, "mutants", m.Breaks, "%s failed: %s", strings.Join(failed, ", "), firstError(out))
		})
	}
}

func runMutant(t *testing.T, root string, m Mutant) (string, error) {
	src, err := os.ReadFile(filepath.Join(root, m.File))
	if err != nil {
		t.Fatalf("mutant %s: %v", m.Name, err)
	}
	if n := bytes.Count(src, []byte(m.Old)); n != 1 {
		t.Fatalf("mutant %s no longer applies: %q occurs %d times in %s (want exactly 1)", m.Name, m.Old, n, m.File)
	}
	dir := t.TempDir()
	mutated := filepath.Join(dir, filepath.Base(m.File))
	if err := os.WriteFile(mutated, bytes.Replace(src, []byte(m.Old), []byte(m.New), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(root, m.File): mutated}})
	ovPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovPath, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", m.Run, m.Pkg)
	cmd.Dir = root
	cmd.Env = append(withoutEnv(os.Environ(), LogEnv, MutantsEnv, "FREDTEL_PROOF_FULL", "GOFLAGS"),
		strings.TrimSpace("GOFLAGS="+os.Getenv("GOFLAGS")+" -overlay="+ovPath))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mutant %s: timed out:\n%s", m.Name, tail(string(out), 3000))
	}
	return string(out), err
}

var failLine = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)

func failures(out string) []string {
	var names []string
	for _, m := range failLine.FindAllStringSubmatch(out, -1) {
		names = append(names, m[1])
	}
	return names
}

// firstError is the first line a failing test printed about why.
func firstError(out string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.Contains(l, "_test.go:") {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			return l
		}
	}
	return "(no message)"
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal(fmt.Errorf("no go.mod above the test's folder"))
		}
		dir = parent
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
