// Package apikey is the one definition of a Fred API key: its shape, the
// parts of it that may be shown and stored, and making a new one. The
// client checks a key with it before storing or sending it, the server
// before looking it up; only the server makes keys. Standard library only:
// the client links it.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
)

// Scheme starts every key.
const Scheme = "fred_live_"

// Lengths of what follows Scheme: a key has between minBody and maxBody
// letters and digits (New makes newBody, about 190 bits); the stored prefix
// keeps storedBody of them (schema.PatKeyPrefix), enough to name a key and
// useless to use it, and the prefix shown to the user shownBody.
const (
	minBody, maxBody, newBody = 20, 128, 32
	storedBody, shownBody     = 8, 4
)

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Doc says what Valid accepts, for messages.
const Doc = Scheme + " followed by 20 to 128 letters and digits"

// Valid reports whether key has the shape of a Fred API key.
func Valid(key string) bool {
	body, ok := cutScheme(key)
	return ok && len(body) >= minBody && len(body) <= maxBody
}

// cutScheme returns what follows Scheme, and whether key starts with it
// and the rest is letters and digits only.
func cutScheme(key string) (string, bool) {
	if len(key) < len(Scheme) || key[:len(Scheme)] != Scheme {
		return "", false
	}
	body := key[len(Scheme):]
	for i := 0; i < len(body); i++ {
		if c := body[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	return body, true
}

// Stored is the prefix a server stores beside the key's hash to name it:
// Scheme and 8 more characters. key must be Valid.
func Stored(key string) string { return key[:len(Scheme)+storedBody] }

// Hash is the only form of a key a server keeps.
func Hash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// Shown is the part of a key that may be printed: Scheme, 4 more
// characters and an ellipsis.
func Shown(key string) string {
	if body, ok := cutScheme(key); ok && len(body) >= shownBody {
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
