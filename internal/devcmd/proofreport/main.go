// Command proofreport turns the proof suite's figures log (one JSON entry a
// line, written by proof.Figure) into the markdown report scripts/proof
// keeps in docs/proof-report.md.
//
//	go run ./internal/devcmd/proofreport -log FILE -mode full|fast [-mutants] > docs/proof-report.md
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/fredcode/fredtel/proof"
)

// sections in the order the issue lists the promises.
var sections = []struct{ key, title, why string }{
	{"canary", "Privacy canaries", "Unique strings in every text-bearing input of the real client; where they may and may not be found afterwards."},
	{"abuse", "Abuse catalogue", "Malicious requests sent raw to the real server: each gets the right status, writes nothing, and the server stays healthy."},
	{"cross-user", "Cross-user safety", "One key cannot add rows to, or change, another user's session."},
	{"faults", "Faults", "Server SIGKILLs, a PostgreSQL restart and a broken spool directory under load, then a ledger check."},
	{"load", "Load", "Many concurrent clients through the real client library, then a ledger check."},
	{"mutants", "Mutants: each check fails without its protection", "Each row removes one protection from the product (an exact edit, applied with `go test -overlay`) and names the check that then failed, with its first message."},
}

func main() {
	logPath := flag.String("log", "", "the figures log (FREDTEL_PROOF_LOG of the run)")
	mode := flag.String("mode", "full", "full or fast: the size the long checks ran at")
	mutants := flag.Bool("mutants", false, "whether the mutant runs were part of the run")
	elapsed := flag.Duration("elapsed", 0, "wall time of the run")
	flag.Parse()
	f, err := os.Open(*logPath)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	entries, err := read(f)
	if err != nil {
		fail(fmt.Errorf("%s: %w", *logPath, err))
	}
	if err := write(os.Stdout, entries, *mode, *mutants, *elapsed); err != nil {
		fail(err)
	}
}

func read(r io.Reader) (map[string][]proof.Entry, error) {
	by := map[string][]proof.Entry{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e proof.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		by[e.Section] = append(by[e.Section], e)
	}
	return by, sc.Err()
}

func write(w io.Writer, by map[string][]proof.Entry, mode string, mutants bool, elapsed time.Duration) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# Proof report\n\n")
	fmt.Fprintf(b, "Written by `scripts/proof` on %s: commit %s, %s, %d CPUs (%s), long checks at %s size",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), commit(), runtime.Version(), runtime.NumCPU(), cpuModel(), mode)
	if mutants {
		fmt.Fprintf(b, ", with mutants")
	}
	if elapsed > 0 {
		fmt.Fprintf(b, ", in %s", elapsed.Round(time.Second))
	}
	fmt.Fprintf(b, ". Every figure below comes from a test that passed in that run; run `scripts/proof` to reproduce it.\n")
	seen := map[string]bool{}
	for _, s := range sections {
		seen[s.key] = true
		writeSection(b, s.title, s.why, by[s.key])
	}
	var rest []string
	for k := range by {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		writeSection(b, k, "", by[k])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeSection(b *strings.Builder, title, why string, es []proof.Entry) {
	fmt.Fprintf(b, "\n## %s\n\n", title)
	if why != "" {
		fmt.Fprintf(b, "%s\n\n", why)
	}
	if len(es) == 0 {
		fmt.Fprintf(b, "_No figures: this part did not run._\n")
		return
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].Test < es[j].Test })
	fmt.Fprintf(b, "| check | figure | test |\n|---|---|---|\n")
	for _, e := range es {
		fmt.Fprintf(b, "| %s | %s | `%s` |\n", cell(e.Check), cell(e.Figure), e.Test)
	}
}

// cell keeps a figure on one table row.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, _ := exec.Command("git", "status", "--porcelain").Output(); len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}
