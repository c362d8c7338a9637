package schema

// Clean returns v when the field allows it, else the field's fallback ("other"
// where the enum or pattern has one, else the enum's first value) and false.
// It is how a client keeps a record valid without letting through a value
// the declaration does not allow: what did not fit is replaced, not sent.
func (f *Field) Clean(v string) (string, bool) {
	if f.Allows(v) {
		return v, true
	}
	if f.Enum != nil {
		if f.enumSet()["other"] {
			return "other", false
		}
		return f.Enum[0], false
	}
	if f.Pattern != nil {
		return f.Pattern.Fallback, false
	}
	return "", false
}

// Allows reports whether v is a valid value of a KindString field.
func (f *Field) Allows(v string) bool {
	if int64(len(v)) > f.Max && f.Max > 0 {
		return false
	}
	if f.Enum != nil {
		return f.enumSet()[v]
	}
	return f.Pattern != nil && f.Pattern.Match(v)
}

// Clamp bounds v to [Min, Max] of a KindInt field.
func (f *Field) Clamp(v int64) int64 { return min(max(v, f.Min), f.Max) }

// CleanList keeps the items of a KindList that match its pattern, at most
// MaxItems of them, without repeats.
func (f *Field) CleanList(items []string) []string {
	out := make([]string, 0, min(len(items), f.MaxItems))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if len(out) == f.MaxItems {
			break
		}
		if int64(len(it)) <= f.Max && f.Pattern.Match(it) && !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

// enumSets holds each enum as a set, built once: lookups on the hot path.
var enumSets = map[*Field]map[string]bool{}

func (f *Field) enumSet() map[string]bool { return enumSets[f] }

func init() {
	add := func(f *Field) {
		if f.Enum != nil {
			m := make(map[string]bool, len(f.Enum))
			for _, v := range f.Enum {
				m[v] = true
			}
			enumSets[f] = m
		}
	}
	for _, r := range records {
		for _, f := range r.Fields {
			add(f)
		}
		for _, fs := range r.Props {
			for _, f := range fs {
				add(f)
			}
		}
	}
}
