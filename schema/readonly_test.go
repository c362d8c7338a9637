package schema_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/fredcode/fredtel/schema"
)

// TestDeclarationIsReadOnly: what the package hands out (the record list,
// field handles, enums, fixed words, indexes, the declaration) are copies
// or read-only views: changing them changes neither what the validator
// and the clients accept nor the DDL.
func TestDeclarationIsReadOnly(t *testing.T) {
	for _, v := range []any{schema.Field{}, schema.Record{}, schema.Pattern{}} {
		for f := range reflect.TypeOf(v).Fields() {
			if f.IsExported() {
				t.Errorf("%T.%s can be set from outside the package", v, f.Name)
			}
		}
	}
	sql := func() []string {
		return slices.Concat(schema.Current().Whole(schema.Postgres, schema.CentralSet), schema.DDL(schema.Postgres, schema.CentralSet, 2), schema.DDL(schema.SQLite, schema.CentralSet, schema.Version))
	}
	ddl := sql()
	recs := schema.Records()
	recs[1] = nil
	h := schema.TurnFields()
	slices.Reverse(h.Mode.Enum())
	h.Mode = h.Model
	schema.APIRetryFields().ErrorType.Enum()[0] = "sideways"
	schema.FixedModelNames()[0] = "sideways"
	ixs := schema.CentralSet.Indexes(schema.Turns())
	ixs[len(ixs)-1].Columns[0], ixs[len(ixs)-1].Include[0] = "sideways", "sideways"
	dc := schema.Current()
	dc.Records[1], dc.Retired[0].Name = nil, "sideways"
	dc.Rollups[0].Keys[0], dc.Rollups[1].Counts[0].Name, dc.Rollups[0].Indexes[0].Columns[0] = "sideways", "sideways", "sideways"
	schema.Rollups()[0].Table = "sideways"
	hr := schema.HourRollups()[0]
	hr.Table, hr.Buckets[0].Expr = "sideways", "sideways"
	schema.Current().WithEnumValue("turn", "mode", "sideways", schema.Version+1)
	mode := schema.Turns().Field("mode")
	switch {
	case schema.Records()[1] != schema.Turns(), schema.Current().Records[1] != schema.Turns():
		t.Error("the record list changed through a copy")
	case schema.TurnFields().Mode != mode, mode.Enum()[0] != "act", mode.Allows("sideways"):
		t.Error("the turn's mode changed through a handle or its enum")
	case schema.Events().Prop("api_retry", "error_type").Allows("sideways"), schema.FixedModelNames()[0] != "custom":
		t.Error("a prop's enum or the fixed words changed through a copy")
	case schema.Rollups()[0].Keys[0] != "session_id", schema.HourRollups()[0].Table != "turn_hours":
		t.Error("a rollup changed through a copy")
	case !slices.Equal(sql(), ddl):
		t.Error("the DDL changed through a copy of an index or of the declaration")
	}
}
