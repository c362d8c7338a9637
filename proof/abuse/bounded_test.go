package abuse

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
)

// worstBodies are the shapes that cost a parser the most, each about 8 MiB
// once inflated (the server's limit; 3 MiB for distinct keys) and a few KiB
// sent gzipped: wide arrays, wide objects, many short keys, long strings
// and keys, long numbers, deep nesting, at the top and inside a record.
func worstBodies(now time.Time) map[string][]byte {
	const size = 8<<20 - 64
	valid := string(fixture.MustJSON(fixture.ValidBatch(now)))
	fill := func(n int, prefix, unit, suffix string) string {
		k := (n - len(prefix) - len(suffix)) / len(unit)
		return prefix + strings.Repeat(unit, k) + suffix
	}
	in := func(old, prefix, unit, suffix string) []byte {
		i := strings.Index(valid, old)
		return []byte(valid[:i] + fill(size-len(valid), prefix, unit, suffix) + valid[i+len(old):])
	}
	// Distinct keys compress poorly: 3 MiB of them is what fits in the
	// 1 MiB the server takes as sent.
	var keys strings.Builder
	for i := 0; keys.Len() < 3<<20; i++ {
		fmt.Fprintf(&keys, `"%s":0,`, strconv.FormatInt(int64(i), 36))
	}
	return map[string][]byte{
		"wide_array_top":         []byte(fill(size, "[", "0,", "0]")),
		"wide_array_records":     in(`"events":[`, `"events":[`, "{},", ""),
		"wide_array_catalog":     in(`"tool_catalog":[`, `"tool_catalog":[`, `"a",`, ""),
		"wide_array_field":       in(`"mode":"act"`, `"x":[`, "0,", `0],"mode":"act"`),
		"wide_object_top":        []byte("{" + keys.String() + `"z":0}`),
		"wide_object_record":     in(`"mode":"act"`, "", `"a":0,`, `"mode":"act"`),
		"short_keys_props":       []byte(strings.Replace(valid, `"command":"model"`, keys.String()+`"command":"model"`, 1)),
		"long_string":            in(`"fred-flash-2"`, `"`, "m", `"`),
		"long_escaped_string":    in(`"fred-flash-2"`, `"`, `\u0041`, `"`),
		"long_key":               in(`"mode":"act"`, `"`, "k", `":1,"mode":"act"`),
		"long_number":            in(`"prompt_tokens":1200`, `"prompt_tokens":`, "9", ""),
		"deep_arrays":            in(`"mode":"act"`, `"x":`, "[", ""),
		"deep_objects":           in(`"mode":"act"`, `"x":`, `{"a":`, ""),
		"deep_top":               []byte(fill(size, "", "[", "")),
		"whitespace":             []byte(fill(size, `{"schema_version":`, " ", "1}")),
		"duplicate_keys_records": in(`"events":[`, `"events":[`, `{"a":0,"a":0},`, ""),
	}
}

// vmHWM is the peak resident set of a process, from /proc.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	kib, err := testkit.ProcStatusKiB(pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	return kib << 10
}

// TestWorstCaseBodies (issue 12, item 1): rounds of 32 worst-case bodies
// at once, every shape, gzipped, from one key. The real server's peak
// resident set stays under 256 MiB, each body is answered 400, 413 or 503
// within 2 s, nothing is written, and another key's valid batches are
// accepted all the while. On main before this test one 8 MiB `[0,0,0,…]`
// made the validator allocate about 460 MiB: a few at once exhausted the
// server's memory.
func TestWorstCaseBodies(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the peak resident set is read from /proc (Linux only)")
	}
	t.Parallel()
	const concurrent, rounds = 32, 3
	now := time.Now()
	db := newDB(t)
	p := testkit.StartServer(t, db, "", "--rate", "100000", "--burst", "100000")
	conn := dbConn(t, db)
	attacker, bystander := testkit.CreateKey(t, db, "mallory"), testkit.CreateKey(t, db, "bystander")
	bodies := worstBodies(now)
	names := slices.Sorted(maps.Keys(bodies))
	sent := map[string][]byte{}
	for n, b := range bodies {
		sent[n] = fixture.Gzip(b)
	}
	pid := p.Cmd.Process.Pid
	base := vmHWM(t, pid)
	before := snapshot(t, conn)

	// The bystander sends valid batches until the attack is over, as a
	// client does: a 503 is kept and sent again.
	stop := make(chan struct{})
	var accepted, busy int
	var bwg sync.WaitGroup
	bwg.Add(1)
	go func() {
		defer bwg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b := fixture.MustJSON(fixture.ValidBatch(now))
			for {
				a := postKeepAlive(t, p.URL, bystander, b)
				if a.code == 200 {
					accepted++
					break
				}
				if a.code != 503 {
					t.Errorf("the bystander's valid batch: %d %s", a.code, a.raw)
					return
				}
				busy++
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()

	var mu sync.Mutex
	codes := map[int]int{}
	var slowest time.Duration
	for round := range rounds {
		var wg sync.WaitGroup
		for i := range concurrent {
			name := names[(round*concurrent+i)%len(names)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				a := send(t, p.URL, request{body: sent[name], hdr: map[string]string{"Authorization": "Bearer " + attacker,
					"Content-Type": "application/json", "Content-Encoding": "gzip"}})
				d := time.Since(start)
				mu.Lock()
				defer mu.Unlock()
				codes[a.code]++
				slowest = max(slowest, d)
				if a.code != 400 && a.code != 413 && a.code != 503 {
					t.Errorf("%s: %d %.200s, want 400, 413 or 503", name, a.code, a.raw)
				}
				if d > 2*time.Second {
					t.Errorf("%s: answered in %v, want within 2 s", name, d.Round(time.Millisecond))
				}
				if a.code == 503 && a.header.Get("Retry-After") == "" {
					t.Errorf("%s: 503 without Retry-After", name)
				}
			}()
		}
		wg.Wait()
	}
	close(stop)
	bwg.Wait()

	peak := vmHWM(t, pid)
	if peak >= 256<<20 {
		t.Errorf("the server's peak resident set reached %d MiB (from %d MiB at start), want under 256 MiB", peak>>20, base>>20)
	}
	if accepted == 0 {
		t.Errorf("the other key had no valid batch accepted during the attack (%d answered 503)", busy)
	}
	after := snapshot(t, conn)
	if got := queryInt(t, conn, "SELECT count(*) FROM telemetry_sessions WHERE user_id = 'mallory'"); got != 0 {
		t.Errorf("the worst-case bodies wrote %d sessions", got)
	}
	if n := after.records() - before.records(); n != int64(7*accepted) {
		t.Errorf("%d rows written, want the bystander's 7 × %d", n, accepted)
	}
	healthy(t, p.URL)
	if !t.Failed() {
		proof.Figure(t, "abuse", "worst-case bodies at once (bounded work per request)",
			"%d rounds of %d concurrent gzipped 8 MiB bodies of %d shapes: answers %v, slowest %v; server peak RSS %d MiB (%d at start, limit 256); another key %d batches accepted meanwhile (%d answered 503 and were sent again); 0 rows from the attack",
			rounds, concurrent, len(names), codes, slowest.Round(time.Millisecond), peak>>20, base>>20, accepted, busy)
	}
}
