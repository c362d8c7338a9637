package fredtel

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestProgressOnlyOnATerminal: simulate and demo draw a progress bar on a
// terminal's stderr, and write nothing to a pipe or a file.
func TestProgressOnlyOnATerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 10, "simulating sessions")
	for range 10 {
		p.add()
	}
	p.finish()
	if buf.Len() != 0 || p.bar != nil {
		t.Errorf("a bar off a terminal: %q", buf.String())
	}

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	got := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(ptmx) // until the tty closes
		got <- string(b)
	}()
	p = newProgress(tty, 10, "simulating sessions")
	for range 10 {
		p.add()
		time.Sleep(10 * time.Millisecond)
	}
	p.finish()
	tty.Close()
	var out string
	select {
	case out = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no output from the terminal")
	}
	if !strings.Contains(out, "simulating sessions") || !strings.Contains(out, "/10") {
		t.Errorf("no progress bar on a terminal: %q", out)
	}
}
