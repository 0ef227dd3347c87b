package transport

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/koppelpoort/koppelpoort/store"
)

// watermill-sql begins, uses and ends transactions imperatively (Beginner, Tx); the store offers
// function-shaped ones (Store.Update) so that SQLite's one writer can group-commit them. beginner bridges
// the two: BeginTx starts an Update whose function hands its *store.Tx over and waits until watermill
// commits or rolls back. On SQLite the subscriber's transaction is then one request of the one writer (in
// its own savepoint), like every other write of the process.

type beginner struct{ st *store.Store }

// errRolledBack ends the Update of a transaction watermill rolled back.
var errRolledBack = errors.New("transport: rolled back")

// BeginTx starts a store transaction. The isolation level is not passed on: on PostgreSQL the store's
// READ COMMITTED lets a handler's later statements see what committed while it waited for a lock (a
// Koppeltaal accept checks versions under its locks), and watermill's PostgreSQL adapter locks its
// offsets row (FOR UPDATE), which keeps consumers of one group apart at that level too.
func (b beginner) BeginTx(ctx context.Context, _ *stdsql.TxOptions) (wmsql.Tx, error) {
	t := &storeTx{begun: make(chan *store.Tx), end: make(chan bool), done: make(chan error, 1)}
	go func() {
		t.done <- b.st.Update(context.WithoutCancel(ctx), func(tx *store.Tx) error {
			t.begun <- tx
			if commit := <-t.end; !commit {
				return errRolledBack
			}
			return nil
		})
	}()
	select {
	case tx := <-t.begun:
		t.tx = tx
		return t, nil
	case err := <-t.done:
		return nil, fmt.Errorf("transport: begin: %w", err)
	}
}

// ExecContext runs one statement in a transaction of its own (schema set-up, publishing outside a tx).
func (b beginner) ExecContext(ctx context.Context, q string, args ...any) (wmsql.Result, error) {
	var res stdsql.Result
	err := b.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		res, err = tx.SQL().ExecContext(ctx, q, args...)
		return err
	})
	return res, err
}

// QueryContext outside a transaction is not used by watermill-sql (its queries run in BeginTx's).
func (b beginner) QueryContext(context.Context, string, ...any) (wmsql.Rows, error) {
	return nil, errors.New("transport: queries run inside a transaction")
}

// storeTx is a store transaction held open for watermill.
type storeTx struct {
	tx    *store.Tx
	begun chan *store.Tx
	end   chan bool
	done  chan error
	ended bool
}

func (t *storeTx) ExecContext(ctx context.Context, q string, args ...any) (wmsql.Result, error) {
	return t.tx.SQL().ExecContext(ctx, q, args...)
}

func (t *storeTx) QueryContext(ctx context.Context, q string, args ...any) (wmsql.Rows, error) {
	return t.tx.SQL().QueryContext(ctx, q, args...)
}

func (t *storeTx) finish(commit bool) error {
	if t.ended {
		return stdsql.ErrTxDone
	}
	t.ended = true
	t.end <- commit
	return <-t.done
}

// Commit commits; on SQLite it returns after the writer's batch is durable.
func (t *storeTx) Commit() error { return t.finish(true) }

// Rollback undoes everything the transaction (and the handlers that ran in it) wrote.
func (t *storeTx) Rollback() error {
	if err := t.finish(false); err != nil && !errors.Is(err, errRolledBack) {
		return err
	}
	return nil
}

// executor runs a publisher's statements in a caller's store transaction.
type executor struct{ e store.Executor }

func (x executor) ExecContext(ctx context.Context, q string, args ...any) (wmsql.Result, error) {
	return x.e.ExecContext(ctx, q, args...)
}

func (x executor) QueryContext(ctx context.Context, q string, args ...any) (wmsql.Rows, error) {
	return x.e.QueryContext(ctx, q, args...)
}

// StoreTx returns the store transaction a subscribed message is being consumed in: a handler's writes in
// it commit together with the consumer's offset (exactly once), and must not use Store.Update (on SQLite
// the one writer is busy running this very transaction).
func StoreTx(msg *message.Message) (*store.Tx, bool) {
	tx, ok := wmsql.TxFromContext(msg.Context())
	if !ok {
		return nil, false
	}
	st, ok := tx.(*storeTx)
	if !ok {
		return nil, false
	}
	return st.tx, true
}

// quietLogger logs watermill's Info lines (schema set-up with its SQL, subscriber start and stop) at
// debug level: at info level they repeated on every start and replay and told an operator nothing.
type quietLogger struct{ watermill.LoggerAdapter }

func (l quietLogger) Info(msg string, fields watermill.LogFields) { l.LoggerAdapter.Debug(msg, fields) }

func (l quietLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return quietLogger{l.LoggerAdapter.With(fields)}
}

// Interface guards.
var (
	_ wmsql.Beginner        = beginner{}
	_ wmsql.Tx              = (*storeTx)(nil)
	_ wmsql.ContextExecutor = executor{}
)
