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
		if tables[r.Table] || tables[r.Batch] && r.Batch != r.Table {
			t.Errorf("record %s: table or batch name reused", r.Name)
		}
		tables[r.Table] = true
		if r.Field(r.TimeField) == nil || r.Field(r.TimeField).Kind != KindTime {
			t.Errorf("record %s: time field %q is not a declared time", r.Name, r.TimeField)
		}
		keys := 0
		seen := map[string]bool{}
		for _, f := range r.Fields {
			checkField(t, r.Name, f)
			if seen[f.Name] {
				t.Errorf("%s.%s declared twice", r.Name, f.Name)
			}
			seen[f.Name] = true
			if f.Key {
				keys++
				if f.Kind != KindUUID || f.Scope != Central || f.Nullable {
					t.Errorf("%s.%s: a key is a central, non-null uuid", r.Name, f.Name)
				}
			}
			if f.Scope == Server && r.Field("user_id") == nil {
				t.Errorf("%s.%s: a record with server fields has user_id", r.Name, f.Name)
			}
			if f.Kind == KindText && f.Scope != SelfHosted {
				t.Errorf("%s.%s: text must be self-hosted only", r.Name, f.Name)
			}
		}
		if keys != 1 {
			t.Errorf("record %s has %d keys", r.Name, keys)
		}
		if (r.Props != nil) != (r.Field("props") != nil) {
			t.Errorf("record %s: props declared without a props field or the reverse", r.Name)
		}
	}
	for _, r := range ServerTables() {
		if r.Batch != "" || !r.Unprefixed {
			t.Errorf("server table %s: no batch key, no prefix", r.Name)
		}
		for _, f := range r.Fields {
			checkField(t, r.Name, f)
			if f.Scope != Server {
				t.Errorf("%s.%s: a server table has only server fields", r.Name, f.Name)
			}
		}
	}
	for name, fields := range Events.Props {
		if !contains(EnumEventName, name) {
			t.Errorf("props declared for unknown event %q", name)
		}
		for _, f := range fields {
			checkField(t, "props."+name, f)
		}
	}
	for _, name := range EnumEventName {
		if _, ok := Events.Props[name]; !ok {
			t.Errorf("event %q has no props declaration", name)
		}
	}
}

