package telemetry

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"time"
)

// Files in the config dir. All are written 0600 in a 0700 folder, atomically
// (a temporary file renamed into place), so a crash never leaves half a file.
const (
	prefsFile   = "telemetry.json"
	credsFile   = "credentials.json"
	installFile = "install_key"
)

// ConfigDir is where Fred keeps preferences and credentials: FRED_CONFIG_DIR,
// else the OS config folder + "/fred" ($XDG_CONFIG_HOME or ~/.config on Linux,
// ~/Library/Application Support on macOS, %AppData% on Windows).
func ConfigDir(getenv func(string) string) string {
	if d := getenv("FRED_CONFIG_DIR"); d != "" {
		return d
	}
	switch runtime.GOOS {
	case "windows":
		if d := getenv("AppData"); d != "" {
			return filepath.Join(d, "fred")
		}
	case "darwin":
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support", "fred")
		}
	default:
		if d := getenv("XDG_CONFIG_HOME"); d != "" {
			return filepath.Join(d, "fred")
		}
		if h := getenv("HOME"); h != "" {
			return filepath.Join(h, ".config", "fred")
		}
	}
	return filepath.Join(os.TempDir(), "fred-config")
}

// Prefs is the persisted telemetry preference.
type Prefs struct {
	// Telemetry is "on", "off" or "" (never set: on).
	Telemetry string `json:"telemetry,omitempty"`
	// NoticeShownAt is when the one-time notice was shown on a terminal
	// (RFC 3339), or "" if never.
	NoticeShownAt string `json:"notice_shown_at,omitempty"`
}

// Off reports whether the user turned telemetry off.
func (p Prefs) Off() bool { return p.Telemetry == "off" }

// errPrefs marks a preferences file that cannot be trusted: telemetry is then
// off for the central route, as golang.org/x/telemetry does with its mode file.
var errPrefs = errors.New("unreadable telemetry preferences")

// LoadPrefs reads the preferences. A missing file is the zero Prefs; a file
// that cannot be read or parsed, or holds an unknown value, is an error.
func LoadPrefs(dir string) (Prefs, error) {
	var p Prefs
	b, err := os.ReadFile(filepath.Join(dir, prefsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("%w: %v", errPrefs, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Prefs{}, fmt.Errorf("%w: %s: %v", errPrefs, filepath.Join(dir, prefsFile), err)
	}
	switch p.Telemetry {
	case "", "on", "off":
	default:
		return Prefs{}, fmt.Errorf("%w: %s: telemetry is %q, want on or off", errPrefs, filepath.Join(dir, prefsFile), p.Telemetry)
	}
	if p.NoticeShownAt != "" {
		if _, err := time.Parse(time.RFC3339, p.NoticeShownAt); err != nil {
			return Prefs{}, fmt.Errorf("%w: %s: notice_shown_at %q is not a time", errPrefs, filepath.Join(dir, prefsFile), p.NoticeShownAt)
		}
	}
	return p, nil
}

// SavePrefs writes the preferences.
func SavePrefs(dir string, p Prefs) error {
	b, _ := json.MarshalIndent(p, "", "  ")
	return writeFileAtomic(dir, prefsFile, append(b, '\n'))
}

// SetTelemetry persists on or off, keeping the rest of the preferences. A
// preferences file that cannot be read is replaced: the user just said what
// they want.
func SetTelemetry(dir string, on bool) error {
	p, _ := LoadPrefs(dir)
	p.Telemetry = "off"
	if on {
		p.Telemetry = "on"
	}
	return SavePrefs(dir, p)
}

// Credentials is the stored login.
type Credentials struct {
	APIKey string `json:"api_key"`
	// User is the key's owner as the server reported it at login, if known.
	User string `json:"user,omitempty"`
}

// KeyPattern is the shape of a Fred API key.
var KeyPattern = regexp.MustCompile(`^fred_live_[A-Za-z0-9_-]{20,128}$`)

// LoadCredentials reads the stored key; no file is the zero Credentials.
func LoadCredentials(dir string) (Credentials, error) {
	var c Credentials
	b, err := os.ReadFile(filepath.Join(dir, credsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("%s: %v", filepath.Join(dir, credsFile), err)
	}
	if c.APIKey != "" && !KeyPattern.MatchString(c.APIKey) {
		return Credentials{}, fmt.Errorf("%s: the stored key is not a fred_live_ key", filepath.Join(dir, credsFile))
	}
	return c, nil
}

// SaveCredentials stores the key, readable by the owner only.
func SaveCredentials(dir string, c Credentials) error {
	b, _ := json.MarshalIndent(c, "", "  ")
	return writeFileAtomic(dir, credsFile, append(b, '\n'))
}

// DeleteCredentials forgets the stored key.
func DeleteCredentials(dir string) error {
	err := os.Remove(filepath.Join(dir, credsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// installKey returns the per-install secret that keys agents_md_hash, making
// it on first use. It never leaves the machine.
func installKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, installFile)
	if b, err := os.ReadFile(path); err == nil {
		k, err := hex.DecodeString(string(bytes.TrimSpace(b)))
		if err == nil && len(k) == 32 {
			return k, nil
		}
	}
	k := make([]byte, 32)
	if _, err := crand.Read(k); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(dir, installFile, []byte(hex.EncodeToString(k)+"\n")); err != nil {
		return nil, err
	}
	return k, nil
}

func writeFileAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
