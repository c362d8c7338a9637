package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/fredcode/fredtel/schema"
	"github.com/google/uuid"
)

// Catalogs are the names a session's build offers, as its session record
// stated them: what the ingest server checks the session's model, tool and
// command names against (schema version 2 and later).
type Catalogs struct {
	Models, Tools, Commands []string
}

func (s *pgStore) SessionCatalogs(ctx context.Context, userID string, ids []uuid.UUID) (map[uuid.UUID]Catalogs, error) {
	if s.set != schema.CentralSet {
		return nil, ErrCentralOnly
	}
	out := map[uuid.UUID]Catalogs{}
	if len(ids) == 0 {
		return out, nil
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	rows, err := s.pool.Query(ctx, `SELECT session_id::text, tool_catalog::text, command_catalog::text, model_catalog::text
		FROM telemetry_sessions WHERE session_id = ANY($1::uuid[]) AND user_id = $2`, strs, userID)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classify(err))
	}
	defer rows.Close()
	if err := scanCatalogs(out, rows); err != nil {
		return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classify(err))
	}
	return out, nil
}

func (s *sqliteStore) SessionCatalogs(ctx context.Context, userID string, ids []uuid.UUID) (map[uuid.UUID]Catalogs, error) {
	if s.set != schema.CentralSet {
		return nil, ErrCentralOnly
	}
	out := map[uuid.UUID]Catalogs{}
	for start := 0; start < len(ids); start += sqliteMaxVars - 1 {
		chunk := ids[start:min(len(ids), start+sqliteMaxVars-1)]
		args := make([]any, 0, len(chunk)+1)
		for _, id := range chunk {
			args = append(args, id.String())
		}
		args = append(args, userID)
		rows, err := s.db.QueryContext(ctx, "SELECT session_id, tool_catalog, command_catalog, model_catalog FROM telemetry_sessions WHERE session_id IN ("+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+") AND user_id = ?", args...)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classifySQLite(err))
		}
		err = scanCatalogs(out, rows)
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", s.loc.Masked, classifySQLite(err))
		}
	}
	return out, nil
}

// scanCatalogs reads rows of (session_id, tool_catalog, command_catalog,
// model_catalog), the lists as JSON text, into out.
func scanCatalogs(out map[uuid.UUID]Catalogs, rows rowReader) error {
	for rows.Next() {
		var sid, tools, commands string
		var models *string
		if err := rows.Scan(&sid, &tools, &commands, &models); err != nil {
			return err
		}
		u, err := uuid.Parse(sid)
		if err != nil {
			return err
		}
		var c Catalogs
		if err := json.Unmarshal([]byte(tools), &c.Tools); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(commands), &c.Commands); err != nil {
			return err
		}
		if models != nil {
			if err := json.Unmarshal([]byte(*models), &c.Models); err != nil {
				return err
			}
		}
		out[u] = c
	}
	return rows.Err()
}
