// Package apikey is the one definition of a Fred API key: its shape, the
// parts of it that may be shown and stored, and making a new one. The
// client checks a key with it before storing or sending it, the server
// before looking it up; only the server makes keys. The client links it:
// standard library and package schema only.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"strings"

	"github.com/fredcode/fredtel/schema"
)

// Scheme starts every key; the schema's key_prefix pattern declares it.
const Scheme = schema.KeyScheme

// Lengths of what follows Scheme: a key has between minBody and maxBody
// letters and digits (New makes newBody, about 190 bits); the stored prefix
// keeps storedBody of them (schema.PatKeyPrefix()), enough to name a key and
// useless to use it, and the prefix shown to the user shownBody.
const (
	minBody, maxBody, newBody = 20, 128, 32
	storedBody, shownBody     = 8, 4
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Doc says what Valid accepts, for messages.
const Doc = Scheme + " followed by 20 to 128 letters and digits"

// Valid reports whether key has the shape of a Fred API key.
func Valid(key string) bool { return shaped(key, minBody, maxBody) }

// Names reports whether prefix is enough of a key to name it to an
// operator: Scheme and at least 4 more letters and digits, as Shown prints.
func Names(prefix string) bool { return shaped(prefix, shownBody, len(prefix)) }

// shaped reports whether key is Scheme and then lo to hi letters and digits.
func shaped(key string, lo, hi int) bool {
	body, ok := strings.CutPrefix(key, Scheme)
	if !ok || len(body) < lo || len(body) > hi {
		return false
	}
	for i := 0; i < len(body); i++ {
		if c := body[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Stored is the prefix a server stores beside the key's hash to name it:
// Scheme and 8 more characters. key must be Valid.
func Stored(key string) string { return key[:len(Scheme)+storedBody] }

// Hash is the only form of a key a server keeps.
func Hash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// Shown is the part of a key that may be printed: Scheme, 4 more
// characters and an ellipsis.
func Shown(key string) string {
	if Names(key) {
		return key[:len(Scheme)+shownBody] + "…"
	}
	return Scheme + "…"
}

// New makes a new key: Scheme and 32 random letters and digits.
func New() string {
	b := make([]byte, newBody)
	for i := range b {
		var x [1]byte
		for x[0] = 255; x[0] >= 248; { // 248 = 4 × 62: no modulo bias
			rand.Read(x[:]) // never fails (crypto/rand)
		}
		b[i] = alphabet[int(x[0])%len(alphabet)]
	}
	return Scheme + string(b)
}