func checkField(t *testing.T, rec string, f *Field) {
	t.Helper()
	where := rec + "." + f.Name
	if f.Since < 1 || f.Since > Version {
		t.Errorf("%s: Since %d outside 1..%d", where, f.Since, Version)
	}
	switch f.Kind {
	case KindString:
		if (f.Enum == nil) == (f.Pattern == nil) || f.Max <= 0 {
			t.Errorf("%s: a string needs exactly one of Enum and Pattern, and a Max", where)
		}
		for _, v := range f.Enum {
			if int64(len(v)) > f.Max || f.Pattern != nil {
				t.Errorf("%s: enum value %q longer than Max", where, v)
			}
		}
	case KindList:
		if f.Pattern == nil || f.MaxItems <= 0 {
			t.Errorf("%s: a list needs a Pattern and MaxItems", where)
		}
	case KindInt:
		if f.Min > f.Max {
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
		PatModel:    {"fred-flash-2", "claude-sonnet-4.5", "openai/gpt-5:latest"},
		PatToolName: {"read_file", "mcp.github:search"},
		PatCommand:  {"help", "telemetry", "add-dir"},
		PatSemver:   {"1.4.2", "1.5.0-rc.1", "0.0.1+build.7"},
		PatRuntime:  {"go1.26.8", "go1.27", "go1.27rc1"},
		PatUserID:   {"user-42", "alice@example.com"},
	}
	bad := []string{"", "read the file /etc/passwd", "fix\tthe bug", "a\nb", "é", "\"quoted\"", "x'y",
		strings.Repeat("a", 200), "../../etc/passwd then", "DROP TABLE users;"}
	for p, goods := range ok {
		for _, s := range goods {
			if !p.Re.MatchString(s) {
				t.Errorf("pattern %s rejects ordinary %q", p.Name, s)
			}
		}
		for _, s := range bad {
			if p.Re.MatchString(s) {
				t.Errorf("pattern %s accepts %q", p.Name, s)
			}
		}
	}
}

// TestRemoteHasOnlyCentralFields: the generated remote structs carry exactly
// the Central fields: no text, no server field, by construction of the type.
func TestRemoteHasOnlyCentralFields(t *testing.T) {
	types := map[*Record]reflect.Type{
		Sessions: reflect.TypeOf(RemoteSession{}), Turns: reflect.TypeOf(RemoteTurn{}),
		ToolCalls: reflect.TypeOf(RemoteToolCall{}), Events: reflect.TypeOf(RemoteEvent{}),
	}
	for r, typ := range types {
		var want, got []string
		for _, f := range r.Fields {
			if f.Scope == Central {
				want = append(want, f.Name)
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
		for _, f := range Events.Props[c.p.EventName()] {
			names = append(names, `"`+f.Name+`":`)
		}
		for _, n := range names {
			if !strings.Contains(string(c.p.Props()), n) {
				t.Errorf("%s props lack %s", c.p.EventName(), n)
			}
		}
	}
}

func TestDDLCoversEveryColumn(t *testing.T) {
	for _, d := range Dialects {
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
				for _, f := range r.Fields {
					has := strings.Contains(sql, "\n    "+f.Name+" ") || strings.Contains(sql, "ADD COLUMN "+f.Name+" ") || strings.Contains(sql, "ADD COLUMN IF NOT EXISTS "+f.Name+" ")
					if s.Has(f.Scope) && !has {
						t.Errorf("%s %s: column %s.%s missing", d, s, r.Table, f.Name)
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
	for _, p := range []*Pattern{PatModel, PatToolName, PatCommand, PatUserID} {
		first := regexp.MustCompile("^[" + p.First + "]")
		bad := regexp.MustCompile("[^" + p.Rest + "]")
		for _, s := range []string{"", "a", "A", "0", "-x", "x-", "read_file", "a b", "é", strings.Repeat("a", p.MaxLen), strings.Repeat("a", p.MaxLen+1), "fred-flash-2", "x/y@z:1", "user.name@example.com", "a\n", "_x"} {
			cheap := len([]rune(s)) >= 1 && len([]rune(s)) <= p.MaxLen && first.MatchString(s) && !bad.MatchString(s)
			if cheap != p.Re.MatchString(s) {
				t.Errorf("%s: %q: cheap form says %v, regexp %v", p.Name, s, cheap, p.Re.MatchString(s))
			}
		}
	}
}

// TestMatchIsTheRegexp: Match, which class patterns answer from byte
// tables, agrees with the regexp of every pattern, on ordinary names, on
// every single byte, and at the length bound.
func TestMatchIsTheRegexp(t *testing.T) {
	for _, p := range []*Pattern{PatModel, PatToolName, PatCommand, PatSemver, PatRuntime, PatUserID, PatKeyPrefix, PatLabel} {
		inputs := []string{"", "a", "A", "0", "-x", "x-", "read_file", "a b", "é", "fred-flash-2", "x/y@z:1",
			"user.name@example.com", "a\n", "_x", "1.4.2", "go1.26.8", "fred_live_abcd1234", "mcp.github:search"}
		if p.MaxLen > 0 {
			inputs = append(inputs, strings.Repeat("a", p.MaxLen), strings.Repeat("a", p.MaxLen+1))
		}
		for c := 0; c < 256; c++ {
			inputs = append(inputs, string([]byte{byte(c)}), "a"+string([]byte{byte(c)}))
		}
		for _, s := range inputs {
			if got, want := p.Match(s), p.Re.MatchString(s); got != want {
				t.Errorf("%s: %q: Match says %v, the regexp %v", p.Name, s, got, want)
			}
		}
	}
}
