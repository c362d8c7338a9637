package rules

import "testing"

func TestIsFast(t *testing.T) {
	for _, c := range []struct {
		model string
		list  []string
		want  bool
	}{
		{"fred-flash-2", nil, true},
		{"Gemini-2.5-Flash", nil, true},
		{"gpt-5-mini", nil, true},
		{"fred-pro-2", nil, false},
		{"claude-opus-4", nil, false},
		{"fred-pro-2", []string{"fred-pro-2"}, true},
		{"fred-flash-2", []string{"fred-pro-2"}, false},
	} {
		if got := IsFast(c.model, c.list); got != c.want {
			t.Errorf("IsFast(%q, %v) = %v, want %v", c.model, c.list, got, c.want)
		}
	}
}

func TestStruggles(t *testing.T) {
	for _, c := range []struct {
		finish string
		calls  int64
		want   bool
	}{
		{"stop", 0, false}, {"stop", 7, false}, {"stop", 8, true}, {"tool_calls", 12, true},
		{"length", 0, true}, {"error", 1, true}, {"cancelled", 0, false},
	} {
		if got := Struggles(c.finish, c.calls, StruggleToolCalls); got != c.want {
			t.Errorf("Struggles(%q, %d) = %v, want %v", c.finish, c.calls, got, c.want)
		}
	}
}

func TestRun(t *testing.T) {
	var r Run[string, int]
	calls := []struct {
		key       string
		id        int
		start, at int64
	}{
		{"a", 1, 1, 1}, {"a", 2, 1, 2}, {"a", 3, 1, 3}, {"b", 4, 4, 1}, {"a", 5, 5, 1}, {"b", 6, 6, 1}, {"b", 7, 6, 2},
	}
	for _, c := range calls {
		start, n := r.Next(c.key, c.id)
		if int64(start) != c.start || n != c.at {
			t.Errorf("call %d (%s): run start %d, place %d; want %d, %d", c.id, c.key, start, n, c.start, c.at)
		}
	}
}
