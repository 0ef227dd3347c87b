// Package sql is the SQL adapter: inbound it polls a query on a source database with a cursor column and
// checkpoints the cursor in the store after the rows are durable; outbound it inserts or upserts the
// transformed fields into a table, idempotently. Drivers: sqlite (modernc) and postgres (pgx).
package sql

import (
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // postgres driver
	_ "modernc.org/sqlite"             // sqlite driver

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/transforms"
)

func init() {
	adapters.Register(adapters.Registration{ID: "inbound.sql", Spec: InboundSpec, New: func() any { return new(Inbound) }})
	adapters.Register(adapters.Registration{ID: "outbound.sql", Spec: OutboundSpec, New: func() any { return new(Outbound) }})
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

var dbFields = []adapters.Field{
	{Name: "driver", Type: adapters.TypeString, Required: true, Enum: []string{"sqlite", "postgres"}, Description: "Database kind."},
	{Name: "dsn", Type: adapters.TypeSecret, Required: true, Description: "SQLite file path (relative to the route file) or postgres:// URL; usually ${ENV_VAR} when it holds a password."},
}

// openDB opens the source or target database. It refuses the store's own SQLite file (st, when set): the
// store is the one writer on it, and a second connection writing there would wait for (or break) its lock.
func openDB(driver, dsn, dir string, st *store.Store) (*stdsql.DB, error) {
	switch driver {
	case "sqlite":
		if !filepath.IsAbs(dsn) {
			dsn = filepath.Join(dir, dsn)
		}
		if st != nil && st.IsFile(dsn) {
			return nil, fmt.Errorf("%s is Koppelpoort's own store: point the adapter at the source or target system's database", dsn)
		}
		db, err := stdsql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		return db, db.Ping()
	case "postgres":
		db, err := stdsql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		return db, db.Ping()
	}
	return nil, fmt.Errorf("unknown driver %q", driver)
}

func placeholder(driver string, n int) string {
	if driver == "postgres" {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

func quote(id string) string { return `"` + id + `"` }

// OutboundSpec is the outbound SQL adapter's settings.
var OutboundSpec = adapters.Spec{
	Summary: "Insert or upsert the transformed fields into a table. Objects and lists are stored as JSON text. Idempotent: upserts by key; inserts skip a row whose idempotency column already holds the delivery's key.",
	Fields: append(append([]adapters.Field{}, dbFields...),
		adapters.Field{Name: "table", Type: adapters.TypeString, Required: true, Description: "Table name."},
		adapters.Field{Name: "columns", Type: adapters.TypeMap, Description: "column: field of the transformed record. Default: every field into the column of the same name."},
		adapters.Field{Name: "mode", Type: adapters.TypeString, Default: "insert", Enum: []string{"insert", "upsert"}, Description: "insert adds a row; upsert inserts or updates the row with the same key."},
		adapters.Field{Name: "key", Type: adapters.TypeStrings, Description: "Key columns for upsert (a unique constraint must exist on them)."},
		adapters.Field{Name: "idempotency_column", Type: adapters.TypeString, Description: "Column (with a unique constraint) that stores each delivery's idempotency key, so a retried insert is skipped."},
		adapters.Field{Name: "create_table", Type: adapters.TypeBool, Default: false, Description: "Create the table (TEXT columns, with the key or idempotency column unique) if it does not exist. Needs columns."},
	),
}

// Outbound writes rows.
type Outbound struct {
	Driver            string            `yaml:"driver"`
	DSN               string            `yaml:"dsn"`
	Table             string            `yaml:"table"`
	Columns           map[string]string `yaml:"columns"`
	Mode              string            `yaml:"mode"`
	Key               []string          `yaml:"key"`
	IdempotencyColumn string            `yaml:"idempotency_column"`
	CreateTable       bool              `yaml:"create_table"`

	db *stdsql.DB
}

// Validate checks identifiers and the mode's requirements.
func (o *Outbound) Validate() error {
	names := append([]string{o.Table}, o.Key...)
	for c := range o.Columns {
		names = append(names, c)
	}
	if o.IdempotencyColumn != "" {
		names = append(names, o.IdempotencyColumn)
	}
	for _, n := range names {
		if !identifier.MatchString(n) {
			return fmt.Errorf("%q is not a plain SQL identifier (letters, digits, _)", n)
		}
	}
	if o.Mode == "upsert" && len(o.Key) == 0 {
		return errors.New("mode upsert needs key: the columns that identify a row")
	}
	for _, k := range o.Key {
		if _, ok := o.Columns[k]; len(o.Columns) > 0 && !ok {
			return fmt.Errorf("key column %q is not in columns", k)
		}
	}
	if o.CreateTable && len(o.Columns) == 0 {
		return errors.New("create_table needs columns")
	}
	return nil
}

// Provision opens the database and creates the table when asked.
func (o *Outbound) Provision(ctx context.Context, h adapters.Host) error {
	db, err := openDB(o.Driver, o.DSN, h.Dir, h.Store)
	if err != nil {
		return fmt.Errorf("sql outbound: open %s: %w", o.Driver, err)
	}
	o.db = db
	if !o.CreateTable {
		return nil
	}
	cols := sortedKeys(o.Columns)
	var defs []string
	for _, c := range cols {
		defs = append(defs, quote(c)+" TEXT")
	}
	if o.IdempotencyColumn != "" {
		defs = append(defs, quote(o.IdempotencyColumn)+" TEXT UNIQUE")
	}
	if len(o.Key) > 0 {
		var ks []string
		for _, k := range o.Key {
			ks = append(ks, quote(k))
		}
		defs = append(defs, "UNIQUE ("+strings.Join(ks, ", ")+")")
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+quote(o.Table)+" ("+strings.Join(defs, ", ")+")"); err != nil {
		return fmt.Errorf("sql outbound: create table %s: %w", o.Table, err)
	}
	return nil
}

// Close closes the database (safe when never provisioned).
func (o *Outbound) Close() error {
	if o.db == nil {
		return nil
	}
	return o.db.Close()
}

// Deliver writes one row.
func (o *Outbound) Deliver(ctx context.Context, d adapters.Delivery) error {
	mapping := o.Columns
	if len(mapping) == 0 {
		mapping = map[string]string{}
		for k := range d.Fields {
			if !identifier.MatchString(k) {
				return fmt.Errorf("field %q cannot be a column name; map it to one with the columns setting", k)
			}
			mapping[k] = k
		}
	}
	cols := sortedKeys(mapping)
	var names, marks []string
	var args []any
	for i, c := range cols {
		v, err := sqlValue(d.Fields[mapping[c]])
		if err != nil {
			return fmt.Errorf("column %s: %w", c, err)
		}
		names = append(names, quote(c))
		marks = append(marks, placeholder(o.Driver, i+1))
		args = append(args, v)
	}
	if o.IdempotencyColumn != "" {
		names = append(names, quote(o.IdempotencyColumn))
		marks = append(marks, placeholder(o.Driver, len(args)+1))
		args = append(args, d.IdempotencyKey)
	}
	q := "INSERT INTO " + quote(o.Table) + " (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
	switch {
	case o.Mode == "upsert":
		var keys, sets []string
		for _, k := range o.Key {
			keys = append(keys, quote(k))
		}
		for _, n := range names {
			sets = append(sets, n+" = excluded."+n)
		}
		q += " ON CONFLICT (" + strings.Join(keys, ", ") + ") DO UPDATE SET " + strings.Join(sets, ", ")
	case o.IdempotencyColumn != "":
		q += " ON CONFLICT (" + quote(o.IdempotencyColumn) + ") DO NOTHING"
	}
	if _, err := o.db.ExecContext(ctx, q, args...); err != nil {
		if ctx.Err() != nil || isTransient(err) {
			return adapters.Transient(fmt.Errorf("write %s: %w", o.Table, err))
		}
		return fmt.Errorf("write %s: %w", o.Table, err)
	}
	return nil
}

// isTransient: locks and lost connections are worth a retry; constraint and schema errors are not.
func isTransient(err error) bool {
	s := strings.ToLower(err.Error())
	for _, t := range []string{"locked", "busy", "connection", "timeout", "broken pipe", "deadlock", "too many clients"} {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

func sqlValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string, bool, int, int64, float64:
		return x, nil
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// InboundSpec is the inbound SQL adapter's settings.
var InboundSpec = adapters.Spec{
	Summary: "Poll a query on a source database. The query selects the rows after the last cursor in cursor order; the cursor is checkpointed in the store after the rows are durable. With tiebreak_column the cursor is the pair (cursor_column, tiebreak_column), so a row committed later with the same cursor value as the last one read is still picked up.",
	Fields: append(append([]adapters.Field{}, dbFields...),
		adapters.Field{Name: "query", Type: adapters.TypeString, Required: true, Description: "{cursor} and {tiebreak} mark the last row's values (each may appear more than once), e.g. SELECT * FROM export_patients WHERE (changed_at, id) > ({cursor}, {tiebreak}) ORDER BY changed_at, id LIMIT 500"},
		adapters.Field{Name: "cursor_column", Type: adapters.TypeString, Required: true, Description: "Column of the result that orders the rows and becomes the next cursor."},
		adapters.Field{Name: "tiebreak_column", Type: adapters.TypeString, Description: "Unique, non-null column (e.g. id) that orders the rows with the same cursor value; its last value fills {tiebreak} (NULL before the first row). Without it, a row committed after a poll with the same cursor value as the last one read is never picked up."},
		adapters.Field{Name: "initial_cursor", Type: adapters.TypeString, Default: "", Description: "Cursor value before the first poll (e.g. 0 or 1970-01-01)."},
		adapters.Field{Name: "key_column", Type: adapters.TypeString, Description: "Column that identifies a row (the record key). Default: the tiebreak column, else the cursor column."},
		adapters.Field{Name: "columns", Type: adapters.TypeStrings, Description: "Result columns, so expressions are checked at load."},
		adapters.Field{Name: "poll_interval", Type: adapters.TypeDuration, Default: "10s", Description: "Wait between polls when no rows came back."},
	),
}

// Inbound polls a query.
type Inbound struct {
	Driver         string   `yaml:"driver"`
	DSN            string   `yaml:"dsn"`
	Query          string   `yaml:"query"`
	CursorColumn   string   `yaml:"cursor_column"`
	TiebreakColumn string   `yaml:"tiebreak_column"`
	InitialCursor  string   `yaml:"initial_cursor"`
	KeyColumn      string   `yaml:"key_column"`
	Columns        []string `yaml:"columns"`
	PollInterval   string   `yaml:"poll_interval"`

	db    *stdsql.DB
	cps   adapters.Checkpoints
	route string
	poll  time.Duration
	log   *slog.Logger
}

// Validate checks the query's placeholders against the cursor settings.
func (in *Inbound) Validate() error {
	if !strings.Contains(in.Query, "{cursor}") {
		return errors.New("query must contain {cursor} (where the last cursor value goes)")
	}
	if in.TiebreakColumn == "" && strings.Contains(in.Query, "{tiebreak}") {
		return errors.New("query uses {tiebreak} but tiebreak_column is not set")
	}
	if in.TiebreakColumn != "" && !strings.Contains(in.Query, "{tiebreak}") {
		return fmt.Errorf("tiebreak_column %s needs {tiebreak} in the query, e.g. WHERE (%s, %s) > ({cursor}, {tiebreak}) ORDER BY %s, %s",
			in.TiebreakColumn, in.CursorColumn, in.TiebreakColumn, in.CursorColumn, in.TiebreakColumn)
	}
	return nil
}

// Shape: the declared columns.
func (in *Inbound) Shape() transforms.Shape { return transforms.Shape{Fields: in.Columns} }

// Provision opens the source database.
func (in *Inbound) Provision(_ context.Context, h adapters.Host) error {
	if h.Checkpoints == nil {
		return errors.New("sql inbound: no checkpoint store")
	}
	db, err := openDB(in.Driver, in.DSN, h.Dir, h.Store)
	if err != nil {
		return fmt.Errorf("sql inbound: open %s: %w", in.Driver, err)
	}
	in.db, in.cps, in.route, in.log = db, h.Checkpoints, h.Route, h.Logger
	if in.log == nil {
		in.log = slog.Default()
	}
	in.poll, err = time.ParseDuration(in.PollInterval)
	return err
}

// Close closes the source database.
func (in *Inbound) Close() error {
	if in.db == nil {
		return nil
	}
	return in.db.Close()
}

// Run polls until ctx ends.
func (in *Inbound) Run(ctx context.Context, sink adapters.Sink) error {
	for ctx.Err() == nil {
		n, err := in.PollOnce(ctx, sink)
		if err != nil && ctx.Err() == nil {
			in.log.Warn("sql inbound: poll failed", "error", err)
		}
		if n == 0 || err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(in.poll):
			}
		}
	}
	return nil
}

// checkpointName is where the cursor is kept. The pair cursor has a name of its own: its value is a JSON
// pair, and a route that adds tiebreak_column starts from its old single cursor (see position).
func (in *Inbound) checkpointName() string {
	if in.TiebreakColumn != "" {
		return "sql:" + in.CursorColumn + "+" + in.TiebreakColumn
	}
	return "sql:" + in.CursorColumn
}

// position is the last row read: its cursor value and, with tiebreak_column, its tiebreak value (nil
// before the first row, so the first poll takes the rows after initial_cursor, as without a tiebreak).
func (in *Inbound) position(ctx context.Context) (cursor, tiebreak any, err error) {
	v, ok, err := in.cps.Get(ctx, in.route, in.checkpointName())
	if err != nil || !ok {
		if err == nil && in.TiebreakColumn != "" {
			// A route that had no tiebreak yet goes on from its single cursor.
			v, ok, err = in.cps.Get(ctx, in.route, "sql:"+in.CursorColumn)
		}
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			return in.InitialCursor, nil, nil
		}
		return v, nil, nil
	}
	if in.TiebreakColumn == "" {
		return v, nil, nil
	}
	pair, err := decodeCursor(v)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %s of route %s: %w", in.checkpointName(), in.route, err)
	}
	return pair[0], pair[1], nil
}

// bindQuery puts the driver's numbered placeholders where {cursor} and {tiebreak} are, so each may be
// used more than once (WHERE changed_at > {cursor} OR (changed_at = {cursor} AND id > {tiebreak})).
func (in *Inbound) bindQuery() string {
	r := strings.NewReplacer("{cursor}", numbered(in.Driver, 1), "{tiebreak}", numbered(in.Driver, 2))
	return r.Replace(in.Query)
}

func numbered(driver string, n int) string {
	if driver == "postgres" {
		return "$" + strconv.Itoa(n)
	}
	return "?" + strconv.Itoa(n)
}

// PollOnce reads one batch after the checkpointed cursor, hands it to the sink and moves the cursor.
func (in *Inbound) PollOnce(ctx context.Context, sink adapters.Sink) (int, error) {
	cursor, tiebreak, err := in.position(ctx)
	if err != nil {
		return 0, err
	}
	args := []any{cursor}
	if in.TiebreakColumn != "" {
		args = append(args, tiebreak)
	}
	rows, err := in.db.QueryContext(ctx, in.bindQuery(), args...)
	if err != nil {
		return 0, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	var recs []adapters.Record
	var last [2]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return 0, fmt.Errorf("scan: %w", err)
		}
		raw := map[string]any{}
		fields := map[string]any{}
		for i, c := range cols {
			raw[c], fields[c] = vals[i], fieldValue(vals[i])
		}
		if last, err = in.rowPosition(raw, cols); err != nil {
			return 0, err
		}
		sourceID := fmt.Sprint(fields[in.CursorColumn])
		key := sourceID
		if in.TiebreakColumn != "" {
			key = fmt.Sprint(fields[in.TiebreakColumn])
			sourceID += "|" + key
		}
		if in.KeyColumn != "" {
			key = fmt.Sprint(fields[in.KeyColumn])
		}
		recs = append(recs, adapters.Record{Key: key, Fields: fields,
			Meta: map[string]string{"adapter": "sql", "cursor": fmt.Sprint(fields[in.CursorColumn]), "source_id": sourceID}})
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	rows.Close()
	if len(recs) == 0 {
		return 0, nil
	}
	if err := sink.Accept(ctx, recs); err != nil {
		return 0, err
	}
	next := fmt.Sprint(fieldValue(last[0]))
	if in.TiebreakColumn != "" {
		if next, err = encodeCursor(last); err != nil {
			return 0, err
		}
	}
	// Only after the records are durable does the cursor move: a crash in between re-reads them, and the
	// deliveries' idempotency keys make the second pass a no-op.
	if err := in.cps.Set(ctx, in.route, in.checkpointName(), next); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// rowPosition is a row's cursor (and tiebreak) value as the driver gave it, checked to be usable as the
// next query's parameter.
func (in *Inbound) rowPosition(raw map[string]any, cols []string) ([2]any, error) {
	var pos [2]any
	for i, col := range []string{in.CursorColumn, in.TiebreakColumn} {
		if col == "" {
			continue
		}
		v, ok := raw[col]
		if !ok {
			return pos, fmt.Errorf("the query result has no column %q (columns: %s)", col, strings.Join(cols, ", "))
		}
		if v == nil {
			return pos, fmt.Errorf("column %s is NULL in a row; the cursor columns must not be null (filter such rows out or COALESCE them)", col)
		}
		if _, isTime := v.(time.Time); isTime && in.Driver == "sqlite" {
			// The driver parsed the stored text; compared back as a time it no longer equals it.
			return pos, fmt.Errorf("column %s is declared as a date or time, which the sqlite driver reads as a time that does not compare exactly with the stored text: select it as CAST(%s AS TEXT) AS %s", col, col, col)
		}
		pos[i] = v
	}
	return pos, nil
}

// A cursor value in a pair checkpoint keeps its type, so the next query compares an integer column with
// an integer (SQLite orders any integer before any text) and a timestamp with a timestamp.
type cursorValue struct {
	Int   *int64     `json:"int,omitempty"`
	Float *float64   `json:"float,omitempty"`
	Text  *string    `json:"text,omitempty"`
	Time  *time.Time `json:"time,omitempty"`
}

func encodeCursor(pos [2]any) (string, error) {
	var out [2]cursorValue
	for i, v := range pos {
		switch x := v.(type) {
		case int64:
			out[i].Int = &x
		case int:
			n := int64(x)
			out[i].Int = &n
		case int32:
			n := int64(x)
			out[i].Int = &n
		case float64:
			out[i].Float = &x
		case time.Time:
			out[i].Time = &x
		case []byte:
			s := string(x)
			out[i].Text = &s
		case string:
			out[i].Text = &x
		default:
			s := fmt.Sprint(x)
			out[i].Text = &s
		}
	}
	b, err := json.Marshal(out)
	return string(b), err
}

func decodeCursor(s string) ([2]any, error) {
	var in [2]cursorValue
	var out [2]any
	if err := json.Unmarshal([]byte(s), &in); err != nil {
		return out, fmt.Errorf("not a cursor pair: %w", err)
	}
	for i, v := range in {
		switch {
		case v.Int != nil:
			out[i] = *v.Int
		case v.Float != nil:
			out[i] = *v.Float
		case v.Time != nil:
			out[i] = *v.Time
		case v.Text != nil:
			out[i] = *v.Text
		}
	}
	return out, nil
}

func fieldValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// Interface guards.
var (
	_ adapters.Outbound    = (*Outbound)(nil)
	_ adapters.Provisioner = (*Outbound)(nil)
	_ adapters.Validator   = (*Outbound)(nil)
	_ adapters.Inbound     = (*Inbound)(nil)
	_ adapters.Provisioner = (*Inbound)(nil)
	_ adapters.Validator   = (*Inbound)(nil)
	_ adapters.Shaper      = (*Inbound)(nil)
)
