package central_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fredcode/fredtel/internal/testkit"
)

// TestServerTextReachesTheTerminalClean: what a server says (min_version of
// a 426, the error of a 400) is printed without control characters and
// bounded in length (issue 12 §5).
func TestServerTextReachesTheTerminalClean(t *testing.T) {
	long := strings.Repeat("x", 10000)
	for _, c := range []struct {
		code int
		body string
	}{
		{426, `{"min_version":"\u001b]0;pwned\u0007\u001b[2J9.9.9\r\nfred: all good` + long + `"}`},
		{400, "{\"error\":\"\x1b]0;pwned\x07\x1b[2Jbad\x1b[31m" + long + "\"}"},
	} {
		answer := func(w http.ResponseWriter) { w.WriteHeader(c.code); w.Write([]byte(c.body)) }
		_, url := scriptedServer(t, answer, answer, answer)
		var stderr testkit.Buffer
		s := start(user(t, key), url, &stderr, time.Second)
		record(s, 1)
		s.Close(context.Background())
		out := stderr.String()
		if !strings.Contains(out, "pwned") {
			t.Fatalf("%d: the server's text was not shown at all: %q", c.code, out)
		}
		if strings.ContainsAny(out, "\x1b\x07\r") {
			t.Errorf("%d: control characters reached the terminal: %q", c.code, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if utf8.RuneCountInString(line) > 400 {
				t.Errorf("%d: a line of %d characters: %.100q…", c.code, utf8.RuneCountInString(line), line)
			}
		}
	}
}
