package dashboard

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/testdb"
	"github.com/fredcode/fredtel/schema"
)

// BenchmarkPages is the server's time per page on a demo-sized fleet (300
// sessions on SQLite), every answer computed afresh (no cache): what a
// page costs before the browser draws it.
//
//	go test -run - -bench Pages -benchtime 20x ./dashboard/
func BenchmarkPages(b *testing.B) {
	db := testdb.SQLite(b)
	fleet(b, db, schema.CentralSet, 300, testNow)
	h, err := New(Config{DBURL: db, Loopback: true, CacheTTL: time.Nanosecond, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range []string{"/dashboard/?since=all", "/dashboard/api/report?since=all", "/dashboard/api/trends?since=all",
		"/dashboard/stuck?since=all", "/dashboard/loops?since=all", "/dashboard/session/0190b000-0000-7000-8000-000000000001"} {
		b.Run(p, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest("GET", p, nil)
				req.Host = "127.0.0.1"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d", p, w.Code)
				}
			}
		})
	}
}
