package schema

// Clean returns v when the field allows it, else the field's fallback ("other"
// where the enum or pattern has one, else the enum's first value) and false.
// It is how a client keeps a record valid without letting through a value
// the declaration does not allow: what did not fit is replaced, not sent.
func (f *Field) Clean(v string) (string, bool) {
	if f.Allows(v) {
		return v, true
	}
	if f.enum != nil {
		if f.enumSet["other"] {
			return "other", false
		}
		return f.enum[0], false
	}
	if f.pattern != nil {
		return f.pattern.fallback, false
	}
	return "", false
}

// Allows reports whether v is a valid value of a KindString field.
func (f *Field) Allows(v string) bool {
	if int64(len(v)) > f.max && f.max > 0 {
		return false
	}
	if f.enum != nil {
		return f.enumSet[v]
	}
	return f.pattern != nil && f.pattern.Match(v)
}

// Clamp bounds v to [Min, Max] of a KindInt field.
func (f *Field) Clamp(v int64) int64 { return min(max(v, f.min), f.max) }

// CleanList keeps the items of a KindList that match its pattern, at most
// MaxItems of them, without repeats.
func (f *Field) CleanList(items []string) []string {
	out := make([]string, 0, min(len(items), f.maxItems))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if len(out) == f.maxItems {
			break
		}
		if int64(len(it)) <= f.max && f.pattern.Match(it) && !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

// withEnum sets f's enum and makes it a set, once: lookups on the hot path.
func (f *Field) withEnum(values []string) *Field {
	f.enum, f.enumSet = values, make(map[string]bool, len(values))
	for _, v := range values {
		f.enumSet[v] = true
	}
	return f
}

func init() {
	for _, r := range records {
		for _, f := range r.fields {
			if f.enum != nil {
				f.withEnum(f.enum)
			}
		}
		for _, fs := range r.props {
			for _, f := range fs {
				if f.enum != nil {
					f.withEnum(f.enum)
				}
			}
		}
	}
}
