package insights

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

func TestParsePrices(t *testing.T) {
	p, err := ParsePrices(strings.NewReader("# currency EUR\n\n# model in out\nfred-flash  0.10 0.40\nfred-pro 1.25 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Currency != "EUR" || p.Models["fred-flash"] != (Price{0.10, 0.40}) || p.Models["fred-pro"] != (Price{1.25, 10}) || len(p.Models) != 2 {
		t.Errorf("parsed %+v", p)
	}
	for _, c := range []struct{ in, want string }{
		{"fred-flash 0.1\n", ":1: want MODEL INPUT_PER_1M OUTPUT_PER_1M, got 2 fields"},
		{"# x\nfred-flash 0.1 -2\n", ":2: output price: want a number ≥ 0"},
		{"fred-flash NaN 1\n", ":1: input price: want a number ≥ 0"},
		{"a;b 1 1\n", ":1: model: want a model id"},
		{"m 1 1\nm 2 2\n", ":2: model m priced twice"},
		{"# currency dollars\nm 1 1\n", ":1: currency: want a 3-letter code"},
		{"# only comments\n", ": no model priced"},
		{strings.Repeat("x", 5000) + "\n", ":1: line longer than 4096 bytes"},
	} {
		_, err := ParsePrices(strings.NewReader(c.in))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%.40q: error %v, want %q", c.in, err, c.want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "p.txt")
	os.WriteFile(path, []byte("m 1 1\nn 1 x\n"), 0o600)
	if _, err := LoadPrices(path); err == nil || err.Error() != "prices "+path+":2: output price: want a number ≥ 0" {
		t.Errorf("LoadPrices: %v", err)
	}
}

// TestCosts: a priced model's problems cost money; an unpriced model's are
// listed, never counted as 0; the problems rank by time when a cost is
// incomplete.
func TestCosts(t *testing.T) {
	f := newFx(t)
	// A stuck loop on fred-pro (priced): 4 calls in one turn of 1M in, 100k out.
	s := f.session("u1", 0, "fred-pro")
	tid := s.turn(turnSpec{model: "fred-pro", in: 1_000_000, out: 100_000})
	for i := 0; i < 4; i++ {
		s.call(tid, i, "bash", 1, 1, "", 10)
	}
	// A stuck session on fred-flash (unpriced): 3 struggles, 10 s each.
	u := f.session("u2", 1, "fred-flash")
	for i := 0; i < 3; i++ {
		u.turn(turnSpec{model: "fred-flash", finish: "length", in: 500, out: 50, ms: 10_000})
	}
	url := testdb.SQLite(t)
	f.write(url, schema.CentralSet)
	prices := &Prices{Currency: "USD", Models: map[string]Price{"fred-pro": {InputPerM: 1.25, OutputPerM: 10}}}
	r := compute(t, url, Options{Prices: prices})
	if r.Prices == nil || !equalSlices(r.Prices.Unpriced, []string{"fred-flash"}) || r.Prices.Currency != "USD" {
		t.Fatalf("prices %+v", r.Prices)
	}
	if len(r.ToolLoops.Loops) != 1 {
		t.Fatalf("loops %+v", r.ToolLoops.Loops)
	}
	if c := r.ToolLoops.Loops[0].Impact.Cost; c == nil || !near(*c, 1.25+1) {
		t.Errorf("loop cost %v, want 2.25", c)
	}
	st := r.Stuck.StuckSessions
	if len(st) != 1 || st[0].Impact.Cost != nil || st[0].Impact.UnpricedTokens != 1650 {
		t.Errorf("stuck on an unpriced model: %+v", st)
	}
	// 30 s of stuck session before 40 ms of loop: by time, as a cost is missing.
	if len(r.Problems) < 2 || r.Problems[0].Kind != "stuck_sessions" || r.Problems[1].Kind != "tool_loops" {
		t.Errorf("problems %+v", r.Problems)
	}
	// Without prices, no money anywhere.
	r = compute(t, url, Options{})
	if r.Prices != nil || r.ToolLoops.Loops[0].Impact.Cost != nil || r.Problems[0].Impact.Cost != nil {
		t.Errorf("money without a prices file: %+v", r.Problems)
	}
	// Every model priced: ranked by cost (the loop's 2.25 first).
	prices.Models["fred-flash"] = Price{InputPerM: 0.1, OutputPerM: 0.4}
	r = compute(t, url, Options{Prices: prices})
	if len(r.Prices.Unpriced) != 0 || r.Problems[0].Kind != "tool_loops" || !near(*r.Problems[1].Impact.Cost, (1500*0.1+150*0.4)/1e6) {
		t.Errorf("all priced: %+v, problems %+v", r.Prices, r.Problems)
	}
}
