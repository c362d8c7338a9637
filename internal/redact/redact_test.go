package redact

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestURLMasksEveryForm: every way a secret is written in a database or API
// location is masked, and what is not secret is shown as it was written.
// The first cases are the reproductions (issue 12 §5), which main
// printed whole.
func TestURLMasksEveryForm(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
		secrets        []string
	}{
		{"keyword/value", "host=db user=alice password=s3cret", "host=db user=alice password=***", []string{"s3cret"}},
		{"URL sslpassword", "postgres://alice@db/fred?sslmode=require&sslpassword=k3ypass", "postgres://alice@db/fred?sslmode=require&sslpassword=***", []string{"k3ypass"}},
		{"API URL user-info", "http://user:secret@api.example:8080/", "http://***@api.example:8080/", []string{"secret", "user"}},

		{"user-info", "postgres://alice:s3cret@db:5432/fred", "postgres://alice:***@db:5432/fred", []string{"s3cret"}},
		{"user-info postgresql", "postgresql://alice:s3cret@db/fred?sslmode=disable", "postgresql://alice:***@db/fred?sslmode=disable", []string{"s3cret"}},
		{"user without password", "postgres://alice@db/fred", "postgres://alice@db/fred", nil},
		{"percent-encoded password", "postgres://u:p%40ss@h/db", "postgres://u:***@h/db", []string{"p%40ss", "p@ss"}},
		{"password with @ / ? #", "postgres://u:p@s/s?x#y@h/db", "postgres://u:***@h/db", []string{"p@s", "s?x#y"}},
		{"password with / and no user", "postgres://p/ss@h/db", "postgres://***@h/db", []string{"p/ss"}},
		{"bad port", "postgres://u:p w@h:bad/db", "postgres://u:***@h:bad/db", []string{"p w"}},
		{"query password", "postgres://alice@/fred?host=/var/run/postgresql&password=hunter2", "postgres://alice@/fred?host=/var/run/postgresql&password=***", []string{"hunter2"}},
		{"query password and user-info", "postgres://u:pw1@h/db?password=pw2", "postgres://u:***@h/db?password=***", []string{"pw1", "pw2"}},
		{"query passfile", "postgres://h/db?passfile=/home/a/.pgpass", "postgres://h/db?passfile=***", []string{".pgpass"}},
		{"query case and encoding", "postgres://h/db?PassWord=x1&pass%77ord=x2&api_token=x3&client_secret=x4", "postgres://h/db?PassWord=***&pass%77ord=***&api_token=***&client_secret=***", []string{"x1", "x2", "x3", "x4"}},
		{"query value with #", "postgres://h/db?password=a#bc&sslmode=require", "postgres://h/db?password=***&sslmode=require", []string{"bc"}},
		{"query bad escape", "postgres://h/db?password=%zz9", "postgres://h/db?password=***", []string{"zz9"}},
		{"API URL token user", "https://ghp_T0KEN@api.example", "https://***@api.example", []string{"ghp_T0KEN"}},
		{"API URL query token", "https://api.example/?token=abc123", "https://api.example/?token=***", []string{"abc123"}},
		{"keyword/value spaces around =", "host = db password = s3cret dbname=x", "host = db password=*** dbname=x", []string{"s3cret"}},
		{"keyword/value quoted", `host=db password='s3 cr\'et' dbname=x`, `host=db password=*** dbname=x`, []string{"s3", `cr\'et`}},
		{"keyword/value sslpassword and passfile", "sslpassword=k1 passfile=/x/.pgpass user=a", "sslpassword=*** passfile=*** user=a", []string{"k1", ".pgpass"}},
		{"keyword/value unterminated quote", "user=a password='s3cret dbname=x", "user=a password=***", []string{"s3cret"}},
		{"keyword/value garbage after", "user=a garbage password=s3cret", "user=a ***", []string{"s3cret"}},
		{"keyword/value escaped space", `password=s3\ cret user=a`, "password=*** user=a", []string{"s3", "cret"}},
		{"sqlite", "sqlite:/var/lib/fred/t.db", "sqlite:/var/lib/fred/t.db", nil},
		{"sqlite with query", "sqlite:/tmp/a.db?password=x9", "sqlite:/tmp/a.db?password=***", []string{"x9"}},
		{"no parameters", "/tmp/fred.db", "/tmp/fred.db", nil},
		{"empty", "", "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := URL(c.in)
			if got != c.want {
				t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
			}
			for _, s := range c.secrets {
				if strings.Contains(got, s) {
					t.Errorf("URL(%q) = %q shows %q", c.in, got, s)
				}
			}
		})
	}
}

func TestSecretKey(t *testing.T) {
	for _, k := range []string{"password", "sslpassword", "passfile", "PASSWORD", "pwd", "client_secret", "api-token", "apikey", "sslkey", "access_key", "require_auth", "credentials"} {
		if !SecretKey(k) {
			t.Errorf("SecretKey(%q) = false", k)
		}
	}
	for _, k := range []string{"host", "user", "dbname", "sslmode", "port", "application_name", "connect_timeout", "options", "keepalives", "target_session_attrs"} {
		if SecretKey(k) {
			t.Errorf("SecretKey(%q) = true", k)
		}
	}
}

// TestTerminal: text from a server reaches the terminal without control
// characters, escape sequences, bidirectional overrides or invalid UTF-8,
// and bounded in length.
func TestTerminal(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"9.9.9", 40, "9.9.9"},
		{"1.0\x1b]0;pwned\x07\x1b[2J", 40, "1.0?]0;pwned??[2J"},
		{"alice\r\nfred: key accepted", 40, "alice fred: key accepted"},
		{"a\u202egnp.exe", 40, "a?gnp.exe"},
		{"a\u200bb\u00adc", 40, "a?b?c"},
		{"x\xff\xfey", 40, "x??y"},
		{"\u009b31m", 40, "?31m"},
		{strings.Repeat("a", 100), 10, strings.Repeat("a", 9) + "…"},
		{"ÅÅÅ", 3, "ÅÅÅ"},
		{"ÅÅÅÅ", 3, "ÅÅ…"},
		{"anything", 0, ""},
	} {
		got := Terminal(c.in, c.max)
		if got != c.want {
			t.Errorf("Terminal(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
		if utf8.RuneCountInString(got) > c.max {
			t.Errorf("Terminal(%q, %d) = %q: longer than %d", c.in, c.max, got, c.max)
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
				t.Errorf("Terminal(%q) = %q keeps control character %U", c.in, got, r)
			}
		}
	}
}
