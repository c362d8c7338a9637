// Package jsonesc decodes JSON's \u escapes for the project's two JSON
// scanners: the client's canonicaliser (fingerprints) and the server's
// strict parser. It depends on nothing, so the client can use it.
package jsonesc

// Hex4 decodes the \uXXXX escape at the start of s.
func Hex4(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, b := range s[2:6] {
		switch {
		case b >= '0' && b <= '9':
			r = r<<4 | rune(b-'0')
		case b >= 'a' && b <= 'f':
			r = r<<4 | rune(b-'a'+10)
		case b >= 'A' && b <= 'F':
			r = r<<4 | rune(b-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
