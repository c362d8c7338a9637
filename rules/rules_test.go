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
