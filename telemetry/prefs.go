package telemetry

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/fredcode/fredtel/internal/apikey"
	"github.com/fredcode/fredtel/internal/safedir"
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
// ~/Library/Application Support on macOS, %AppData% on Windows). With none of
// them (no home: HOME and XDG_CONFIG_HOME unset, or not absolute paths) it is
// "": there is no shared fallback folder, and every function of this file
// refuses "" (telemetry is then off, with one warning line).
func ConfigDir(getenv func(string) string) string {
	if d := getenv("FRED_CONFIG_DIR"); d != "" {
		return d
	}
	abs := func(k string) string {
		if d := getenv(k); filepath.IsAbs(d) {
			return d
		}
		return ""
	}
	switch runtime.GOOS {
	case "windows":
		if d := abs("AppData"); d != "" {
			return filepath.Join(d, "fred")
		}
	case "darwin":
		if h := abs("HOME"); h != "" {
			return filepath.Join(h, "Library", "Application Support", "fred")
		}
	default:
		if d := abs("XDG_CONFIG_HOME"); d != "" {
			return filepath.Join(d, "fred")
		}
		if h := abs("HOME"); h != "" {
			return filepath.Join(h, ".config", "fred")
		}
	}
	return ""
}

// ErrConfigDir is wrapped by the errors that say the config folder cannot
// be used at all: there is none, or it is not the user's own (a symbolic
// link, someone else's, writable by others). Telemetry is then off.
var ErrConfigDir = errors.New("the config folder cannot be used")

var errNoConfigDir = fmt.Errorf("%w: there is none (no home: HOME and XDG_CONFIG_HOME are unset); set FRED_CONFIG_DIR to a folder of your own", ErrConfigDir)

// openConfig opens the config folder, checked to be the user's own (see
// package internal/safedir). A missing folder is made only with create;
// without create it is fs.ErrNotExist.
func openConfig(dir string, create bool) (*safedir.Dir, error) {
	if dir == "" {
		return nil, errNoConfigDir
	}
	d, err := safedir.Open(dir, create)
	if errors.Is(err, safedir.ErrUnsafe) {
		return nil, fmt.Errorf("%w: %v", ErrConfigDir, err)
	}
	return d, err
}

// senderFolders are the central sender's folders in the config folder
// (package telemetry/central, whose New checks them here too): checked with
// it, so that routing and the status line already say off when one cannot.
var senderFolders = []string{"spool", "audit"}

// CheckConfigDir reports whether the config folder can be used: nil when
// it, and the sender's spool/ and audit/ in it, are the user's own or do
// not exist yet, else an error wrapping ErrConfigDir.
func CheckConfigDir(dir string) error {
	d, err := openConfig(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	for _, name := range senderFolders {
		sub, err := d.Sub(name, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrConfigDir, err)
		}
		sub.Close()
	}
	return nil
}

// readConfigFile reads a file of the config folder, never through a
// symbolic link; a missing folder or file is (nil, fs.ErrNotExist).
func readConfigFile(dir, name string) ([]byte, error) {
	d, err := openConfig(dir, false)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadFile(name, maxConfigFile)
}

// maxConfigFile bounds the files of the config folder Fred reads: they are
// a few hundred bytes.
const maxConfigFile = 64 << 10

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
//
// The config folder is checked first (CheckConfigDir): an error wrapping
// ErrConfigDir says it cannot be used.
func LoadPrefs(dir string) (Prefs, error) {
	var p Prefs
	if err := CheckConfigDir(dir); err != nil {
		return p, err
	}
	b, err := readConfigFile(dir, prefsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if errors.Is(err, ErrConfigDir) {
		return p, err
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

// String shows the key's prefix only; Format and LogValue make every fmt
// verb and slog show the same, so a stored key never reaches a log line.
func (c Credentials) String() string {
	if c.APIKey == "" {
		return "Credentials{}"
	}
	return "Credentials{" + apikey.Shown(c.APIKey) + "}"
}

// Format prints String whatever the verb.
func (c Credentials) Format(f fmt.State, verb rune) { fmt.Fprint(f, c.String()) }

// LogValue is how slog logs Credentials: the key's prefix.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// LoadCredentials reads the stored key; no file is the zero Credentials.
func LoadCredentials(dir string) (Credentials, error) {
	var c Credentials
	b, err := readConfigFile(dir, credsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return Credentials{}, fmt.Errorf("%s: %v", filepath.Join(dir, credsFile), err)
	}
	if c.APIKey != "" && !apikey.Valid(c.APIKey) {
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
	d, err := openConfig(dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	err = d.Remove(credsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// installKey returns the per-install secret that keys agents_md_hash, making
// it on first use. It never leaves the machine.
func installKey(dir string) ([]byte, error) {
	b, err := readConfigFile(dir, installFile)
	if errors.Is(err, ErrConfigDir) {
		return nil, err
	}
	if err == nil {
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

// writeFileAtomic writes a file of the config folder, mode 0600, made 0700
// if missing, atomically (see safedir.Dir.WriteFile).
func writeFileAtomic(dir, name string, data []byte) error {
	d, err := openConfig(dir, true)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.WriteFile(name, data)
}
