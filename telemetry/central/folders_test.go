package central_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fredcode/fredtel/internal/testing/fixture"
	"github.com/fredcode/fredtel/internal/testing/testkit"
	"github.com/fredcode/fredtel/telemetry"
	"github.com/fredcode/fredtel/telemetry/central"
)

// The attacks of issue 12 §4 on the client's folders. Each fails on the
// main of that day (the spool reader followed symlinks and posted what it
// read; the audit pruned whatever audit/ pointed to; a folder someone else
// made was used as it was).

// spooledBatch returns the body of a batch the sender spooled: a file any
// sender would send.
func spooledBatch(t *testing.T) []byte {
	t.Helper()
	dir := fixture.LoggedIn(t, key)
	s := start(dir, testkit.Blackhole(t), &testkit.Buffer{}, 600*time.Millisecond) // the last quarter spools
	record(s, 1)
	s.Close(context.Background())
	des, err := os.ReadDir(filepath.Join(dir, "spool"))
	if err != nil || len(des) == 0 {
		t.Fatalf("nothing spooled: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "spool", des[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// private is another folder of the user's (their documents): files with the
// spool's and the audit's names, holding a batch, and others.
func private(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "private")
	os.Mkdir(dir, 0o700)
	batch := string(spooledBatch(t))
	files := map[string]string{
		"1700000000000000000-aaaaaaaaaaaa.json": batch,
		"1700000000000000001-bbbbbbbbbbbb.json": "PRIVATE-DIARY-ENTRY",
		"diary.txt":                             "PRIVATE-DIARY-ENTRY",
	}
	for i := 0; i < 15; i++ { // more than the audit keeps: pruning would delete some
		files[fmt.Sprintf("%020d-sent-1700000000000000000-%012x.json", 1700000000000000000+i, i)] = "PRIVATE-DIARY-ENTRY"
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, files
}

// untouched fails t unless dir holds exactly files.
func untouched(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != len(files) {
		t.Errorf("the private folder holds %d files, want its %d", len(des), len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("private file %s: deleted or changed (%v)", name, err)
		}
	}
}

func noneSent(t *testing.T, r *scripted) {
	t.Helper()
	for _, b := range r.posted() {
		if strings.Contains(b, "PRIVATE") || strings.Contains(b, `"batch_id"`) {
			t.Errorf("posted %d bytes read through the link: %.200s", len(b), b)
		}
	}
}

// TestSymlinkedSpoolIsNeverFollowed: spool/ is a link to a private folder.
// Nothing there is read, posted or deleted: not by a session (the sender
// refuses to start, with a warning), not by a sender already running, not
// by `fred telemetry off`, `show` or `fred logout`.
func TestSymlinkedSpoolIsNeverFollowed(t *testing.T) {
	priv, files := private(t)
	dir := fixture.LoggedIn(t, key)
	if err := os.Symlink(priv, filepath.Join(dir, "spool")); err != nil {
		t.Fatal(err)
	}
	bad := status(http.StatusBadRequest) // as the real server answers a file that is not a batch
	rec, url := scriptedServer(t, bad, bad, bad, bad, bad, bad, bad, bad)

	var stderr testkit.Buffer
	s := start(dir, url, &stderr, time.Second)
	record(s, 2)
	s.Close(context.Background())
	if r := s.Route(); r.Kind != telemetry.Off || r.Rule != telemetry.RuleConfigDir {
		t.Errorf("route %v (%s) with a symlinked spool, want off: %s", r, r.Rule, telemetry.RuleConfigDir)
	}
	env := map[string]string{"FRED_CONFIG_DIR": dir, "FRED_API_URL": url}
	if r := telemetry.Resolve(telemetry.Options{Getenv: func(k string) string { return env[k] }, NewCentral: central.New}); r.Rule != telemetry.RuleConfigDir {
		t.Errorf("the status line says %q, want off: the config folder", r.Status())
	}
	if w := stderr.String(); strings.Count(w, "\n") != 1 || !strings.Contains(w, "symbolic link") {
		t.Errorf("want one warning line naming the symbolic link, got %q", w)
	}

	// A sender that started before the link appeared.
	snd := central.NewSender(telemetry.CentralConfig{APIURL: url, APIKey: key, ConfigDir: dir, FredVersion: "1.4.2"})
	for i := 0; i < 3; i++ {
		snd.SendBacklog(context.Background())
	}
	snd.Spool(context.Background(), &telemetry.RemoteBatch{})
	snd.Close(context.Background())
	if b, n := central.SpoolSize(dir); b != 0 || n != 0 {
		t.Errorf("SpoolSize counts the private folder: %d files, %d bytes", b, n)
	}
	if err := central.PurgeSpool(dir); err == nil {
		t.Error("PurgeSpool through a symlinked spool: no error")
	}
	noneSent(t, rec)
	untouched(t, priv, files)
}

// TestSymlinkedAuditIsNeverFollowed: audit/ is a link to a private folder
// holding more files of the audit's names than the audit keeps. Nothing
// there is read, shown, written or pruned.
func TestSymlinkedAuditIsNeverFollowed(t *testing.T) {
	priv, files := private(t)
	dir := fixture.LoggedIn(t, key)
	if err := os.Symlink(priv, filepath.Join(dir, "audit")); err != nil {
		t.Fatal(err)
	}
	rec, url := scriptedServer(t)
	var stderr testkit.Buffer
	s := start(dir, url, &stderr, time.Second)
	record(s, 2)
	s.Close(context.Background())
	if r := s.Route(); r.Kind != telemetry.Off || !strings.Contains(stderr.String(), "symbolic link") {
		t.Errorf("route %v, stderr %q: want off with a warning", r, stderr.String())
	}
	if len(rec.posted()) != 0 {
		t.Errorf("%d batches sent by a sender whose audit folder is a link", len(rec.posted()))
	}
	// A sender already running writes its audit at Close.
	snd := central.NewSender(telemetry.CentralConfig{APIURL: url, APIKey: key, ConfigDir: dir, FredVersion: "1.4.2"})
	for i := 0; i < 12; i++ {
		snd.Send(context.Background(), &telemetry.RemoteBatch{})
	}
	snd.Close(context.Background())
	var out bytes.Buffer
	n, err := central.Show(dir, &out)
	if err == nil || n != 0 || strings.Contains(out.String(), "PRIVATE") {
		t.Errorf("Show through a symlinked audit: %d shown, err %v, output %.200q", n, err, out.String())
	}
	untouched(t, priv, files)
}

// TestForeignFilesInTheSpool: in a spool of the user's own, only regular
// files of the sender's names are read, sent or deleted; a link named like
// a spooled batch is not followed; a file of a spooled batch's name that is
// not a batch the server accepts (a field off the allowlist, text) is never
// sent.
func TestForeignFilesInTheSpool(t *testing.T) {
	priv, files := private(t)
	dir := fixture.LoggedIn(t, key)
	spool := filepath.Join(dir, "spool")
	os.Mkdir(spool, 0o700)
	batch := spooledBatch(t)
	smuggled := strings.Replace(string(batch), `"turns":[{`, `"turns":[{"user_input":"PRIVATE-PROMPT",`, 1)
	if smuggled == string(batch) {
		t.Fatal("the spooled batch has no turn to smuggle text into")
	}
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(spool, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("1600000000000000000-000000000001.json", smuggled)
	write("1600000000000000001-000000000002.json", "PRIVATE-NOT-JSON")
	write("notes.txt", "PRIVATE-NOTES")
	os.Mkdir(filepath.Join(spool, "1600000000000000002-000000000003.json"), 0o700)
	if err := os.Symlink(filepath.Join(priv, "1700000000000000000-aaaaaaaaaaaa.json"), filepath.Join(spool, "1600000000000000003-000000000004.json")); err != nil {
		t.Fatal(err)
	}
	write("1600000000000000004-000000000005.json", string(batch)) // a real one: it goes

	rec, url := scriptedServer(t)
	snd := central.NewSender(telemetry.CentralConfig{APIURL: url, APIKey: key, ConfigDir: dir, FredVersion: "1.4.2"})
	for i := 0; i < 4; i++ {
		snd.SendBacklog(context.Background())
	}
	snd.Close(context.Background())
	posted := rec.posted()
	if len(posted) != 1 {
		t.Errorf("%d bodies posted, want the one real batch", len(posted))
	}
	for _, b := range posted {
		if strings.Contains(b, "PRIVATE") {
			t.Errorf("posted a foreign file: %.200s", b)
		}
	}
	if err := central.PurgeSpool(dir); err != nil {
		t.Fatal(err)
	}
	des, _ := os.ReadDir(spool)
	var left []string
	for _, de := range des {
		left = append(left, de.Name())
	}
	want := "1600000000000000002-000000000003.json 1600000000000000003-000000000004.json notes.txt"
	if strings.Join(left, " ") != want {
		t.Errorf("after purge the spool holds %q, want only what the sender did not write: %q", left, want)
	}
	untouched(t, priv, files)
}

// TestForeignConfigFolderIsRefused: a config folder someone else made (the
// old /tmp fallback), or that anyone may write in (mode 0777), with a key,
// a preference and a spool in it: telemetry is off with one warning line,
// nothing is sent, nothing deleted.
func TestForeignConfigFolderIsRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		why   string
	}{
		{"mode 0777", func(t *testing.T, dir string) { os.Chmod(dir, 0o777) }, "writable by others"},
		{"group-writable", func(t *testing.T, dir string) { os.Chmod(dir, 0o770) }, "writable by others"},
		{"another user's", func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("making a folder another user's takes root (chown); the mode cases run as anyone")
			}
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "belongs to another user"},
		{"a symbolic link", nil, "symbolic link"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := fixture.LoggedIn(t, key)
			s := start(dir, testkit.Blackhole(t), &testkit.Buffer{}, 600*time.Millisecond) // the last quarter spools
			record(s, 1)
			s.Close(context.Background()) // a spool to be sent, or deleted
			spooled, _ := central.SpoolSize(dir)
			if spooled == 0 {
				t.Fatal("nothing spooled")
			}
			if c.setup != nil {
				c.setup(t, dir)
			} else {
				link := filepath.Join(t.TempDir(), "fred-link")
				if err := os.Symlink(dir, link); err != nil {
					t.Fatal(err)
				}
				dir = link
			}
			rec, url := scriptedServer(t)
			var stderr testkit.Buffer
			s = start(dir, url, &stderr, time.Second)
			record(s, 2)
			s.Close(context.Background())
			r := s.Route()
			if r.Kind != telemetry.Off || r.Rule != telemetry.RuleConfigDir {
				t.Errorf("route %v (%s), want off: %s", r.Kind, r.Rule, telemetry.RuleConfigDir)
			}
			if w := stderr.String(); strings.Count(w, "\n") != 1 || !strings.Contains(w, c.why) {
				t.Errorf("want one warning line saying %q, got %q", c.why, w)
			}
			if n := len(rec.posted()); n != 0 {
				t.Errorf("%d batches sent from a folder that is not the user's own", n)
			}
			if err := central.PurgeSpool(dir); err == nil {
				t.Error("PurgeSpool in a folder that is not the user's own: no error")
			}
			real, _ := filepath.EvalSymlinks(dir)
			if des, _ := os.ReadDir(filepath.Join(real, "spool")); len(des) != spooled {
				t.Errorf("the spool went from %d files to %d", spooled, len(des))
			}
		})
	}
}
