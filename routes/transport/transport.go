package transport

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" database/sql driver
	_ "modernc.org/sqlite"             // "sqlite" database/sql driver
)

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// OpenSQLite opens a SQLite file the way the transport needs it: WAL, synchronous FULL, a busy timeout and
// transactions that take the write lock at BEGIN (IMMEDIATE), so a transaction never fails upgrading its
// lock and there is one writer at a time. conns bounds the pool (1 in production: one writer connection).
func OpenSQLite(path string, conns int) (*stdsql.DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create directory for %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_txlock", "immediate")
	db, err := stdsql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(max(conns, 1))
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// Config configures the transport.
type Config struct {
	DB *stdsql.DB
	// Dialect is "sqlite" or "postgres".
	Dialect string
	// TablePrefix prefixes message and offsets tables; default "kp_wm_".
	TablePrefix string
	// PollInterval is how often an idle subscriber looks for new messages; default 200ms.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Transport makes publishers and subscribers for one database.
type Transport struct {
	cfg     Config
	schema  wmsql.SchemaAdapter
	offsets wmsql.OffsetsAdapter
	logger  watermill.LoggerAdapter
}

// New checks the config and picks the schema adapters for the dialect.
func New(cfg Config) (*Transport, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("transport: no database")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "kp_wm_"
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	t := &Transport{cfg: cfg, logger: watermill.NewSlogLogger(cfg.Logger)}
	msgTable := func(topic string) string { return `"` + cfg.TablePrefix + topic + `"` }
	offTable := func(topic string) string { return `"` + cfg.TablePrefix + "offsets_" + topic + `"` }
	switch cfg.Dialect {
	case SQLite:
		t.schema = SQLiteSchema{GenerateMessagesTableName: msgTable, SubscribeBatchSize: 10}
		t.offsets = SQLiteOffsetsAdapter{GenerateMessagesOffsetsTableName: offTable}
	case Postgres:
		t.schema = wmsql.DefaultPostgreSQLSchema{GenerateMessagesTableName: msgTable, GeneratePayloadType: func(string) string { return "BYTEA" }, SubscribeBatchSize: 10}
		t.offsets = wmsql.DefaultPostgreSQLOffsetsAdapter{GenerateMessagesOffsetsTableName: offTable}
	default:
		return nil, fmt.Errorf("transport: dialect %q is not sqlite or postgres", cfg.Dialect)
	}
	return t, nil
}

// Publisher publishes on the database (each Publish is one transaction).
func (t *Transport) Publisher() (message.Publisher, error) {
	return wmsql.NewPublisher(wmsql.BeginnerFromStdSQL(t.cfg.DB), wmsql.PublisherConfig{
		SchemaAdapter: t.schema, AutoInitializeSchema: true,
	}, t.logger)
}

// TxPublisher publishes inside an open transaction (outbox: the message commits with the caller's writes).
func (t *Transport) TxPublisher(tx wmsql.ContextExecutor) (message.Publisher, error) {
	return wmsql.NewPublisher(tx, wmsql.PublisherConfig{SchemaAdapter: t.schema}, t.logger)
}

// Subscriber subscribes with a consumer group.
func (t *Transport) Subscriber(consumerGroup string) (message.Subscriber, error) {
	ack := 5 * time.Minute
	sub, err := wmsql.NewSubscriber(wmsql.BeginnerFromStdSQL(t.cfg.DB), wmsql.SubscriberConfig{
		ConsumerGroup:    consumerGroup,
		PollInterval:     t.cfg.PollInterval,
		ResendInterval:   t.cfg.PollInterval,
		RetryInterval:    time.Second,
		AckDeadline:      &ack,
		SchemaAdapter:    t.schema,
		OffsetsAdapter:   t.offsets,
		InitializeSchema: true,
	}, t.logger)
	if err != nil {
		return nil, err
	}
	return &closingSubscriber{sub: sub, closing: make(chan struct{})}, nil
}

// closingSubscriber makes Close return only once every channel Subscribe
// returned is closed, as watermill's Subscriber contract (and its conformance
// suite) expects. watermill-sql v4.1.2 marks its consumer done before it
// closes the channel, so its Close can return with the channel still open —
// a race the conformance suite hit now and then. Messages pass through one
// forwarding goroutine per subscription; one not handed out because the
// subscriber closes (or ctx ends) is never acknowledged, so it is delivered
// again, as with any unacknowledged message.
type closingSubscriber struct {
	sub     *wmsql.Subscriber
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func (s *closingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		for m := range in { // watermill closes in when it stops, for whatever reason
			select {
			case out <- m:
			case <-s.closing:
			case <-ctx.Done():
			}
		}
	}()
	return out, nil
}

// SubscribeInitialize creates the topic's tables (message.SubscribeInitializer).
func (s *closingSubscriber) SubscribeInitialize(topic string) error {
	return s.sub.SubscribeInitialize(topic)
}

func (s *closingSubscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	err := s.sub.Close()
	s.wg.Wait()
	return err
}

// Logger is the watermill logger adapter the transport uses.
func (t *Transport) Logger() watermill.LoggerAdapter { return t.logger }
