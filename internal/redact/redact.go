// Package redact masks secrets at the source, for every error, log line and
// status text. It has no dependencies, so the client library can use it
// without linking a database driver.
package redact

import (
	"net/url"
	"strings"
)

// sentinel stands in for a password while net/url re-encodes the URL; it is
// then replaced by ***, which url.String would otherwise percent-encode.
const sentinel = "fredtelmasked5f1d0c"

// URL replaces the password of a URL (in its user info or a password query
// parameter) with ***. Text that does not parse as a URL is masked
// conservatively: everything between "://" and the last "@" goes.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		i := strings.Index(raw, "://")
		j := strings.LastIndex(raw, "@")
		if i >= 0 && j > i {
			return raw[:i+3] + "***" + raw[j:]
		}
		if i >= 0 {
			return raw[:i+3] + "***"
		}
		return "***"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), sentinel)
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", sentinel)
		u.RawQuery = q.Encode()
	}
	return strings.ReplaceAll(u.String(), sentinel, "***")
}
