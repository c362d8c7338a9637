package telemetry

import (
	"strings"
	"unicode/utf8"
)

// storedText is the form of user_input and assistant_text the self-hosted
// route stores: a NUL or invalid UTF-8, which PostgreSQL refuses in a text
// column (the whole batch, every time it is retried), becomes U+FFFD, and
// the value counts as replaced (Stats.Replaced); the rest of the text is
// kept as it was. Other routes never store the text: it is left alone.
func (s *Session) storedText(v string) string {
	if s.kind != SelfHosted || s.noText {
		return v
	}
	if strings.IndexByte(v, 0) < 0 && utf8.ValidString(v) {
		return v
	}
	s.stats.replaced.Add(1)
	return StorableText(v)
}

// StorableText replaces every NUL and every invalid UTF-8 sequence of v by
// U+FFFD, the replacement character: what a text column of any database
// accepts.
func StorableText(v string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(v, "\uFFFD"), "\x00", "\uFFFD")
}
