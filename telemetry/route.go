package telemetry

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/internal/redact"
)

// DefaultAPIURL is the central ingest API unless FRED_API_URL says otherwise.
const DefaultAPIURL = "https://api.fredcode.net"

// RouteKind is where a session's records go.
type RouteKind int

// The three routes of SPEC §2.
const (
	Off RouteKind = iota
	SelfHosted
	Central
)

func (k RouteKind) String() string {
	switch k {
	case SelfHosted:
		return "self-hosted"
	case Central:
		return "central"
	}
	return "off"
}

// Rule names the routing rule that decided a route, in the order they are
// tried (SPEC §2).
type Rule string

// The rules.
const (
	RuleFlag         Rule = "--no-telemetry"
	RuleSelfHosted   Rule = "DSC_TELEMETRY_DB_URL"
	RuleDoNotTrack   Rule = "DO_NOT_TRACK"
	RulePreference   Rule = "preference"
	RuleBadPrefs     Rule = "unreadable preferences"
	RuleConfigDir    Rule = "config folder unusable"
	RuleNotLoggedIn  Rule = "not logged in"
	RuleCentral      Rule = "logged in"
	RuleNoticeUnseen Rule = "notice not yet shown"
	RuleNoSender     Rule = "no sender in this build"
	RuleTurnedOff    Rule = "/telemetry off"
)

// Route is the routing decision of one session, made once at its start.
type Route struct {
	Kind RouteKind
	Rule Rule

	dbURL     string // self-hosted target, unmasked: never print it
	MaskedURL string // self-hosted target with the password masked
	NoText    bool   // self-hosted without text (DSC_TELEMETRY_NO_TEXT)

	APIURL string // central target
	apiKey string

	// Warning is a one-line problem the user should see (unreadable
	// preferences), or "".
	Warning string
	// Detail adds to the status line (e.g. why the notice is pending).
	Detail string
}

// routeInput is everything routing depends on, gathered first so that the
// decision itself is a pure function with a table-driven test.
type routeInput struct {
	noTelemetryFlag bool
	getenv          func(string) string
	prefs           Prefs
	prefsErr        error
	creds           Credentials
	credsErr        error
}

// envFlag reads a yes/no variable the privacy-preserving way: anything set
// and not clearly "no" means yes.
func envFlag(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

// resolve applies SPEC §2: the first rule that applies wins.
func resolve(in routeInput) Route {
	env := in.getenv
	switch {
	case in.noTelemetryFlag:
		return Route{Kind: Off, Rule: RuleFlag}
	case env("DSC_TELEMETRY_DB_URL") != "":
		raw := env("DSC_TELEMETRY_DB_URL")
		return Route{Kind: SelfHosted, Rule: RuleSelfHosted, dbURL: raw, MaskedURL: maskURL(raw),
			NoText: envFlag(env("DSC_TELEMETRY_NO_TEXT"))}
	case envFlag(env("DO_NOT_TRACK")):
		return Route{Kind: Off, Rule: RuleDoNotTrack}
	case errors.Is(in.prefsErr, ErrConfigDir), errors.Is(in.credsErr, ErrConfigDir):
		err := in.prefsErr
		if err == nil {
			err = in.credsErr
		}
		return Route{Kind: Off, Rule: RuleConfigDir, Warning: fmt.Sprintf("telemetry is off: %v", err)}
	case in.prefsErr != nil:
		return Route{Kind: Off, Rule: RuleBadPrefs, Warning: fmt.Sprintf("telemetry is off: %v", in.prefsErr)}
	case in.prefs.Off():
		return Route{Kind: Off, Rule: RulePreference}
	case in.credsErr != nil:
		return Route{Kind: Off, Rule: RuleNotLoggedIn, Warning: fmt.Sprintf("telemetry is off: %v", in.credsErr)}
	case in.creds.APIKey == "":
		return Route{Kind: Off, Rule: RuleNotLoggedIn}
	}
	r := Route{Kind: Central, Rule: RuleCentral, APIURL: EnvAPIURL(env), apiKey: in.creds.APIKey}
	if in.prefs.NoticeShownAt == "" {
		r.Rule = RuleNoticeUnseen
	}
	return r
}

// APIURL is the ingest API's base URL as the client uses it: without a
// trailing slash, and without user-info. Requests authenticate with the
// key's Bearer header, which takes the place of any user-info, so a
// user:password@ in FRED_API_URL is never used; dropping it here keeps it
// out of every message that names the endpoint.
func APIURL(raw string) string {
	raw = strings.TrimRight(raw, "/")
	u, err := url.Parse(raw)
	if err != nil {
		// Unusable as a URL (a password holding a "/" makes the host
		// unparseable): requests fail with a clear error, and nothing
		// names it but masked.
		return redact.URL(raw)
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// EnvAPIURL is the ingest API the client sends to: FRED_API_URL, else
// DefaultAPIURL, as APIURL makes it.
func EnvAPIURL(getenv func(string) string) string {
	if api := getenv("FRED_API_URL"); api != "" {
		return APIURL(api)
	}
	return DefaultAPIURL
}

// Status is the one-line answer of /telemetry and `fred telemetry status`.
// Passwords are masked.
func (r Route) Status() string {
	var s string
	switch {
	case r.Kind == SelfHosted:
		text := "text included"
		if r.NoText {
			text = "no text: DSC_TELEMETRY_NO_TEXT"
		}
		s = fmt.Sprintf("self-hosted → %s (%s)", r.MaskedURL, text)
	case r.Rule == RuleNoticeUnseen:
		// The same line whether or not this process could show the notice:
		// the rule that decides is the notice.
		s = fmt.Sprintf("off: the telemetry notice has not been shown on a terminal yet, and nothing is sent until it has; then central → %s as %s",
			maskURL(r.APIURL), apikey.Shown(r.apiKey))
	case r.Kind == Central:
		s = fmt.Sprintf("central → %s as %s", maskURL(r.APIURL), apikey.Shown(r.apiKey))
	default:
		switch r.Rule {
		case RuleFlag:
			s = "off for this session (--no-telemetry)"
		case RuleDoNotTrack:
			s = "off (DO_NOT_TRACK is set)"
		case RulePreference:
			s = "off (turned off; /telemetry on or fred telemetry on turns it back on)"
		case RuleBadPrefs:
			s = "off (the preferences file cannot be read; fred telemetry on|off rewrites it)"
		case RuleConfigDir:
			s = "off (the config folder is missing or not yours alone; see the warning)"
		case RuleNotLoggedIn:
			s = "off (not logged in; fred login turns it on)"
		case RuleNoSender:
			s = "off for this session (this build of Fred has no telemetry sender)"
		case RuleTurnedOff:
			s = "off (turned off during this session; queued records were dropped)"
		default:
			s = "off"
		}
	}
	if r.Detail != "" {
		s += "; " + r.Detail
	}
	return s
}

func maskURL(raw string) string { return redact.URL(raw) }
