package central_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
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
		s := start(fixture.LoggedIn(t, key), url, &stderr, time.Second)
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

// TestReasonPhraseNeverShown: a status line's reason phrase is the
// server's text too; messages name the answer by its code.
func TestReasonPhraseNeverShown(t *testing.T) {
	url, _ := testkit.Listener(t, func(c net.Conn) {
		go func() {
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				c.Write([]byte("HTTP/1.1 401 \x1b]0;pwned\x07\x1b[2JUnauthorized\r\nContent-Length: 0\r\n\r\n"))
			}
		}()
	})
	var stderr testkit.Buffer
	s := start(fixture.LoggedIn(t, key), url, &stderr, time.Second)
	record(s, 1)
	s.Close(context.Background())
	out := stderr.String()
	if !strings.Contains(out, "401 Unauthorized") {
		t.Fatalf("the 401 was not reported: %q", out)
	}
	if strings.ContainsAny(out, "\x1b\x07") || strings.Contains(out, "pwned") {
		t.Errorf("the reason phrase reached the terminal: %q", out)
	}
}
