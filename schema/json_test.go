package schema_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/schema"
)

// TestAppendJSONMatchesEncodingJSON: the generated encoders write exactly
// what encoding/json writes for the same records, nulls, escapes and all.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	g := fixture.New(7, time.Now())
	check := func(name string, got []byte, v any) {
		t.Helper()
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("%s\n got %s\nwant %s", name, got, want)
		}
	}
	for i := 0; i < 200; i++ {
		s := g.Session()
		if i%3 == 0 {
			s.EndedAt = schema.TimeOf(time.Now())
			s.AgentsMDHash = schema.Hash{}
			s.ToolCatalog = nil
			s.Model = "odd\"<name>\n\u2028é"
		}
		rs := s.Remote()
		check("session", rs.AppendJSON(nil), rs)
		tr := g.Turn(s.SessionID, i)
		rt := tr.Remote()
		check("turn", rt.AppendJSON(nil), rt)
		tc := g.ToolCall(s.SessionID, tr.TurnID, i)
		rc := tc.Remote()
		check("tool call", rc.AppendJSON(nil), rc)
		ev := g.Event(s.SessionID)
		re := ev.Remote()
		check("event", re.AppendJSON(nil), re)
	}
	var empty schema.RemoteEvent
	check("zero event", empty.AppendJSON(nil), empty)
}

func BenchmarkAppendJSONToolCall(b *testing.B) {
	g := fixture.New(1, time.Now())
	s := g.Session()
	rc := g.ToolCall(s.SessionID, g.ID(), 0)
	r := rc.Remote()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}
