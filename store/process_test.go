package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

// The helper-process mode of this test binary: write the mixed batches to
// FREDTEL_HELPER_DB with two goroutines, then exit.
func TestMain(m *testing.M) {
	if url := os.Getenv("FREDTEL_HELPER_DB"); url != "" {
		os.Exit(helperWrite(url))
	}
	os.Exit(m.Run())
}

func helperWrite(url string) int {
	set := schema.CentralSet
	if os.Getenv("FREDTEL_HELPER_SET") == "self-hosted" {
		set = schema.SelfHostedSet
	}
	seed, _ := strconv.Atoi(os.Getenv("FREDTEL_HELPER_SEED"))
	// Every process migrates on open too: concurrent first runs must agree.
	s, err := Open(context.Background(), url, Options{Set: set, Migrate: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	defer s.Close()
	batches, _ := mixedBatches(uint64(seed), 30)
	var wg sync.WaitGroup
	fail := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				b := batches[(i*7+w*13+seed)%len(batches)]
				if _, err := s.Write(context.Background(), b); err != nil {
					fail <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(fail)
	for err := range fail {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// TestConcurrentProcessesExactlyOnce: four processes, two writers each, write
// the same batches into one fresh database (migrating it on open, all at
// once); every id lands exactly once.
func TestConcurrentProcessesExactlyOnce(t *testing.T) {
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		url := be.URL(t)
		var wg sync.WaitGroup
		outs := make([][]byte, 4)
		errs := make([]error, 4)
		for p := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), "FREDTEL_HELPER_DB="+url, "FREDTEL_HELPER_SET=central",
					"FREDTEL_HELPER_SEED=9")
				outs[p], errs[p] = cmd.CombinedOutput()
			}()
		}
		wg.Wait()
		for p := range 4 {
			if errs[p] != nil {
				t.Fatalf("process %d: %v\n%s", p, errs[p], outs[p])
			}
		}
		s := openStore(t, url, schema.CentralSet)
		_, ids := mixedBatches(9, 30)
		for _, r := range schema.Records() {
			if n := count(t, s, s.Set().TableName(r)); n != len(ids[r.Table()]) {
				t.Errorf("%s: %d rows, want %d", s.Set().TableName(r), n, len(ids[r.Table()]))
			}
		}
		if n := count(t, s, "telemetry_sessions WHERE ended_at IS NULL"); n != 0 {
			t.Errorf("%d sessions without their end", n)
		}
	})
}
