package schema

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDeclarationIsWellFormed checks the rules every other derivation relies
// on: unique names, one key, bounds and shapes that fit each kind.
func TestDeclarationIsWellFormed(t *testing.T) {
	tables := map[string]bool{}
	for _, r := range Records() {
		if tables[r.table] || tables[r.batch] && r.batch != r.table {
			t.Errorf("record %s: table or batch name reused", r.name)
		}
		tables[r.table] = true
		if r.Field(r.timeField) == nil || r.Field(r.timeField).kind != KindTime {
			t.Errorf("record %s: time field %q is not a declared time", r.name, r.timeField)
		}
		keys := 0
		seen := map[string]bool{}
		for _, f := range r.fields {
			checkField(t, r.name, f)
			if seen[f.name] {
				t.Errorf("%s.%s declared twice", r.name, f.name)
			}
			seen[f.name] = true
			if f.key {
				keys++
				if f.kind != KindUUID || f.scope != Central || f.nullable {
					t.Errorf("%s.%s: a key is a central, non-null uuid", r.name, f.name)
				}
			}
			if f.scope == Server && r.Field("user_id") == nil {
				t.Errorf("%s.%s: a record with server fields has user_id", r.name, f.name)
			}
			if f.kind == KindText && f.scope != SelfHosted {
				t.Errorf("%s.%s: text must be self-hosted only", r.name, f.name)
			}
		}
		if keys != 1 {
			t.Errorf("record %s has %d keys", r.name, keys)
		}
		if (r.props != nil) != (r.Field("props") != nil) {
			t.Errorf("record %s: props declared without a props field or the reverse", r.name)
		}
	}
	for _, r := range ServerTables() {
		if r.batch != "" || !r.unprefixed {
			t.Errorf("server table %s: no batch key, no prefix", r.name)
		}
		for _, f := range r.fields {
			checkField(t, r.name, f)
			if f.scope != Server {
				t.Errorf("%s.%s: a server table has only server fields", r.name, f.name)
			}
		}
	}
	for name, fields := range events.props {
		if !contains(enumEventName, name) {
			t.Errorf("props declared for unknown event %q", name)
		}
		for _, f := range fields {
			checkField(t, "props."+name, f)
		}
	}
	for _, name := range enumEventName {
		if _, ok := events.props[name]; !ok {
			t.Errorf("event %q has no props declaration", name)
		}
	}
}

