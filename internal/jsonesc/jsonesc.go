// Package jsonesc decodes JSON's \u escapes for the project's two JSON
// scanners: the client's canonicaliser (fingerprints) and the server's
// strict parser. It depends on nothing of ours, so the client can use it.
package jsonesc

import "encoding/hex"

// Hex4 decodes the \uXXXX escape at the start of s.
func Hex4(s []byte) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	var b [2]byte
	_, err := hex.Decode(b[:], s[2:6])
	return rune(b[0])<<8 | rune(b[1]), err == nil
}
