// Package redact masks secrets at the source, for every error, log line and
// status text, and makes text from elsewhere safe to print on a terminal. It
// has no dependencies, so the client library can use it without linking a
// database driver.
//
// # Forms masked
//
// [URL] takes every form a database or API location is written in:
//
//   - URL user-info: postgres://alice:s3cret@db/fred → postgres://alice:***@db/fred
//     (database schemes keep the user name; any other scheme, such as an
//     API URL, loses the whole user-info: http://user:secret@host → http://***@host);
//   - URL query parameters whose name looks like a secret (see [SecretKey]):
//     ?password=, ?sslpassword=, ?passfile=, ?api_token=, …;
//   - libpq keyword/value connection strings: host=db user=alice
//     password=s3cret → host=db user=alice password=***, quoted values
//     included;
//   - text that does not parse: everything that could be a secret goes.
//
// The masking is textual, not a re-encoding: what is not secret is shown
// exactly as it was written.
package redact

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mask stands in for every secret.
const Mask = "***"

// SecretKey reports whether a parameter name (of a URL query or a
// keyword/value connection string) names something to mask: anything about
// a password (password, sslpassword, passfile, passphrase, pwd), a secret, a
// token, a key, authentication or credentials. Matching is by substring,
// case-insensitive, ignoring _ and -: a false positive only hides a value.
func SecretKey(k string) bool {
	k = strings.ToLower(k)
	k = strings.NewReplacer("_", "", "-", "", ".", "").Replace(k)
	for _, w := range []string{"pass", "pwd", "secret", "token", "key", "auth", "credential", "signature"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// URL masks the secrets of a database URL, an API URL or a keyword/value
// connection string (see the package doc). Text that is none of them and
// holds no "=" is returned as it is (a plain path: sqlite:fred.db).
func URL(raw string) string {
	if i := strings.Index(raw, "://"); i >= 0 {
		return maskURL(raw[:i], raw[i+3:])
	}
	if strings.HasPrefix(raw, "sqlite:") || !strings.Contains(raw, "=") {
		// sqlite:PATH[?params], or text without parameters.
		if j := strings.IndexByte(raw, '?'); j >= 0 {
			return raw[:j+1] + maskQuery(raw[j+1:])
		}
		return raw
	}
	return maskKeywords(raw)
}

// maskURL masks scheme://rest. The user-info ends at the last "@" of rest:
// a password with an unencoded "/", "?" or "#" in it is still user-info, and
// when in doubt more is masked, never less.
func maskURL(scheme, rest string) string {
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		rest = rest[at+1:]
		name, _, hasPass := strings.Cut(userinfo, ":")
		switch {
		case !databaseScheme(scheme):
			// An API URL's user-info is a credential whole (a token is
			// often written as the user name).
			b.WriteString(Mask)
		case strings.ContainsAny(name, "/?#"):
			b.WriteString(Mask) // not a user name: a password that ate the separators
		case hasPass:
			b.WriteString(name)
			b.WriteString(":")
			b.WriteString(Mask)
		default:
			b.WriteString(name)
		}
		b.WriteByte('@')
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		b.WriteString(rest[:q+1])
		b.WriteString(maskQuery(rest[q+1:]))
	} else {
		b.WriteString(rest)
	}
	return b.String()
}

func databaseScheme(s string) bool {
	switch strings.ToLower(s) {
	case "postgres", "postgresql", "sqlite", "mysql":
		return true
	}
	return false
}

// maskQuery masks the values of secret parameters of a URL query; a value
// runs to the next "&" (a "#" is part of it: a password may hold one).
func maskQuery(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		if dec, err := url.QueryUnescape(k); err == nil {
			k = dec
		}
		if hasValue && SecretKey(k) {
			parts[i] = p[:strings.IndexByte(p, '=')+1] + Mask
		}
	}
	return strings.Join(parts, "&")
}

// maskKeywords masks a libpq keyword/value connection string:
// key = value pairs separated by white space, a value either a run of
// non-space characters or single-quoted, with \' and \\ escapes. What
// follows a syntax error is masked whole.
func maskKeywords(s string) string {
	var b strings.Builder
	i := 0
	for i < len(s) {
		// white space between pairs is kept as it is
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		b.WriteString(s[i:j])
		i = j
		if i == len(s) {
			break
		}
		// key
		for j < len(s) && s[j] != '=' && !isSpace(s[j]) {
			j++
		}
		key := s[i:j]
		k := j
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		if key == "" || k == len(s) || s[k] != '=' {
			b.WriteString(Mask) // not key=value: nothing after this is trusted
			return b.String()
		}
		k++ // '='
		for k < len(s) && isSpace(s[k]) {
			k++
		}
		// value
		v := k
		if v < len(s) && s[v] == '\'' {
			v++
			closed := false
			for v < len(s) {
				if s[v] == '\\' && v+1 < len(s) {
					v += 2
					continue
				}
				if s[v] == '\'' {
					v++
					closed = true
					break
				}
				v++
			}
			if !closed {
				b.WriteString(key)
				b.WriteString("=")
				b.WriteString(Mask)
				return b.String()
			}
		} else {
			for v < len(s) && !isSpace(s[v]) {
				if s[v] == '\\' && v+1 < len(s) {
					v++
				}
				v++
			}
		}
		if SecretKey(key) {
			b.WriteString(key)
			b.WriteString("=")
			b.WriteString(Mask)
		} else {
			b.WriteString(s[i:v])
		}
		i = v
	}
	return b.String()
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// Terminal makes text that came from elsewhere (a server's answer, a value
// stored by another program) safe to print on a terminal: control
// characters (C0, DEL, C1, and the bidirectional and invisible formatting
// characters that reorder or hide what is shown) and invalid UTF-8 become
// "?", white space becomes one space, and the result is at most max runes,
// the last one "…" when it was cut.
func Terminal(s string, max int) string {
	if max <= 0 {
		return ""
	}
	var b strings.Builder
	n := 0
	space := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size <= 1:
			r = '?'
		case unicode.IsSpace(r):
			if space {
				continue
			}
			r, space = ' ', true
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			r = '?'
		}
		if r != ' ' {
			space = false
		}
		if n == max {
			// cut: replace the last rune by an ellipsis
			out := []rune(b.String())
			out[len(out)-1] = '…'
			return string(out)
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
