// Package transport is the durable transport under the routes: watermill-sql publishers and subscribers on
// the store's database, with the SQLite schema and offsets adapters that watermill-sql does not ship.
package transport

import (
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"strings"

	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
)

// SQLiteSchema is the watermill-sql SchemaAdapter for SQLite. Messages get an INTEGER PRIMARY KEY
// AUTOINCREMENT offset. Ordering by offset is safe because SQLite has one writer at a time: a row with a
// lower offset can never commit after a row with a higher one (the gap PostgreSQL needs xid8 for).
type SQLiteSchema struct {
	// GenerateMessagesTableName overrides the table name for a topic (already quoted).
	GenerateMessagesTableName func(topic string) string
	// SubscribeBatchSize is the number of messages read per query; default 100.
	SubscribeBatchSize int
}

// SchemaInitializingQueries creates the topic's message table.
func (s SQLiteSchema) SchemaInitializingQueries(params wmsql.SchemaInitializingQueriesParams) ([]wmsql.Query, error) {
	return []wmsql.Query{{Query: `CREATE TABLE IF NOT EXISTS ` + s.MessagesTable(params.Topic) + ` (
		"offset" INTEGER PRIMARY KEY AUTOINCREMENT,
		"uuid" TEXT NOT NULL,
		"created_at" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
		"payload" BLOB,
		"metadata" TEXT
	)`}}, nil
}

