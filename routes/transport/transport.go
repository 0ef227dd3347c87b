package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/koppelpoort/koppelpoort/store"
)

// Config configures the transport.
type Config struct {
	// Store is the database the topics live in; every transaction goes through it (on SQLite: its one
	// writer), so a message commits with the store writes of the same transaction.
	Store *store.Store
	// TablePrefix prefixes message and offsets tables; default "kp_wm_".
	TablePrefix string
	// PollInterval is how often an idle subscriber looks for new messages; default 200ms.
	PollInterval time.Duration
	Logger       *slog.Logger
}

// Transport makes publishers and subscribers for one store.
type Transport struct {
	cfg     Config
	db      beginner
	schema  wmsql.SchemaAdapter
	offsets wmsql.OffsetsAdapter
	logger  watermill.LoggerAdapter
}

// New checks the config and picks the schema adapters for the store's dialect.
func New(cfg Config) (*Transport, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("transport: no store")
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
	t := &Transport{cfg: cfg, db: beginner{st: cfg.Store}, logger: quietLogger{watermill.NewSlogLogger(cfg.Logger)}}
	msgTable := func(topic string) string { return `"` + cfg.TablePrefix + topic + `"` }
	offTable := func(topic string) string { return `"` + cfg.TablePrefix + "offsets_" + topic + `"` }
	switch cfg.Store.Dialect() {
	case store.SQLite:
		// A batch of records is consumed in one transaction of the one writer: one commit for them all,
		// short enough that the Koppeltaal API's writes do not wait long behind it.
		t.schema = SQLiteSchema{GenerateMessagesTableName: msgTable, SubscribeBatchSize: 20}
		t.offsets = SQLiteOffsetsAdapter{GenerateMessagesOffsetsTableName: offTable}
	case store.Postgres:
		// One record per transaction: a record delivered to a local Koppeltaal domain holds that POST's
		// locks until COMMIT, and a batch would hold several posts' locks in no particular order.
		t.schema = wmsql.DefaultPostgreSQLSchema{GenerateMessagesTableName: msgTable, GeneratePayloadType: func(string) string { return "BYTEA" }, SubscribeBatchSize: 1}
		t.offsets = wmsql.DefaultPostgreSQLOffsetsAdapter{GenerateMessagesOffsetsTableName: offTable}
	default:
		return nil, fmt.Errorf("transport: dialect %q is not sqlite or postgres", cfg.Store.Dialect())
	}
	return t, nil
}

// Publisher publishes on the store (each Publish is one transaction), creating a topic's tables first
// when they are missing.
func (t *Transport) Publisher() (message.Publisher, error) {
	pub, err := wmsql.NewPublisher(t.db, wmsql.PublisherConfig{SchemaAdapter: t.schema}, t.logger)
	if err != nil {
		return nil, err
	}
	return initializingPublisher{Publisher: pub, t: t}, nil
}

type initializingPublisher struct {
	message.Publisher
	t *Transport
}

func (p initializingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := p.t.Initialize(context.Background(), topic); err != nil {
		return err
	}
	return p.Publisher.Publish(topic, msgs...)
}

// TxPublisher publishes inside a store transaction (outbox: the messages commit with the caller's writes).
func (t *Transport) TxPublisher(tx *store.Tx) (message.Publisher, error) {
	return wmsql.NewPublisher(executor{tx.SQL()}, wmsql.PublisherConfig{SchemaAdapter: t.schema}, t.logger)
}

// Subscriber subscribes with a consumer group.
func (t *Transport) Subscriber(consumerGroup string) (message.Subscriber, error) {
	ack := 5 * time.Minute
	sub, err := wmsql.NewSubscriber(t.db, wmsql.SubscriberConfig{
		ConsumerGroup:  consumerGroup,
		PollInterval:   t.cfg.PollInterval,
		ResendInterval: t.cfg.PollInterval,
		RetryInterval:  time.Second,
		AckDeadline:    &ack,
		SchemaAdapter:  t.schema,
		OffsetsAdapter: t.offsets,
	}, t.logger)
	if err != nil {
		return nil, err
	}
	return &closingSubscriber{t: t, sub: sub, closing: make(chan struct{})}, nil
}

// Initialize creates a topic's message and offsets tables unless they exist. Whether they exist is read
// first, outside the writer: DDL needs the one SQLite writer, which a subscriber holds while a message of
// it waits for its acknowledgement, and subscribing to an existing topic must not wait for that.
func (t *Transport) Initialize(ctx context.Context, topic string) error {
	names := []string{t.cfg.TablePrefix + topic, t.cfg.TablePrefix + "offsets_" + topic}
	q := `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name IN (?, ?)`
	if t.cfg.Store.Dialect() == store.Postgres {
		q = `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN (?, ?)`
	}
	var n int
	if err := t.cfg.Store.View(ctx, func(tx *store.Tx) error { return tx.Get(ctx, &n, q, names[0], names[1]) }); err != nil {
		return fmt.Errorf("transport: look up tables of topic %s: %w", topic, err)
	}
	if n == len(names) {
		return nil
	}
	queries, err := t.schema.SchemaInitializingQueries(wmsql.SchemaInitializingQueriesParams{Topic: topic})
	if err != nil {
		return err
	}
	more, err := t.offsets.SchemaInitializingQueries(wmsql.OffsetsSchemaInitializingQueriesParams{Topic: topic})
	if err != nil {
		return err
	}
	err = t.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		for _, q := range append(queries, more...) {
			if _, err := tx.SQL().ExecContext(ctx, q.Query, q.Args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("transport: create tables of topic %s: %w", topic, err)
	}
	return nil
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
	t       *Transport
	sub     *wmsql.Subscriber
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

func (s *closingSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if err := s.t.Initialize(ctx, topic); err != nil {
		return nil, err
	}
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
	return s.t.Initialize(context.Background(), topic)
}

func (s *closingSubscriber) Close() error {
	s.once.Do(func() { close(s.closing) })
	err := s.sub.Close()
	s.wg.Wait()
	return err
}

// Logger is the watermill logger adapter the transport uses.
func (t *Transport) Logger() watermill.LoggerAdapter { return t.logger }
