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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

// MutantsEnv turns the mutant runs on: each builds and runs a test
// binary, so they belong to the full suite, not to every test run.
const MutantsEnv = "FREDTEL_PROOF_MUTANTS"

// A Mutant removes one protection from the product with a small edit, and
// names the check that must then fail. The edit is anchored on a marker
// comment, "// mutant:" and the Name, that ends one line of File: on that
// line, Old (which must occur there exactly once) becomes New, so the
// mutant follows the code through a refactor that keeps the marker where
// the protection is. A mutant whose File holds no marker for it falls back
// to an edit of the whole file, where Old must occur exactly once.
type Mutant struct {
	Name   string // short id, e.g. "validator-accepts-unknown-fields"
	Breaks string // the protection removed, in words
	File   string // repo-relative path of the edited file
	Old    string // e.g. "if " on a marked line, to become
	New    string // "if false && " (the check never fires)
	Pkg    string // package whose tests must fail, e.g. "./proof/canary"
	Run    string // -run pattern selecting the check
}

// RunMutants runs each mutant and fails t when its check still passes,
// or when the mutant no longer applies (its marker or its text is gone):
// that much is checked on every test run, the runs only with MutantsEnv.
// The mutation reaches every binary the tests build: GOFLAGS carries a
// -overlay file, and `go build` run by a test inherits it. The checks run
// at their CI size: under a mutant they only have to fail.
func RunMutants(t *testing.T, ms []Mutant) {
	root := testkit.RepoRoot()
	mutated := make([][]byte, len(ms))
	for i, m := range ms {
		src, err := os.ReadFile(filepath.Join(root, m.File))
		if err == nil {
			mutated[i], err = m.apply(src)
		}
		if err != nil {
			t.Errorf("mutant %s no longer applies: %v", m.Name, err)
		}
	}
	if t.Failed() {
		return
	}
	if os.Getenv(MutantsEnv) != "1" {
		t.Skipf("mutant runs build and run the suite once per mutant; scripts/proof (or %s=1) runs them", MutantsEnv)
	}
	for i, m := range ms {
		t.Run(m.Name, func(t *testing.T) {
			out, err := runMutant(t, root, m, mutated[i])
			if err == nil {
				t.Fatalf("with %s removed (%s), %s -run %q still passes:\n%s", m.Breaks, m.File, m.Pkg, m.Run, testkit.Tail(out, 3000))
			}
			failed := failures(out)
			if len(failed) == 0 {
				t.Fatalf("mutant %s: go test failed without a failing test (does it build?):\n%s", m.Name, testkit.Tail(out, 3000))
			}
			Figure(t, "mutants", m.Breaks, "%s failed: %s", strings.Join(failed, ", "), firstError(out))
		})
	}
}

// runMutant runs m's check with File replaced by mutated.
func runMutant(t *testing.T, root string, m Mutant, mutated []byte) (string, error) {
	dir := t.TempDir()
	mutatedPath := filepath.Join(dir, filepath.Base(m.File))
	if err := os.WriteFile(mutatedPath, mutated, 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{filepath.Join(root, m.File): mutatedPath}})
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
		t.Fatalf("mutant %s: timed out:\n%s", m.Name, testkit.Tail(string(out), 3000))
	}
	return string(out), err
}

// apply returns src with the mutant's edit made: on the line its marker
// ends, else (no marker) in the whole file.
func (m Mutant) apply(src []byte) ([]byte, error) {
	marker := []byte("// mutant:" + m.Name)
	var lines [][]byte // the lines the marker ends
	for l := range bytes.Lines(src) {
		if bytes.HasSuffix(bytes.TrimRight(l, " \t\r\n"), marker) {
			lines = append(lines, l)
		}
	}
	switch len(lines) {
	case 0:
		if n := bytes.Count(src, []byte(m.Old)); n != 1 {
			return nil, fmt.Errorf("no line ends with %q, and %q occurs %d times in %s (want exactly 1)", marker, m.Old, n, m.File)
		}
		return bytes.Replace(src, []byte(m.Old), []byte(m.New), 1), nil
	case 1:
		code, _, _ := bytes.Cut(lines[0], marker)
		if n := bytes.Count(code, []byte(m.Old)); n != 1 {
			return nil, fmt.Errorf("%q occurs %d times on the line marked %q in %s (want exactly 1)", m.Old, n, marker, m.File)
		}
		at := bytes.Index(src, lines[0])
		edited := bytes.Replace(lines[0], []byte(m.Old), []byte(m.New), 1)
		return slices.Concat(src[:at], edited, src[at+len(lines[0]):]), nil
	}
	return nil, fmt.Errorf("%d lines end with %q in %s (want exactly 1)", len(lines), marker, m.File)
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
