package canary_test

import (
	"testing"

	"github.com/fredcode/fredtel/proof"
)

// hardeningMutants each remove one protection of issue 12 §4-§6; the check
// named must then fail. Some checks are the packages' own tests: the
// protection is local (a file mode, a formatter) and its test is where it
// shows.
var hardeningMutants = []proof.Mutant{
	{Name: "config-folder-owner-and-mode-unchecked", Breaks: "the check that the config folder is the user's own and not writable by others",
		File: "internal/safedir/safedir.go", Pkg: "./proof/canary", Run: "^TestFolderAttacks$/^folder_anyone_may_write",
		Old: "\tif err := checkDir(path, fi); err != nil {\n\t\treturn nil, err\n\t}\n\troot, err := os.OpenRoot(path)", New: "\troot, err := os.OpenRoot(path)"},
	{
		Name:   "subfolders-opened-by-path",
		Breaks: "spool/ and audit/ opened without following a link (Lstat, os.Root, same-file check): opened by path instead",
		File:   "internal/safedir/safedir.go",
		Old:    "func (d *Dir) Sub(name string, create bool) (*Dir, error) {\n",
		New: "func (d *Dir) Sub(name string, create bool) (*Dir, error) {\n" +
			"\tpath := filepath.Join(d.path, name)\n\tif create {\n\t\tos.MkdirAll(path, 0o700)\n\t}\n" +
			"\troot, err := os.OpenRoot(path)\n\tif err != nil {\n\t\treturn nil, err\n\t}\n\treturn &Dir{path: path, root: root}, nil\n}\n\n" +
			"func (d *Dir) subChecked(name string, create bool) (*Dir, error) {\n",
		Pkg: "./proof/canary",
		Run: "^TestFolderAttacks$/^symlinked",
	},
	{Name: "no-home-falls-back-to-tmp", Breaks: "no shared fallback folder when there is no home",
		File: "telemetry/prefs.go", Pkg: "./proof/canary", Run: "^TestFolderAttacks$/^no_home$",
		Old: "\t\t\treturn filepath.Join(h, \".config\", \"fred\")\n\t\t}\n\t}\n\treturn \"\"\n}", New: "\t\t\treturn filepath.Join(h, \".config\", \"fred\")\n\t\t}\n\t}\n\treturn filepath.Join(\"/tmp\", \"fred-config\")\n}"},
	{Name: "spooled-file-not-validated", Breaks: "the validation of a spooled file as a batch before it is sent",
		File: "telemetry/central/spool.go", Pkg: "./proof/canary", Run: "^TestFolderAttacks$/^smuggled",
		Old: "if rej := validSpooled(body, now); rej != nil {", New: "if rej := validSpooled(body, now); false && rej != nil {"},
	{Name: "keyword-value-password-shown", Breaks: "masking of password-like keys in keyword/value connection strings",
		File: "internal/redact/redact.go", Old: "\t\tif SecretKey(key) {", New: "\t\tif false {", Pkg: "./proof/canary", Run: "^TestSecretsMasked$"},
	{Name: "url-query-password-shown", Breaks: "masking of password-like URL query parameters (?password=, ?sslpassword=)",
		File: "internal/redact/redact.go", Pkg: "./proof/canary", Run: "^TestSecretsMasked$",
		Old: "if hasValue && SecretKey(k) {", New: "if hasValue && false && SecretKey(k) {"},
	{Name: "api-url-user-info-kept", Breaks: "dropping FRED_API_URL's user-info, which the sender's messages name",
		File: "telemetry/route.go", Old: "\tu.User = nil\n", New: "\t_ = u\n\treturn raw\n", Pkg: "./proof/canary", Run: "^TestSecretsMasked$"},
	{Name: "location-formats-its-target", Breaks: "store.Location's Format printing the masked URL",
		File: "store/dburl.go", Pkg: "./store", Run: "^TestLocationCannotLeak$",
		Old: "\tdefault:\n\t\tfmt.Fprint(f, l.Masked)\n", New: "\tdefault:\n\t\tfmt.Fprint(f, l.Target())\n"},
	{Name: "server-text-raw-on-terminal", Breaks: "control characters removed from a server's text before the terminal",
		File: "internal/redact/redact.go", Pkg: "./internal/cli/fred", Run: "^TestServerTextIsCleanedForTheTerminal$",
		Old: "case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):", New: "case false:"},
	{Name: "logout-keeps-the-spool", Breaks: "fred logout deleting the spool",
		File: "internal/cli/fred/fred.go", Pkg: "./internal/cli/fred", Run: "^TestLoginAsAnotherUserPurgesTheSpool$",
		Old: "\tif err := central.PurgeSpool(dir); err != nil {\n\t\treturn fmt.Errorf(\"logged out,", New: "\tif err := error(nil); err != nil {\n\t\treturn fmt.Errorf(\"logged out,"},
	{Name: "nul-stored-raw", Breaks: "a NUL in user_input replaced before PostgreSQL sees it",
		File: "telemetry/text.go", Pkg: "./telemetry/selfhost", Run: "^TestNULInTextIsStoredNotRetriedForever$/^postgres$",
		Old: "return strings.ReplaceAll(strings.ToValidUTF8(v, \"\\uFFFD\"), \"\\x00\", \"\\uFFFD\")", New: "return v"},
	{Name: "sqlite-file-world-readable", Breaks: "a new SQLite file created 0600",
		File: "store/sqlite.go", Pkg: "./telemetry/selfhost", Run: "^TestSQLiteFileIsTheOwners$",
		Old: "os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)", New: "os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)"},
}

func TestHardeningMutants(t *testing.T) { proof.RunMutants(t, hardeningMutants) }
