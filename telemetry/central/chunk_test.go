package central

import (
	"testing"

	"github.com/fredcode/fredtel/schema"
	"github.com/fredcode/fredtel/telemetry"
)

func TestChunks(t *testing.T) {
	b := &telemetry.RemoteBatch{
		Sessions: make([]schema.RemoteSession, 2), Turns: make([]schema.RemoteTurn, 7),
		ToolCalls: make([]schema.RemoteToolCall, 11), Events: make([]schema.RemoteEvent, 3),
	}
	cs := chunks(b, 5)
	total := 0
	for i, c := range cs {
		if c.Len() == 0 || c.Len() > 5 {
			t.Fatalf("chunk %d has %d records", i, c.Len())
		}
		total += c.Len()
	}
	if total != b.Len() || len(cs) != 5 {
		t.Fatalf("%d chunks with %d records, want 5 with %d", len(cs), total, b.Len())
	}
	if len(cs[0].Sessions) != 2 || len(cs[0].Turns) != 3 {
		t.Fatalf("first chunk %+v: sessions first", cs[0])
	}
	if got := chunks(&telemetry.RemoteBatch{}, 5); len(got) != 0 {
		t.Fatalf("empty batch: %d chunks", len(got))
	}
}
