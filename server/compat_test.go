package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

var wireTime = regexp.MustCompile(`"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"`)

// shifted is a frozen batch moved to now: every timestamp by the same
// amount (the batch keeps its shape and its clock), a new batch_id.
func shifted(t *testing.T, raw []byte) []byte {
	t.Helper()
	var env struct {
		SentAt string `json:"sent_at"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatal(err)
	}
	sent, err := time.Parse(schema.TimeLayout, env.SentAt)
	if err != nil {
		t.Fatal(err)
	}
	d := time.Since(sent).Truncate(time.Millisecond)
	out := wireTime.ReplaceAllFunc(raw, func(m []byte) []byte {
		tm, err := time.Parse(schema.TimeLayout, string(m[1:len(m)-1]))
		if err != nil {
			t.Fatal(err)
		}
		return []byte(`"` + tm.Add(d).UTC().Format(schema.TimeLayout) + `"`)
	})
	var b map[string]any
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	b["batch_id"] = uuid.Must(uuid.NewV7()).String()
	out, _ = json.Marshal(b)
	return out
}

// TestVersion1BatchesStoredWhole: batches that version 1 clients sent,
// frozen as they were (testdata/wire/v1: one printed by the v1 `fred
// telemetry replay --example`, one with a record of every kind), are
// stored whole by this server: every record, the fields of later versions
// null.
func TestVersion1BatchesStoredWhole(t *testing.T) {
	files, _ := filepath.Glob("testdata/wire/v1/*.json")
	if len(files) < 2 {
		t.Fatalf("frozen v1 batches: %v", files)
	}
	testdb.Each(t, func(t *testing.T, be testdb.Backend) {
		db := be.URL(t)
		p := testkit.StartServer(t, db, "")
		key := testkit.CreateKey(t, db, "old-client")
		want := 0
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var counts map[string]json.RawMessage
			json.Unmarshal(raw, &counts)
			if string(counts["schema_version"]) != "1" {
				t.Fatalf("%s is not a version 1 batch", f)
			}
			n := 0
			for _, r := range schema.Records() {
				var recs []json.RawMessage
				json.Unmarshal(counts[r.Batch()], &recs)
				n += len(recs)
			}
			a := post(t, p, key, shifted(t, raw), nil)
			if a.code != 200 {
				t.Fatalf("%s: %d %v; a v1 batch must be stored", f, a.code, a.body)
			}
			if got := int(a.body["accepted"].(float64) + a.body["duplicates"].(float64)); got != n {
				t.Errorf("%s: accepted+duplicates = %d, want %d", f, got, n)
			}
			want += n
		}
		stored := testdb.Rows(t, db)
		if stored == 0 || stored > want {
			t.Errorf("%d rows stored from %d records", stored, want)
		}
		for _, r := range schema.Records() {
			for _, f := range schema.CentralSet.Columns(r) {
				if f.Since() > 1 {
					q := "SELECT count(*) FROM " + schema.CentralSet.TableName(r) + " WHERE " + f.Name() + " IS NOT NULL"
					if n := testdb.QueryInt(t, db, q); n != 0 {
						t.Errorf("%s.%s set on %d rows of v1 batches", r.Table(), f.Name(), n)
					}
				}
			}
		}
		if n := testdb.QueryInt(t, db, "SELECT count(*) FROM telemetry_events WHERE name = 'api_retry'"); n < 2 {
			t.Errorf("%d api_retry events stored, want the v1 ones (without latency_ms)", n)
		}
	})
}
