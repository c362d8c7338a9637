// Package proof is what the proof suite's checks (proof/abuse,
// proof/canary, proof/faults) share: a log of the figures each check
// produced, which scripts/proof turns into docs/proof-report.md
// (internal/devcmd/proofreport), and mutants — small edits that remove one
// protection — with a runner that shows the check guarding it fails.
//
// Figures go to the file named by FREDTEL_PROOF_LOG, one JSON object a
// line, appended with O_APPEND so parallel tests and packages can share
// it. Without that variable they only go to the test log.
package proof

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// LogEnv names the file figures are appended to.
const LogEnv = "FREDTEL_PROOF_LOG"

// Entry is one line of the figures log.
type Entry struct {
	Section string    `json:"section"` // "canary", "abuse", "cross-user", "faults", "load", "mutants"
	Check   string    `json:"check"`   // what was checked, in a few words
	Figure  string    `json:"figure"`  // what was measured, with numbers
	Test    string    `json:"test"`    // the test that produced it
	At      time.Time `json:"at"`
}

var logMu sync.Mutex

// Figure records what a check measured. It is written only if the test
// passes: a report must not show figures of a check that failed.
func Figure(t testing.TB, section, check, format string, args ...any) {
	t.Helper()
	e := Entry{Section: section, Check: check, Figure: fmt.Sprintf(format, args...), Test: t.Name(), At: time.Now().UTC()}
	t.Logf("proof: %s: %s: %s", section, check, e.Figure)
	path := os.Getenv(LogEnv)
	if path == "" {
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		line, err := json.Marshal(e)
		if err != nil {
			t.Errorf("proof log: %v", err)
			return
		}
		logMu.Lock()
		defer logMu.Unlock()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			t.Errorf("proof log: %v", err)
			return
		}
		defer f.Close()
		if _, err := f.Write(append(line, '\n')); err != nil {
			t.Errorf("proof log: %v", err)
		}
	})
}

// Full reports whether the long checks run at full size (scripts/proof
// sets FREDTEL_PROOF_FULL=1); CI runs them shortened.
func Full() bool { return os.Getenv("FREDTEL_PROOF_FULL") == "1" }
