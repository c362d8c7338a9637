package abuse

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/proof"
)

// TestFlood: one key sends hundreds of batches at once. The server answers
// 429 with Retry-After beyond the key's bucket, writes nothing for those,
// serves another key all along, stays healthy, and serves the flooder
// again once it waits as told. Then a flood of made-up keys: all 401.
func TestFlood(t *testing.T) {
	t.Parallel()
	const rate, burst, n, workers = 5.0, 10, 240, 8
	db := newDB(t)
	p := testkit.StartServer(t, db, "", "--rate", strconv.FormatFloat(rate, 'f', -1, 64), "--burst", strconv.Itoa(burst))
	conn := dbConn(t, db)
	flooder, bystander := testkit.CreateKey(t, db, "flooder"), testkit.CreateKey(t, db, "bystander")
	now := time.Now()
	userRecords := func(user string) int64 {
		return queryInt(t, conn, `SELECT (SELECT count(*) FROM telemetry_sessions WHERE user_id = $1) + (SELECT count(*) FROM telemetry_turns WHERE user_id = $1)
			+ (SELECT count(*) FROM telemetry_tool_calls WHERE user_id = $1) + (SELECT count(*) FROM telemetry_events WHERE user_id = $1)`, user)
	}

	t.Run("one_key", func(t *testing.T) {
		bodies := make(chan []byte, n)
		for range n {
			bodies <- fixture.MustJSON(fixture.ValidBatch(now))
		}
		close(bodies)
		var mu sync.Mutex
		codes := map[int]int{}
		retryAfter := map[string]int{}
		limited := make(chan struct{})
		var once sync.Once
		var wg, flood sync.WaitGroup
		start := time.Now()
		for range workers {
			flood.Add(1)
			go func() {
				defer flood.Done()
				for b := range bodies {
					a := postKeepAlive(t, p.URL, flooder, b)
					mu.Lock()
					codes[a.code]++
					if a.code == 429 {
						retryAfter[a.header.Get("Retry-After")]++
						once.Do(func() { close(limited) })
					}
					mu.Unlock()
				}
			}()
		}
		floodDone := make(chan struct{})
		go func() { flood.Wait(); close(floodDone) }()
		// The other key sends while the flooder is being refused (or, should
		// the flooder never be, once the flood is over).
		var bystanderCodes []int
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-limited:
			case <-floodDone:
			}
			for range 5 {
				bystanderCodes = append(bystanderCodes, postKeepAlive(t, p.URL, bystander, fixture.MustJSON(fixture.ValidBatch(now))).code)
			}
		}()
		<-floodDone
		elapsed := time.Since(start)
		wg.Wait()

		if codes[200]+codes[429] != n {
			t.Fatalf("answers %v: want only 200 and 429", codes)
		}
		// The bucket holds burst tokens and refills at rate: more than that
		// accepted means the limit did not hold.
		if most := burst + int(math.Ceil(rate*elapsed.Seconds())) + 1; codes[200] < burst || codes[200] > most {
			t.Errorf("%d of %d accepted in %v, want between %d and %d", codes[200], n, elapsed.Round(time.Millisecond), burst, most)
		}
		wait := 0
		for v, c := range retryAfter {
			s, err := strconv.Atoi(v)
			if err != nil || s < 1 || s > int(math.Ceil(1/rate))+1 {
				t.Errorf("%d answers 429 with Retry-After %q, want whole seconds, at least 1, at most the refill time of one token", c, v)
			}
			wait = max(wait, s)
		}
		for i, c := range bystanderCodes {
			if c != 200 {
				t.Errorf("the other key's batch %d answered %d during the flood", i, c)
			}
		}
		if len(bystanderCodes) != 5 {
			t.Errorf("the other key sent %d batches, want 5", len(bystanderCodes))
		}
		if got, want := userRecords("flooder"), int64(7*codes[200]); got != want {
			t.Errorf("the flooder has %d rows, want 7 × %d accepted = %d: a refused batch wrote", got, codes[200], want)
		}
		if got := userRecords("bystander"); got != 7*5 {
			t.Errorf("the other key has %d rows, want 35", got)
		}
		healthy(t, p.URL)
		if t.Failed() {
			return
		}
		// Waiting as the answer said is all a client needs to be served
		// again: the wait is the protocol under test, not a guess.
		time.Sleep(time.Duration(wait) * time.Second)
		if a := postKeepAlive(t, p.URL, flooder, fixture.MustJSON(fixture.ValidBatch(now))); a.code != 200 {
			t.Fatalf("after waiting Retry-After %d s the flooder got %d %s", wait, a.code, a.raw)
		}
		proof.Figure(t, "abuse", "a flood from one key",
			"%d requests from one key in %v (8 at a time, bucket %d, %.0f/s): %d accepted, %d answered 429 with Retry-After %d s, 0 rows from those; another key 5/5 accepted during the flood; served again after waiting Retry-After; healthy",
			n, elapsed.Round(time.Millisecond), burst, rate, codes[200], codes[429], wait)
	})

	t.Run("unknown_keys", func(t *testing.T) {
		before := snapshot(t, conn)
		const m = 300
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < m; i += workers {
					var r [16]byte
					rand.Read(r[:])
					a := postKeepAlive(t, p.URL, "fred_live_"+hex.EncodeToString(r[:]), fixture.MustJSON(fixture.ValidBatch(now)))
					mu.Lock()
					codes[a.code]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if codes[401] != m {
			t.Errorf("%d made-up keys: answers %v, want all 401", m, codes)
		}
		if d := changes(before, snapshot(t, conn)); len(d) > 0 {
			t.Errorf("unknown keys changed the database: %v", d)
		}
		healthy(t, p.URL)
		if a := postKeepAlive(t, p.URL, bystander, fixture.MustJSON(fixture.ValidBatch(now))); a.code != 200 {
			t.Errorf("a real key after the flood of made-up ones: %d", a.code)
		}
		if !t.Failed() {
			proof.Figure(t, "abuse", "a flood of made-up keys", "%d requests with random keys: %d answered 401, 0 rows written, a real key served after, healthy", m, codes[401])
		}
	})
}
