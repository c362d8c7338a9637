package telemetry

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestResolveEveryRuleAndEveryPair: each rule of SPEC §2 alone, then every
// pair of competing rules, where the earlier rule must win.
func TestResolveEveryRuleAndEveryPair(t *testing.T) {
	type cond struct {
		name  string
		apply func(*routeInput, map[string]string)
		kind  RouteKind
		rule  Rule
	}
	loggedIn := Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"}
	conds := []cond{ // in precedence order
		{"flag", func(in *routeInput, _ map[string]string) { in.noTelemetryFlag = true }, Off, RuleFlag},
		{"self-hosted", func(_ *routeInput, e map[string]string) { e["DSC_TELEMETRY_DB_URL"] = "postgres://a:pw@db/x" }, SelfHosted, RuleSelfHosted},
		{"do-not-track", func(_ *routeInput, e map[string]string) { e["DO_NOT_TRACK"] = "1" }, Off, RuleDoNotTrack},
		{"bad prefs", func(in *routeInput, _ map[string]string) { in.prefsErr = errors.New("garbage") }, Off, RuleBadPrefs},
		{"pref off", func(in *routeInput, _ map[string]string) { in.prefs.Telemetry = "off" }, Off, RulePreference},
		{"logged out", func(in *routeInput, _ map[string]string) { in.creds = Credentials{} }, Off, RuleNotLoggedIn},
	}
	base := func() (routeInput, map[string]string) {
		env := map[string]string{}
		return routeInput{getenv: envOf(env), creds: loggedIn, prefs: Prefs{NoticeShownAt: "2026-01-01T00:00:00Z"}}, env
	}
	in, _ := base()
	if r := resolve(in); r.Kind != Central || r.Rule != RuleCentral || r.APIURL != DefaultAPIURL {
		t.Fatalf("no rule applies: %+v, want central to %s", r, DefaultAPIURL)
	}
	for _, c := range conds {
		in, env := base()
		c.apply(&in, env)
		if r := resolve(in); r.Kind != c.kind || r.Rule != c.rule {
			t.Errorf("%s alone: %v/%q, want %v/%q", c.name, r.Kind, r.Rule, c.kind, c.rule)
		}
	}
	for i, a := range conds {
		for _, b := range conds[i+1:] {
			in, env := base()
			a.apply(&in, env)
			b.apply(&in, env)
			if r := resolve(in); r.Kind != a.kind || r.Rule != a.rule {
				t.Errorf("%s + %s: %v/%q, want the earlier rule %s (%v/%q)", a.name, b.name, r.Kind, r.Rule, a.name, a.kind, a.rule)
			}
		}
	}
}

