package wire

import (
	"net/http"
	"slices"
	"strings"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// Names come from closed vocabularies (SPEC §4): from schema version 2 on,
// a model, tool or command name is either in its session's catalog
// (model_catalog, tool_catalog, command_catalog: the build's own names) or
// one of the fixed words (schema.FixedModelNames(), FixedToolNames,
// FixedCommandNames). Validate notes every such name (Batch.Names) by the
// pattern of its field, so the rule follows the declaration; CheckNames
// checks them once the catalogs of the sessions they belong to are known.
// Version 1 batches keep version 1's rules: a v1 client's batch is stored
// whole.

// NameKind is the vocabulary a name belongs to.
type NameKind uint8

const (
	ModelName NameKind = iota
	ToolName
	CommandName
)

// kindOf is the vocabulary of a field's values, by its pattern.
func kindOf(f *schema.Field) (NameKind, bool) {
	switch f.Pattern() {
	case schema.PatModel():
		return ModelName, true
	case schema.PatToolName():
		return ToolName, true
	case schema.PatCommand():
		return CommandName, true
	}
	return 0, false
}

var (
	catalogField = [...]string{ModelName: "model_catalog", ToolName: "tool_catalog", CommandName: "command_catalog"}
	fixedWords   = [...][]string{ModelName: schema.FixedModelNames(), ToolName: schema.FixedToolNames(), CommandName: schema.FixedCommandNames()}
)

// NameRef is a name of a batch that must be in its session's catalog.
type NameRef struct {
	Kind    NameKind
	Session uuid.UUID
	Name    string
	at      loc
}

// Field is the path of the name in the batch, e.g. "turns[3].model".
func (r NameRef) Field() string { return r.at.String() }

// Catalogs are a session's catalogs, sorted for lookups.
type Catalogs struct {
	lists [3][]string // by NameKind
}

// NewCatalogs makes the catalogs of a session from its lists (which it
// copies: the strings may point into a request's body).
func NewCatalogs(models, tools, commands []string) *Catalogs {
	c := &Catalogs{}
	for k, l := range [3][]string{models, tools, commands} {
		cp := make([]string, len(l))
		for i, s := range l {
			cp[i] = strings.Clone(s)
		}
		slices.Sort(cp)
		c.lists[k] = slices.Compact(cp)
	}
	return c
}

// Has reports whether name is in the catalog of its kind.
func (c *Catalogs) Has(k NameKind, name string) bool {
	_, ok := slices.BinarySearch(c.lists[k], name)
	return ok
}

// Size is about the bytes the catalogs hold, for a cache's budget.
func (c *Catalogs) Size() int {
	n := 64
	for _, l := range c.lists {
		n += 16 * len(l)
		for _, s := range l {
			n += len(s)
		}
	}
	return n
}

// Key is the catalogs' content as one string, to share equal ones.
func (c *Catalogs) Key() string {
	var b strings.Builder
	for _, l := range c.lists {
		for _, s := range l {
			b.WriteString(s)
			b.WriteByte(0)
		}
		b.WriteByte(1)
	}
	return b.String()
}

// NameSessions lists the sessions whose catalogs CheckNames needs beyond
// the batch's own session records, each once.
func (b *Batch) NameSessions() []uuid.UUID {
	if len(b.Names) == 0 {
		return nil
	}
	own := make(map[uuid.UUID]bool, len(b.Sessions))
	for i := range b.Sessions {
		own[b.Sessions[i].SessionID] = true
	}
	var out []uuid.UUID
	for _, n := range b.Names {
		if !own[n.Session] && !isFixed(n.Kind, n.Name) {
			own[n.Session] = true
			out = append(out, n.Session)
		}
	}
	return out
}

func isFixed(k NameKind, name string) bool { return slices.Contains(fixedWords[k], name) }

// OwnCatalogs are the catalogs of the sessions whose records are in the
// batch (the union, should a session come twice).
func (b *Batch) OwnCatalogs() map[uuid.UUID]*Catalogs {
	out := make(map[uuid.UUID]*Catalogs, len(b.Sessions))
	lists := map[uuid.UUID]*[3][]string{}
	for i := range b.Sessions {
		s := &b.Sessions[i]
		l := lists[s.SessionID]
		if l == nil {
			l = &[3][]string{}
			lists[s.SessionID] = l
		}
		l[ModelName] = append(l[ModelName], s.ModelCatalog...)
		l[ToolName] = append(l[ToolName], s.ToolCatalog...)
		l[CommandName] = append(l[CommandName], s.CommandCatalog...)
	}
	for id, l := range lists {
		out[id] = NewCatalogs(l[ModelName], l[ToolName], l[CommandName])
	}
	return out
}

// CheckNames refuses the batch at its first name that is neither a fixed
// word nor in its session's catalogs: those of the batch's own session
// records, else known(session) (nil for a session not known: then only
// the fixed words pass).
func CheckNames(b *Batch, known func(uuid.UUID) *Catalogs) *Rejection {
	if len(b.Names) == 0 {
		return nil
	}
	var own map[uuid.UUID]*Catalogs
	for _, n := range b.Names {
		if isFixed(n.Kind, n.Name) {
			continue
		}
		if own == nil {
			own = b.OwnCatalogs()
		}
		c, ok := own[n.Session]
		if !ok {
			c = known(n.Session)
		}
		if c != nil && c.Has(n.Kind, n.Name) { // mutant:catalog-membership-off
			continue
		}
		return Reject(http.StatusBadRequest, "name_not_in_catalog", n.Field(),
			"not in the session's %s nor one of %s", catalogField[n.Kind], strings.Join(fixedWords[n.Kind], ", "))
	}
	return nil
}