// InsertQuery inserts messages in one statement.
func (s SQLiteSchema) InsertQuery(params wmsql.InsertQueryParams) (wmsql.Query, error) {
	args := make([]any, 0, 3*len(params.Msgs))
	for _, msg := range params.Msgs {
		md, err := json.Marshal(msg.Metadata)
		if err != nil {
			return wmsql.Query{}, fmt.Errorf("marshal metadata of message %s: %w", msg.UUID, err)
		}
		args = append(args, msg.UUID, []byte(msg.Payload), string(md))
	}
	q := `INSERT INTO ` + s.MessagesTable(params.Topic) + ` ("uuid", "payload", "metadata") VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?,?,?),", len(params.Msgs)), ",")
	return wmsql.Query{Query: q, Args: args}, nil
}

func (s SQLiteSchema) batchSize() int {
	if s.SubscribeBatchSize <= 0 {
		return 100
	}
	return s.SubscribeBatchSize
}

// SelectQuery reads the next messages after the consumer group's acked offset.
func (s SQLiteSchema) SelectQuery(params wmsql.SelectQueryParams) (wmsql.Query, error) {
	next, err := params.OffsetsAdapter.NextOffsetQuery(wmsql.NextOffsetQueryParams{Topic: params.Topic, ConsumerGroup: params.ConsumerGroup})
	if err != nil {
		return wmsql.Query{}, err
	}
	q := `SELECT "offset", "uuid", "payload", "metadata" FROM ` + s.MessagesTable(params.Topic) +
		` WHERE "offset" > (` + next.Query + `) ORDER BY "offset" ASC LIMIT ` + fmt.Sprint(s.batchSize())
	return wmsql.Query{Query: q, Args: next.Args}, nil
}

// UnmarshalMessage scans one row.
func (s SQLiteSchema) UnmarshalMessage(params wmsql.UnmarshalMessageParams) (wmsql.Row, error) {
	var r wmsql.Row
	var uuid string
	var md stdsql.NullString
	if err := params.Row.Scan(&r.Offset, &uuid, &r.Payload, &md); err != nil {
		return wmsql.Row{}, fmt.Errorf("scan message row: %w", err)
	}
	r.UUID = []byte(uuid)
	msg := message.NewMessage(uuid, r.Payload)
	if md.Valid && md.String != "" && md.String != "null" {
		if err := json.Unmarshal([]byte(md.String), &msg.Metadata); err != nil {
			return wmsql.Row{}, fmt.Errorf("unmarshal metadata: %w", err)
		}
	}
	r.Metadata = []byte(md.String)
	r.Msg = msg
	return r, nil
}

// SubscribeIsolationLevel is the default: SQLite transactions are serializable, and the store's one
// writer runs them one at a time, so consumers of one group never overlap.
func (s SQLiteSchema) SubscribeIsolationLevel() stdsql.IsolationLevel { return stdsql.LevelDefault }

// MessagesTable is the quoted table name of a topic.
func (s SQLiteSchema) MessagesTable(topic string) string {
	if s.GenerateMessagesTableName != nil {
		return s.GenerateMessagesTableName(topic)
	}
	return `"watermill_` + topic + `"`
}

// SQLiteOffsetsAdapter is the watermill-sql OffsetsAdapter for SQLite: one row per consumer group with the
// last acked offset, written in the same transaction that read the messages.
type SQLiteOffsetsAdapter struct {
	// GenerateMessagesOffsetsTableName overrides the offsets table name for a topic (already quoted).
	GenerateMessagesOffsetsTableName func(topic string) string
}

// SchemaInitializingQueries creates the offsets table.
func (a SQLiteOffsetsAdapter) SchemaInitializingQueries(params wmsql.OffsetsSchemaInitializingQueriesParams) ([]wmsql.Query, error) {
	return []wmsql.Query{{Query: `CREATE TABLE IF NOT EXISTS ` + a.MessagesOffsetsTable(params.Topic) + ` (
		consumer_group TEXT NOT NULL PRIMARY KEY,
		offset_acked INTEGER,
		offset_consumed INTEGER NOT NULL
	)`}}, nil
}

// AckMessageQuery stores the last processed offset.
func (a SQLiteOffsetsAdapter) AckMessageQuery(params wmsql.AckMessageQueryParams) (wmsql.Query, error) {
	q := `INSERT INTO ` + a.MessagesOffsetsTable(params.Topic) + ` (offset_consumed, offset_acked, consumer_group)
		VALUES (?, ?, ?) ON CONFLICT(consumer_group) DO UPDATE SET offset_consumed = excluded.offset_consumed, offset_acked = excluded.offset_acked`
	return wmsql.Query{Query: q, Args: []any{params.LastRow.Offset, params.LastRow.Offset, params.ConsumerGroup}}, nil
}

// ConsumedMessageQuery is empty: the IMMEDIATE transaction already excludes other consumers, and a write
// here would only lengthen the time the write lock is held.
func (a SQLiteOffsetsAdapter) ConsumedMessageQuery(wmsql.ConsumedMessageQueryParams) (wmsql.Query, error) {
	return wmsql.Query{}, nil
}

// NextOffsetQuery selects the consumer group's acked offset (0 when new).
func (a SQLiteOffsetsAdapter) NextOffsetQuery(params wmsql.NextOffsetQueryParams) (wmsql.Query, error) {
	return wmsql.Query{
		Query: `SELECT COALESCE((SELECT offset_acked FROM ` + a.MessagesOffsetsTable(params.Topic) + ` WHERE consumer_group = ?), 0)`,
		Args:  []any{params.ConsumerGroup},
	}, nil
}

// BeforeSubscribingQueries needs nothing.
func (a SQLiteOffsetsAdapter) BeforeSubscribingQueries(wmsql.BeforeSubscribingQueriesParams) ([]wmsql.Query, error) {
	return nil, nil
}

// MessagesOffsetsTable is the quoted offsets table name of a topic.
func (a SQLiteOffsetsAdapter) MessagesOffsetsTable(topic string) string {
	if a.GenerateMessagesOffsetsTableName != nil {
		return a.GenerateMessagesOffsetsTableName(topic)
	}
	return `"watermill_offsets_` + topic + `"`
}

// Interface guards.
var (
	_ wmsql.SchemaAdapter  = SQLiteSchema{}
	_ wmsql.OffsetsAdapter = SQLiteOffsetsAdapter{}
)