func TestResolveDetails(t *testing.T) {
	in := routeInput{getenv: envOf(map[string]string{"DSC_TELEMETRY_DB_URL": "sqlite:/tmp/t.db", "DSC_TELEMETRY_NO_TEXT": "1"})}
	if r := resolve(in); !r.NoText || r.dbURL != "sqlite:/tmp/t.db" {
		t.Errorf("no-text self-hosted: %+v", r)
	}
	for v, off := range map[string]bool{"1": true, "true": true, "yes": true, "0": false, "": false, "false": false} {
		in := routeInput{getenv: envOf(map[string]string{"DO_NOT_TRACK": v}), creds: Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"}}
		if got := resolve(in).Kind == Off; got != off {
			t.Errorf("DO_NOT_TRACK=%q: off=%v, want %v", v, got, off)
		}
	}
	in = routeInput{getenv: envOf(map[string]string{"FRED_API_URL": "http://127.0.0.1:8700/"}), creds: Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"}}
	if r := resolve(in); r.APIURL != "http://127.0.0.1:8700" || r.Rule != RuleNoticeUnseen {
		t.Errorf("FRED_API_URL and a notice never shown: %+v", r)
	}
}

func TestStatusLines(t *testing.T) {
	key := "fred_live_ab12cd34ef56gh78ij90kl"
	for _, c := range []struct {
		r    Route
		want string
	}{
		{Route{Kind: Central, Rule: RuleCentral, APIURL: DefaultAPIURL, apiKey: key}, "central → https://api.fredcode.net as fred_live_ab12…"},
		{Route{Kind: Off, Rule: RuleFlag}, "off for this session (--no-telemetry)"},
		{resolve(routeInput{getenv: envOf(map[string]string{"DSC_TELEMETRY_DB_URL": "postgresql://alice:s3cret@db:5432/fred"})}), "self-hosted → postgresql://alice:***@db:5432/fred (text included)"},
		{resolve(routeInput{getenv: envOf(map[string]string{"DSC_TELEMETRY_DB_URL": "sqlite:/x.db", "DSC_TELEMETRY_NO_TEXT": "1"})}), "self-hosted → sqlite:/x.db (no text: DSC_TELEMETRY_NO_TEXT)"},
		{Route{Kind: Off, Rule: RuleDoNotTrack}, "off (DO_NOT_TRACK is set)"},
		{Route{Kind: Off, Rule: RulePreference}, "off (turned off; /telemetry on or fred telemetry on turns it back on)"},
		{Route{Kind: Off, Rule: RuleNotLoggedIn}, "off (not logged in; fred login turns it on)"},
		{Route{Kind: Off, Rule: RuleBadPrefs}, "off (the preferences file cannot be read; fred telemetry on|off rewrites it)"},
		// The notice decides, whether or not this process could show it:
		// one line.
		{Route{Kind: Off, Rule: RuleNoticeUnseen, APIURL: "https://u:pw@api.example", apiKey: key},
			"off: the telemetry notice has not been shown on a terminal yet, and nothing is sent until it has; then central → https://***@api.example as fred_live_ab12…"},
		{Route{Kind: Central, Rule: RuleNoticeUnseen, APIURL: "https://u:pw@api.example", apiKey: key},
			"off: the telemetry notice has not been shown on a terminal yet, and nothing is sent until it has; then central → https://***@api.example as fred_live_ab12…"},
	} {
		if got := c.r.Status(); got != c.want {
			t.Errorf("status\n got %q\nwant %q", got, c.want)
		}
		if strings.Contains(c.r.Status(), "s3cret") || strings.Contains(c.r.Status(), key) {
			t.Errorf("status shows a secret: %q", c.r.Status())
		}
	}
}

func TestResolveKnowsASenderFactory(t *testing.T) {
	dir := t.TempDir()
	SaveCredentials(dir, Credentials{APIKey: "fred_live_ab12cd34ef56gh78ij90kl"})
	env := envOf(map[string]string{"FRED_CONFIG_DIR": dir})
	if r := Resolve(Options{Getenv: env}); r.Rule != RuleNoSender {
		t.Errorf("no sender at all: %q", r.Rule)
	}
	factory := func(CentralConfig) (CentralSink, error) { return nil, nil }
	for _, terminal := range []bool{true, false} {
		r := Resolve(Options{Getenv: env, NewCentral: factory, StderrIsTerminal: func() bool { return terminal }})
		want := map[bool]RouteKind{true: Central, false: Off}[terminal] // the notice can be shown, or not
		if r.Kind != want || r.Rule != RuleNoticeUnseen {
			t.Errorf("with a sender factory, terminal %v: %v %q, want %v waiting for the notice", terminal, r.Kind, r.Rule, want)
		}
	}
}

// TestSlashTelemetrySaysWhatStatusSays: /telemetry in a session (before it
// records anything) and `fred telemetry status` (Resolve) print the same
// line on every route, including before the notice has been shown, where
// the session used to name the wrong rule ("no telemetry sender").
func TestSlashTelemetrySaysWhatStatusSays(t *testing.T) {
	factory := func(CentralConfig) (CentralSink, error) { return &recSink{}, nil }
	for _, c := range []struct {
		name             string
		loggedIn, notice bool
		env              map[string]string
		flag, noSender   bool
		prefsOff         bool
		want             string
	}{
		{name: "notice unseen, no terminal", loggedIn: true, want: "the telemetry notice has not been shown on a terminal yet"},
		{name: "central", loggedIn: true, notice: true, want: "central → https://api.fredcode.net as fred_live_ab12…"},
		{name: "not logged in", notice: true, want: "not logged in"},
		{name: "--no-telemetry", loggedIn: true, notice: true, flag: true, want: "--no-telemetry"},
		{name: "DO_NOT_TRACK", loggedIn: true, notice: true, env: map[string]string{"DO_NOT_TRACK": "1"}, want: "DO_NOT_TRACK"},
		{name: "preference off", loggedIn: true, notice: true, prefsOff: true, want: "turned off"},
		{name: "no sender", loggedIn: true, notice: true, noSender: true, want: "no telemetry sender"},
		{name: "self-hosted", env: map[string]string{"DSC_TELEMETRY_DB_URL": "postgresql://alice:s3cret@db/fred"}, want: "self-hosted → postgresql://alice:***@db/fred"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := configDir(t, c.loggedIn, c.notice)
			if c.prefsOff {
				SetTelemetry(dir, false)
			}
			opts := testOptions(dir, c.env, &testkit.Buffer{})
			opts.NoTelemetry = c.flag
			opts.SelfHosted = func(context.Context, string) (LocalSink, error) { return &memLocal{}, nil }
			if !c.noSender {
				opts.NewCentral = factory
			}
			want := Resolve(opts).Status()
			s := Start(opts, SessionInfo{})
			defer s.Close(context.Background())
			got := strings.TrimPrefix(s.HandleSlash(""), "telemetry: ")
			if got != want || !strings.Contains(got, c.want) {
				t.Errorf("/telemetry says %q\nfred telemetry status says %q\nwant both to say %q", got, want, c.want)
			}
		})
	}
}