func checkField(t *testing.T, rec string, f *Field) {
	t.Helper()
	where := rec + "." + f.name
	if f.since < 1 || f.since > Version {
		t.Errorf("%s: Since %d outside 1..%d", where, f.since, Version)
	}
	switch f.kind {
	case KindString:
		if (f.enum == nil) == (f.pattern == nil) || f.max <= 0 {
			t.Errorf("%s: a string needs exactly one of Enum and Pattern, and a Max", where)
		}
		for _, v := range f.enum {
			if int64(len(v)) > f.max || f.pattern != nil {
				t.Errorf("%s: enum value %q longer than Max", where, v)
			}
		}
	case KindList:
		if f.pattern == nil || f.maxItems <= 0 {
			t.Errorf("%s: a list needs a Pattern and MaxItems", where)
		}
	case KindInt:
		if f.min > f.max {
			t.Errorf("%s: Min > Max", where)
		}
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// TestPatternsCannotCarryASentence: no name pattern accepts whitespace,
// quotes or anything that reads as prose; each accepts its ordinary values.
func TestPatternsCannotCarryASentence(t *testing.T) {
	ok := map[*Pattern][]string{
		patModel:    {"fred-flash-2", "claude-sonnet-4.5", "openai/gpt-5:latest"},
		patToolName: {"read_file", "mcp.github:search"},
		patCommand:  {"help", "telemetry", "add-dir"},
		patSemver:   {"1.4.2", "1.5.0-rc.1", "0.0.1+build.7"},
		patRuntime:  {"go1.26.8", "go1.27", "go1.27rc1"},
		patUserID:   {"user-42", "alice@example.com"},
	}
	bad := []string{"", "read the file /etc/passwd", "fix\tthe bug", "a\nb", "é", "\"quoted\"", "x'y",
		strings.Repeat("a", 200), "../../etc/passwd then", "DROP TABLE users;"}
	for p, goods := range ok {
		for _, s := range goods {
			if !p.re.MatchString(s) {
				t.Errorf("pattern %s rejects ordinary %q", p.name, s)
			}
		}
		for _, s := range bad {
			if p.re.MatchString(s) {
				t.Errorf("pattern %s accepts %q", p.name, s)
			}
		}
	}
}

// TestRemoteHasOnlyCentralFields: the generated remote structs carry exactly
// the Central fields: no text, no server field, by construction of the type.
func TestRemoteHasOnlyCentralFields(t *testing.T) {
	types := map[*Record]reflect.Type{
		sessions: reflect.TypeOf(RemoteSession{}), turns: reflect.TypeOf(RemoteTurn{}),
		toolCalls: reflect.TypeOf(RemoteToolCall{}), events: reflect.TypeOf(RemoteEvent{}),
	}
	for r, typ := range types {
		var want, got []string
		for _, f := range r.fields {
			if f.scope == Central {
				want = append(want, f.name)
			}
		}
		for i := 0; i < typ.NumField(); i++ {
			got = append(got, strings.Split(typ.Field(i).Tag.Get("json"), ",")[0])
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s JSON fields %v, want the central fields %v", typ.Name(), got, want)
		}
	}
}

func TestRemoteDropsText(t *testing.T) {
	tr := Turn{UserInput: "secret prompt", AssistantText: "secret answer", UserID: "u", Model: "m"}
	b, err := json.Marshal(tr.Remote())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"secret", "user_input", "assistant_text", "user_id"} {
		if strings.Contains(string(b), s) {
			t.Errorf("remote turn JSON contains %q: %s", s, b)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	ts := TimeOf(time.Date(2026, 11, 27, 10, 32, 33, 123456789, time.FixedZone("x", 3600)))
	b, _ := json.Marshal(struct{ A, B Time }{A: ts})
	if string(b) != `{"A":"2026-11-27T09:32:33.123Z","B":null}` {
		t.Fatalf("got %s", b)
	}
	var back struct{ A, B Time }
	if err := json.Unmarshal(b, &back); err != nil || !back.A.Equal(ts.Time) || !back.B.IsZero() {
		t.Fatalf("round trip: %v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"A":"yesterday"}`), &back); err == nil {
		t.Fatal("accepted a non-RFC 3339 time")
	}
}

func TestPropsConstructors(t *testing.T) {
	for _, c := range []struct {
		p interface {
			EventName() string
			Props() Props
		}
		want string
	}{
		{SlashCommandProps{Command: "help"}, `{"command":"help"}`},
		{APIRetryProps{Attempt: 2, DelayMs: 1500, ErrorType: "rate_limit", Status: 0, LatencyMs: 812}, `{"attempt":2,"delay_ms":1500,"error_type":"rate_limit","status":0,"latency_ms":812}`},
		{ModeChangeProps{From: "plan", To: "act"}, `{"from":"plan","to":"act"}`},
		{ModelSwapProps{From: "a", To: "b\"c"}, `{"from":"a","to":"b\"c"}`},
	} {
		if got := string(c.p.Props()); got != c.want {
			t.Errorf("%s props = %s, want %s", c.p.EventName(), got, c.want)
		}
		if !json.Valid(c.p.Props()) {
			t.Errorf("%s props are not valid JSON", c.p.EventName())
		}
		// The constructor emits exactly the declared props, in order.
		var names []string
		for _, f := range events.props[c.p.EventName()] {
			names = append(names, `"`+f.name+`":`)
		}
		for _, n := range names {
			if !strings.Contains(string(c.p.Props()), n) {
				t.Errorf("%s props lack %s", c.p.EventName(), n)
			}
		}
	}
}

func TestDDLCoversEveryColumn(t *testing.T) {
	for _, d := range Dialects() {
		for _, s := range Sets() {
			var all []string
			for v := 1; v <= Version; v++ {
				all = append(all, DDL(d, s, v)...)
			}
			sql := strings.Join(all, "\n")
			for _, r := range Records() {
				if !strings.Contains(sql, "CREATE TABLE IF NOT EXISTS "+s.TableName(r)+" (") {
					t.Errorf("%s %s: no table %s", d, s, s.TableName(r))
				}
				for _, f := range r.fields {
					has := strings.Contains(sql, "\n    "+f.name+" ") || strings.Contains(sql, "ADD COLUMN "+f.name+" ") || strings.Contains(sql, "ADD COLUMN IF NOT EXISTS "+f.name+" ")
					if s.Has(f.scope) && !has {
						t.Errorf("%s %s: column %s.%s missing", d, s, r.table, f.name)
					}
				}
			}
			if s == CentralSet && (strings.Contains(sql, "user_input") || strings.Contains(sql, "assistant_text")) {
				t.Errorf("%s central DDL has a text column", d)
			}
		}
	}
}

func TestAppendTimeMatchesLayout(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 27, 9, 5, 3, 7_000_000, time.UTC),
		time.Date(1999, 1, 1, 23, 59, 59, 999_999_999, time.FixedZone("x", -7200)),
		time.Date(10001, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
	} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format(TimeLayout); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestParseHash(t *testing.T) {
	ok := strings.Repeat("0123456789abcdef", 4)
	if h, err := ParseHash(ok); err != nil || h.String() != ok {
		t.Fatalf("ParseHash(%s) = %v, %v", ok, h, err)
	}
	for _, bad := range []string{strings.ToUpper(ok), ok[:63], ok + "0", strings.Repeat("g", 64), ""} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) accepted", bad)
		}
	}
}

// TestClassPatternsMatchTheirRegexp: the cheap DDL form of a class pattern
// (first character, the rest, a length) accepts exactly what its regexp does.
func TestClassPatternsMatchTheirRegexp(t *testing.T) {
	for _, p := range []*Pattern{patModel, patToolName, patCommand, patUserID} {
		first := regexp.MustCompile("^[" + p.first + "]")
		bad := regexp.MustCompile("[^" + p.rest + "]")
		for _, s := range []string{"", "a", "A", "0", "-x", "x-", "read_file", "a b", "é", strings.Repeat("a", p.maxLen), strings.Repeat("a", p.maxLen+1), "fred-flash-2", "x/y@z:1", "user.name@example.com", "a\n", "_x"} {
			cheap := len([]rune(s)) >= 1 && len([]rune(s)) <= p.maxLen && first.MatchString(s) && !bad.MatchString(s)
			if cheap != p.re.MatchString(s) {
				t.Errorf("%s: %q: cheap form says %v, regexp %v", p.name, s, cheap, p.re.MatchString(s))
			}
		}
	}
}

// TestMatchIsTheRegexp: Match, which class patterns answer from byte
// tables, agrees with the regexp of every pattern, on ordinary names, on
// every single byte, and at the length bound.
func TestMatchIsTheRegexp(t *testing.T) {
	for _, p := range []*Pattern{patModel, patToolName, patCommand, patSemver, patRuntime, patUserID, patKeyPrefix, patLabel} {
		inputs := []string{"", "a", "A", "0", "-x", "x-", "read_file", "a b", "é", "fred-flash-2", "x/y@z:1",
			"user.name@example.com", "a\n", "_x", "1.4.2", "go1.26.8", "fred_live_abcd1234", "mcp.github:search"}
		if p.maxLen > 0 {
			inputs = append(inputs, strings.Repeat("a", p.maxLen), strings.Repeat("a", p.maxLen+1))
		}
		for c := 0; c < 256; c++ {
			inputs = append(inputs, string([]byte{byte(c)}), "a"+string([]byte{byte(c)}))
		}
		for _, s := range inputs {
			if got, want := p.Match(s), p.re.MatchString(s); got != want {
				t.Errorf("%s: %q: Match says %v, the regexp %v", p.name, s, got, want)
			}
		}
	}
}
